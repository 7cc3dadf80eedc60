"""Turn a fitted pipeline into a model version: what training and packaging share.

Both end here with a fitted scikit-learn estimator and a schema: this module scores it on
labelled rows (the holdout, or the user's labelled CSV), applies the quality gate, writes
the skops and joblib payloads, the compiled form when it compiles within parity, the
golden set, the reference distributions and the model card, and lists every file with
its SHA-256 in the manifest. Nothing is written when a check refuses.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
import skops
from numpy.typing import NDArray
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from inference.frames import FRAME_INPUT, FramePipeline
from inference.validation import schema_from_artifact
from serving import artifacts, quality
from serving.distributions import MANIFEST_KEY as REFERENCE_KEY
from serving.distributions import reference_distributions
from serving.schema import Schema
from training import golden, model_card, skops_artifact, versions
from training.compile import COMPILED_FILE, COMPILED_FORMAT, compile_pipeline
from training.compile_support import UnsupportedModelError
from training.dataset import Labels
from training.parity import ParityError, check_parity, parity_record
from training.training_rows import MANIFEST_KEY as TRAINING_ROWS_KEY
from training.training_rows import NO_FINGERPRINT, RowFilter

ARTIFACT_FILE = "model.joblib"
ARTIFACT_FORMAT = "sklearn-pipeline-joblib/1"
LEGACY_CLASSES = [0, 1]

Log = Callable[[str], Any]


@dataclass(frozen=True)
class Labelled:
    """Rows the model is judged on, and the rows its know-nothing baseline learns from."""

    X: NDArray[np.float64]
    y: Labels
    baseline_y: Labels  # training: the training split; packaging: the labelled rows
    golden_index: NDArray[np.int64]
    golden_source: Mapping[str, Any]


def classes_of(pipeline: Any, task: str) -> list[Any] | None:
    if task == "regression":
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in pipeline.classes_]


def outputs_of(pipeline: Any, task: str, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """What the runtimes' ``outputs(X)`` return (inference/model_loader.py's protocol)."""
    if task == "regression":
        return np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1)
    proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
    return proba[:, 1] if task == "binary" else proba


def complete_rows(X: NDArray[np.float64], schema: Schema) -> NDArray[np.bool_]:
    """Rows without a null (NaN) or a passed unknown category (a negative code)."""
    categorical = np.zeros(X.shape[1], dtype=bool)
    categorical[list(schema.categorical_indices)] = True
    incomplete = np.isnan(X).any(axis=1) | ((X < 0) & categorical).any(axis=1)
    return np.asarray(~incomplete, dtype=np.bool_)


def evaluate(
    task: str, y_true: Labels, outputs: NDArray[np.float64], classes: list[Any] | None
) -> dict[str, float]:
    """The manifest's metrics for ``task`` (see docs/bring-your-own-model.md)."""
    if task == "regression":
        y = np.asarray(y_true, dtype=np.float64)
        return {
            "rmse": round(float(np.sqrt(np.mean((y - outputs) ** 2))), 6),
            "mae": round(float(mean_absolute_error(y, outputs)), 6),
            "r2": round(float(r2_score(y, outputs)), 6),
        }
    labels = classes or LEGACY_CLASSES
    if task == "binary":
        positive = (np.asarray(y_true) == labels[1]).astype(np.int64)
        return {
            "roc_auc": round(float(roc_auc_score(positive, outputs)), 6),
            "accuracy": round(float(accuracy_score(positive, outputs >= 0.5)), 6),
            "log_loss": round(float(log_loss(positive, outputs, labels=[0, 1])), 6),
            "brier_score": round(float(brier_score_loss(positive, outputs)), 6),
        }
    predicted = np.asarray(labels, dtype=object)[np.argmax(outputs, axis=1)]
    return {
        "log_loss": round(float(log_loss(y_true, outputs, labels=labels)), 6),
        "roc_auc_ovr": round(
            float(
                roc_auc_score(y_true, outputs, multi_class="ovr", average="macro", labels=labels)
            ),
            6,
        ),
        "accuracy": round(float(np.mean(predicted == np.asarray(y_true, dtype=object))), 6),
    }


def task_keywords(task: str, classes: list[Any] | None) -> dict[str, Any]:
    """``task=``/``classes=`` for golden, distributions and compile; none for a binary
    model over 0 and 1, which those modules served before tasks existed."""
    if task == "binary" and classes == LEGACY_CLASSES:
        return {}
    return {"task": task, "classes": classes}


def target_record(schema: Schema, classes: list[Any] | None) -> dict[str, Any]:
    if schema.task == "regression":
        return {"name": schema.label}
    assert classes is not None
    if schema.task == "binary":
        return {"name": schema.label, "classes": classes, "positive_class": classes[1]}
    return {"name": schema.label, "classes": classes}


def feature_schema_with_observed(
    X: NDArray[np.float64] | None, schema: Schema
) -> list[dict[str, Any]]:
    """The artifact's ``features``; ``observed`` ranges (numbers) or codes seen
    (categoricals) when there are rows to observe."""
    entries = []
    for index, spec in enumerate(schema.features):
        entry = spec.to_json()
        if X is not None:
            column = X[:, index]
            # Nulls (NaN) and passed unknown categories (-1) are not observed values.
            column = column[~np.isnan(column)]
            if spec.values is not None:
                column = column[column >= 0]
            if not len(column):
                entries.append(entry)
                continue
            if spec.values is not None:
                seen = sorted({int(code) for code in column})
                entry["observed"] = {"values": [spec.values[code] for code in seen]}
            else:
                cast = int if spec.dtype == "integer" else float
                entry["observed"] = {"min": cast(column.min()), "max": cast(column.max())}
        entries.append(entry)
    return entries


def previous_on_holdout(
    model_dir: Path,
    version: str,
    schema: Schema,
    labelled: Labelled,
    classes: list[Any] | None,
    log: Log,
    own_rows: RowFilter | None,
    outputs: NDArray[np.float64],
) -> quality.Previous | None:
    """The model's newest other version, scored with this one on the holdout rows that
    neither trained on (None when there is none or its features, task or classes differ,
    so that the two cannot answer the same rows). ``outputs``: the new version's answers
    on the holdout, scored on the same rows.

    The rows the previous version trained on are dropped by its ``training_rows``
    filter (and, when given, ``own_rows``: a packaged model's labelled rows may be its
    training rows). Without that filter, or with fewer than ``quality.MIN_FRESH_ROWS``
    rows left (``MIN_FRESH_PER_CLASS`` of each class), the two are not compared: the
    record says why, and the gate neither passes nor refuses on it."""
    others = [v for v in artifacts.versions(model_dir) if v != version]
    if not others:
        return None
    directory = model_dir / others[-1]
    problems = artifacts.verify_version(directory)
    if problems:
        raise ValueError(
            f"cannot compare with the previous version {others[-1]}: {'; '.join(problems)}"
        )
    manifest = artifacts.load_manifest(directory)
    features = [{k: v for k, v in f.items() if k != "observed"} for f in manifest["features"]]
    if features != [spec.to_json() for spec in schema.features]:
        names = ", ".join(f["name"] for f in features)
        log(f"not compared with {others[-1]}: its features differ ({names})")
        return None
    previous_task = manifest.get("task", "binary")
    previous_classes = manifest.get("target", {}).get("classes")
    if previous_task != schema.task or (classes is not None and previous_classes != classes):
        log(f"not compared with {others[-1]}: its task or classes differ")
        return None
    if TRAINING_ROWS_KEY not in manifest:
        log(f"not compared with {others[-1]}: {NO_FINGERPRINT}")
        return quality.Previous(others[-1], {}, not_compared=NO_FINGERPRINT)
    trained = RowFilter.from_record(manifest[TRAINING_ROWS_KEY], str(directory)).contains(
        labelled.X, labelled.y
    )
    if own_rows is not None:
        trained |= own_rows.contains(labelled.X, labelled.y)
    fresh = ~trained
    too_few = _too_few(labelled.y[fresh], schema.task, len(labelled.y))
    if too_few is not None:
        log(f"not compared with {others[-1]}: {too_few}")
        return quality.Previous(others[-1], {}, not_compared=too_few)
    X, y = labelled.X[fresh], labelled.y[fresh]
    # The skops file when there is one: loading it runs no pickled code.
    key = "sklearn" if "sklearn" in manifest["artifacts"] else skops_artifact.JOBLIB_KEY
    data = (directory / manifest["artifacts"][key]["file"]).read_bytes()
    answers = golden.predict(key, data, X)
    return quality.Previous(
        others[-1],
        evaluate(schema.task, y, answers, classes),
        candidate=evaluate(schema.task, y, outputs[fresh], classes),
        rows=int(fresh.sum()),
        dropped=int(trained.sum()),
    )


def _too_few(y: Labels, task: str, holdout: int) -> str | None:
    """Why ``y``, the fresh rows' labels, are too few to compare on; None when enough."""
    if len(y) < quality.MIN_FRESH_ROWS:
        return (
            f"too few holdout rows that neither version trained on: {len(y)} of {holdout}, "
            f"the comparison needs {quality.MIN_FRESH_ROWS}"
        )
    if task == "regression":
        return None
    values, counts = np.unique(np.asarray(y), return_counts=True)
    if len(values) < 2 or counts.min() < quality.MIN_FRESH_PER_CLASS:
        found = ", ".join(f"{v!r}: {c}" for v, c in zip(values.tolist(), counts, strict=True))
        return (
            f"too few holdout rows of a class that neither version trained on ({found}); "
            f"the comparison needs {quality.MIN_FRESH_PER_CLASS} of each class"
        )
    return None


def write_golden_set(
    directory: Path,
    entries: dict[str, dict[str, Any]],
    feature_names: tuple[str, ...],
    X: NDArray[np.float64],
    y: Labels | None,
    source: Mapping[str, Any],
    training_rows: Mapping[str, Any] | None = None,
    **task_kw: Any,
) -> None:
    """Write ``golden.json`` (each runtime's answers, from the bytes written, by the app's
    loader) into ``directory`` and list it in ``entries`` (its checksum comes later)."""
    predictions = {
        key: golden.predict(key, (directory / entry["file"]).read_bytes(), X)
        for key, entry in entries.items()
        if key in golden.LOADER_OF_ARTIFACT
    }
    entries[golden.ARTIFACT_KEY] = {
        "file": golden.GOLDEN_FILE,
        "format": golden.FORMAT,
        "rows": int(X.shape[0]),
    }
    (directory / golden.GOLDEN_FILE).write_bytes(
        golden.dumps(
            golden.document(
                feature_names,
                X,
                y,
                predictions,
                source=source,
                training_rows=training_rows,
                **task_kw,
            )
        )
    )


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "skops": skops.__version__,
    }


def publish(
    pipeline: Any,
    *,
    schema: Schema,
    model_name: str,
    version: str,
    output: Path,
    training_record: dict[str, Any],
    observed_X: NDArray[np.float64] | None,
    labelled: Labelled | None,
    unlabelled_X: NDArray[np.float64] | None = None,
    data_fingerprint: dict[str, Any] | None = None,
    training_rows: RowFilter | None = None,
    force: bool = False,
    compiled: bool = True,
    accept_regression: str | None = None,
    enforce_gate: bool = True,
    frame_dtypes: Mapping[str, str] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    log: Log = print,
) -> Path:
    """Gate and write ``output/model_name/version`` for a fitted ``pipeline``.

    ``labelled``: rows to judge the model on (metrics, gate, model card, golden labels);
    without it, ``unlabelled_X`` gives the golden set's inputs (``labels: null``), and the
    gate records that it did not check. ``training_rows``: the filter of the rows the
    model was fitted on, recorded in the manifest (the next version drops them from its
    comparison with this one) and used to drop them here. Raises
    ``quality.QualityGateError`` with nothing written when the gate refuses.

    ``frame_dtypes``: given for a pipeline fitted on a DataFrame (``inference.frames``):
    the payload says ``"input": "frame"`` and every figure here is of the pipeline called
    through ``FramePipeline``, as the sklearn runtime calls it. ``manifest_extra``: keys
    the manifest gets after ``training`` (packaging's ``model_input``, ``feature_order``).
    """
    task = schema.task
    model = pipeline
    if frame_dtypes is not None:
        features = schema_from_artifact([spec.to_json() for spec in schema.features])
        model = FramePipeline(pipeline, features, frame_dtypes)
    classes = classes_of(pipeline, task)
    task_kw = task_keywords(task, classes)
    check_X = labelled.X if labelled is not None else unlabelled_X
    if check_X is None:
        raise ValueError("publish needs labelled rows or unlabelled inputs for the golden set")
    outputs = outputs_of(model, task, check_X)
    metrics: dict[str, float] | None = None
    if labelled is not None:
        metrics = evaluate(task, labelled.y, outputs, classes)
        # Before the costlier checks and anything written: a refused model leaves no version.
        gate_record = quality.check(
            model=model_name,
            version=version,
            task=task,
            metrics=metrics,
            base_rate=quality.baseline(task, labelled.baseline_y, labelled.y, classes),
            previous=previous_on_holdout(
                output / model_name,
                version,
                schema,
                labelled,
                classes,
                log,
                training_rows,
                outputs,
            ),
            accept_regression=accept_regression,
            enforce=enforce_gate,
        )
    else:
        gate_record = quality.not_checked("packaged without labelled data")
    log(quality.describe({quality.MANIFEST_KEY: gate_record}))
    feature_schema = feature_schema_with_observed(observed_X, schema)
    payload: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "model_name": model_name,
        "model_version": version,
        "features": feature_schema,
        "pipeline": pipeline,
    }
    if task_kw:
        # A payload without them is binary over 0 and 1: churn's bytes stay as they were.
        payload.update(task=task, classes=classes)
    if frame_dtypes is not None:
        payload.update(input=FRAME_INPUT, frame_dtypes=dict(frame_dtypes))
    # What the sklearn runtime deploys: no pickle. The joblib file stays for local use.
    skops_bytes = skops_artifact.checked_dumps(
        {**payload, "format": skops_artifact.SKOPS_FORMAT}, check_X, model=model
    )
    artifact_entries: dict[str, dict[str, Any]] = {
        "sklearn": skops_artifact.manifest_entry(skops_bytes),
        skops_artifact.JOBLIB_KEY: {"file": ARTIFACT_FILE, "format": ARTIFACT_FORMAT},
    }
    compiled_bytes, compiled_runtime = b"", None
    if compiled:
        try:
            compiled_bytes = compile_pipeline(
                pipeline,
                model_name=model_name,
                model_version=version,
                features=feature_schema,
                frame_dtypes=frame_dtypes,
                **task_kw,
            )
            # The compiled file knows its classes; the task is checked against it.
            parity_kw: dict[str, Any] = {"task": task} if task_kw else {}
            report = check_parity(model, compiled_bytes, check_X, feature_schema, **parity_kw)
        except (UnsupportedModelError, ParityError) as exc:
            compiled_bytes = b""
            compiled_runtime = {"supported": False, "reason": str(exc)}
            log(f"compiled runtime: not supported, written without it: {exc}")
        else:
            log(
                f"compiled runtime: parity on {report.rows} rows, max |diff| "
                f"{report.max_abs_diff:.3g} (bound {report.bound:g}), "
                f"{report.label_mismatches} label mismatches"
            )
            artifact_entries["compiled"] = {
                "file": COMPILED_FILE,
                "format": COMPILED_FORMAT,
                "parity": parity_record(report),
            }

    def write_files(tmp: Path) -> dict[str, Any]:
        joblib.dump(payload, tmp / ARTIFACT_FILE, compress=3)
        (tmp / skops_artifact.SKOPS_FILE).write_bytes(skops_bytes)
        if compiled_bytes:
            (tmp / COMPILED_FILE).write_bytes(compiled_bytes)
        if labelled is not None:
            index = labelled.golden_index
            write_golden_set(
                tmp,
                artifact_entries,
                schema.feature_names,
                labelled.X[index],
                labelled.y[index],
                labelled.golden_source,
                training_rows=None if training_rows is None else training_rows.record(),
                features=feature_schema,
                **task_kw,
            )
        else:
            write_golden_set(
                tmp,
                artifact_entries,
                schema.feature_names,
                check_X,
                None,
                {"sample": "the inputs given, no labels"},
                features=feature_schema,
                **task_kw,
            )
        manifest: dict[str, Any] = {
            "model_name": model_name,
            "model_version": version,
            "task": task,
            "artifacts": artifact_entries,
        }
        if compiled_runtime is not None:
            manifest["compiled_runtime"] = compiled_runtime
        manifest["features"] = feature_schema
        manifest["target"] = target_record(schema, classes)
        manifest["library_versions"] = library_versions()
        manifest["training"] = training_record
        manifest.update(manifest_extra or {})
        if data_fingerprint is not None:
            manifest["data_fingerprint"] = data_fingerprint
        if training_rows is not None:
            manifest[TRAINING_ROWS_KEY] = training_rows.record()
        if metrics is not None and labelled is not None:
            manifest["metrics"] = {**metrics, "holdout_rows": len(labelled.y)}
        manifest[quality.MANIFEST_KEY] = gate_record
        if observed_X is not None and labelled is not None:
            # The features' histograms of the complete rows: they hold values, not nulls
            # or unknown categories (every row, as before, when the data has neither).
            complete = complete_rows(observed_X, schema)
            if complete.any():
                manifest[REFERENCE_KEY] = reference_distributions(
                    observed_X[complete], feature_schema, outputs, **task_kw
                )
        # The card's plots and global importance (from the archive compiled above).
        manifest["model_card"] = model_card.write_card(
            tmp,
            manifest,
            y_true=None if labelled is None else labelled.y,
            outputs=outputs,
            classes=classes,
            title=f"{model_name} {version}",
            compiled_bytes=compiled_bytes,
            compiled_runtime=compiled_runtime,
        )
        return manifest

    final = versions.write_version(output, model_name, version, write_files, force=force)
    figures = (
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) if metrics else "no labelled data"
    )
    log(f"wrote {final}: {figures}")
    return final

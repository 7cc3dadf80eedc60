"""Fit the churn pipeline and write a versioned artifact with its manifest and model card.

python -m training.train --version v3                 # synthetic data
python -m training.train --version v3 --data my.csv   # your data
python -m training.train --model fraud --version v1 --schema fraud.json --data fraud.csv

A model that does not beat the base rate, chance, or (beyond a tolerance) the model's
previous version on the same holdout is refused; see training/gate.py.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
import skops
from numpy.typing import NDArray
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training import artifacts, gate, golden, model_card, skops_artifact
from training.compile import (
    COMPILED_FILE,
    COMPILED_FORMAT,
    ParityError,
    UnsupportedModelError,
    check_parity,
    compile_pipeline,
    parity_record,
)
from training.dataset import DatasetError, check_class_balance, fingerprint, load_csv
from training.distributions import MANIFEST_KEY as REFERENCE_KEY
from training.distributions import reference_distributions
from training.schema import CHURN, CHURN_SCHEMA_FILE, Schema, SchemaError, load_schema
from training.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "model_artifacts"
ARTIFACT_FILE = "model.joblib"
ARTIFACT_FORMAT = "sklearn-pipeline-joblib/1"
HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 42
GBM_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 4,
    "learning_rate": 0.1,
    "random_state": 42,
}


@dataclass(frozen=True)
class TrainingData:
    X: NDArray[np.float64]
    y: NDArray[np.int64]
    source: dict[str, Any]
    schema: Schema = CHURN


def synthetic_data(rows: int, seed: int) -> TrainingData:
    X, y = generate(rows, seed)
    check_class_balance(y, source=f"synthetic data (rows={rows}, seed={seed})")
    return TrainingData(X, y, {"kind": "synthetic", "rows": rows, "seed": seed})


def csv_data(path: Path, schema: Schema = CHURN) -> TrainingData:
    X, y = load_csv(path, schema)
    return TrainingData(X, y, {"kind": "csv", "file": path.name}, schema)


def build_pipeline(params: dict[str, Any] | None = None) -> Pipeline:
    return Pipeline(
        [
            ("scaler", StandardScaler()),
            ("classifier", GradientBoostingClassifier(**{**GBM_PARAMS, **(params or {})})),
        ]
    )


def evaluate(y_true: NDArray[np.int64], proba: NDArray[np.float64]) -> dict[str, float]:
    return {
        "roc_auc": round(float(roc_auc_score(y_true, proba)), 6),
        "accuracy": round(float(accuracy_score(y_true, proba >= 0.5)), 6),
        "log_loss": round(float(log_loss(y_true, proba, labels=[0, 1])), 6),
        "brier_score": round(float(brier_score_loss(y_true, proba)), 6),
    }


def train(
    data: TrainingData,
    *,
    model_name: str,
    version: str,
    output: Path = DEFAULT_OUTPUT,
    force: bool = False,
    params: dict[str, Any] | None = None,
    compiled: bool = True,
    golden_rows: int = golden.DEFAULT_ROWS,
    accept_regression: str | None = None,
    enforce_gate: bool = True,
    log: Any = print,
) -> Path:
    """Fit, evaluate, gate and write ``output/model_name/version``; returns that directory.

    Raises ``gate.QualityGateError`` (nothing written) for a model the quality gate refuses;
    ``enforce_gate=False`` writes it with the refusal recorded (tests that need a bad model).
    """
    artifacts.check_identity(model_name, version)
    if (output / model_name / version).exists() and not force:
        raise artifacts.ArtifactExistsError(
            f"{output / model_name / version} already exists; choose a new version or pass "
            "--force to replace it"
        )
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=HOLDOUT_FRACTION, random_state=SPLIT_SEED, stratify=data.y
    )
    golden_index = golden.stratified_sample(y_test, golden_rows)
    pipeline = build_pipeline(params)
    started = time.perf_counter()
    log(f"fitting on {len(y_train)} rows, {len(data.schema.features)} features ...")
    pipeline.fit(X_train, y_train)
    log(f"fitted in {time.perf_counter() - started:.1f}s; evaluating on {len(y_test)} holdout rows")
    proba = pipeline.predict_proba(X_test)[:, 1]
    metrics = evaluate(y_test, proba)
    # Before the costlier checks and anything written: a refused model leaves no version.
    gate_record = gate.check(
        model=model_name,
        version=version,
        metrics=metrics,
        base_rate=gate.base_rate_log_loss(y_train, y_test),
        previous=previous_on_holdout(
            output / model_name, version, data.schema, X_test, y_test, log
        ),
        accept_regression=accept_regression,
        enforce=enforce_gate,
    )
    log(gate.describe({gate.MANIFEST_KEY: gate_record}))
    feature_schema = feature_schema_with_observed(data.X, data.schema)
    full_params = {**GBM_PARAMS, **(params or {})}
    payload = {
        "format": ARTIFACT_FORMAT,
        "model_name": model_name,
        "model_version": version,
        "features": feature_schema,
        "pipeline": pipeline,
    }
    # What the sklearn runtime deploys: no pickle. The joblib file stays for local use.
    skops_bytes = skops_artifact.checked_dumps(
        {**payload, "format": skops_artifact.SKOPS_FORMAT}, X_test
    )
    artifact_entries: dict[str, dict[str, Any]] = {
        "sklearn": skops_artifact.manifest_entry(),
        skops_artifact.JOBLIB_KEY: {"file": ARTIFACT_FILE, "format": ARTIFACT_FORMAT},
    }
    compiled_bytes = b""
    if compiled:
        # The gate runs before anything is written: a refused model leaves no version.
        compiled_bytes = compile_pipeline(
            pipeline, model_name=model_name, model_version=version, features=feature_schema
        )
        report = check_parity(pipeline, compiled_bytes, X_test, feature_schema)
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
        write_golden_set(
            tmp,
            artifact_entries,
            data.schema.feature_names,
            X_test[golden_index],
            y_test[golden_index],
        )
        manifest: dict[str, Any] = {
            "model_name": model_name,
            "model_version": version,
            "artifacts": artifact_entries,
            "features": feature_schema,
            "target": {"name": data.schema.label, "classes": [0, 1], "positive_class": 1},
            "library_versions": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "joblib": joblib.__version__,
                "skops": skops.__version__,
            },
            "training": {
                "estimator": "StandardScaler + GradientBoostingClassifier",
                "params": full_params,
                "data_source": data.source,
                "holdout_fraction": HOLDOUT_FRACTION,
                "split_seed": SPLIT_SEED,
            },
            "data_fingerprint": fingerprint(data.X, data.y, data.schema),
            "metrics": {**metrics, "holdout_rows": len(y_test)},
            gate.MANIFEST_KEY: gate_record,
            REFERENCE_KEY: reference_distributions(data.X, feature_schema, proba),
            "model_card": {"markdown": "model_card.md", "plot": "model_card.png"},
        }
        model_card.write_plot(
            tmp / "model_card.png", y_test, proba, f"{model_name} {version}: holdout"
        )
        model_card.write_markdown(tmp / "model_card.md", manifest, "model_card.png")
        return manifest

    final = artifacts.write_version(output, model_name, version, write_files, force=force)
    log(
        f"wrote {final}: ROC AUC {metrics['roc_auc']:.4f}, accuracy {metrics['accuracy']:.4f}, "
        f"log loss {metrics['log_loss']:.4f}, Brier {metrics['brier_score']:.4f}"
    )
    return final


def previous_on_holdout(
    model_dir: Path,
    version: str,
    schema: Schema,
    X_test: NDArray[np.float64],
    y_test: NDArray[np.int64],
    log: Any,
) -> gate.Previous | None:
    """The model's newest other version, scored on this holdout (None when there is none
    or its features differ, so that the two cannot answer the same rows)."""
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
    names = [feature["name"] for feature in manifest["features"]]
    if names != list(schema.feature_names):
        log(f"not compared with {others[-1]}: its features differ ({', '.join(names)})")
        return None
    # The skops file when there is one: loading it runs no pickled code.
    key = "sklearn" if "sklearn" in manifest["artifacts"] else skops_artifact.JOBLIB_KEY
    data = (directory / manifest["artifacts"][key]["file"]).read_bytes()
    return gate.Previous(others[-1], evaluate(y_test, golden.predict(key, data, X_test)))


def write_golden_set(
    directory: Path,
    entries: dict[str, dict[str, Any]],
    feature_names: tuple[str, ...],
    X: NDArray[np.float64],
    y: NDArray[np.int64],
) -> None:
    """Write ``golden.json`` (each runtime's answers, from the bytes written, by the app's
    loader) into ``directory`` and list it in ``entries`` (its checksum comes later)."""
    predictions = {
        key: golden.predict(key, (directory / entry["file"]).read_bytes(), X)
        for key, entry in entries.items()
        if key in golden.LOADER_OF_ARTIFACT
    }
    source = {"sample": "stratified from the holdout", "seed": golden.SAMPLE_SEED}
    entries[golden.ARTIFACT_KEY] = {
        "file": golden.GOLDEN_FILE,
        "format": golden.FORMAT,
        "rows": len(y),
    }
    (directory / golden.GOLDEN_FILE).write_bytes(
        golden.dumps(golden.document(feature_names, X, y, predictions, source=source))
    )


def add_quality_records(
    data: TrainingData, version_dir: Path, *, golden_rows: int = golden.DEFAULT_ROWS
) -> Path:
    """Give a version trained before golden sets its ``golden.json`` and reference
    distributions, without touching its model files (their SHA-256 may be deployed).

    ``data`` must be what the version was trained on: its fingerprint is checked, and the
    holdout is split again exactly as training split it.
    """
    manifest = artifacts.load_manifest(version_dir)
    problems = artifacts.verify_version(version_dir)
    if problems:
        raise ValueError("; ".join(problems))
    if fingerprint(data.X, data.y, data.schema) != manifest["data_fingerprint"]:
        raise ValueError(
            f"{version_dir} was not trained on this data: its data_fingerprint differs"
        )
    _, X_test, _, y_test = train_test_split(
        data.X,
        data.y,
        test_size=manifest["training"]["holdout_fraction"],
        random_state=manifest["training"]["split_seed"],
        stratify=data.y,
    )
    golden_index = golden.stratified_sample(y_test, golden_rows)
    entries = {k: v for k, v in manifest["artifacts"].items() if k != golden.ARTIFACT_KEY}
    joblib_file = version_dir / entries[skops_artifact.JOBLIB_KEY]["file"]
    proba = golden.predict(skops_artifact.JOBLIB_KEY, joblib_file.read_bytes(), X_test)
    # The recomputed holdout answers must be training's own: its recorded metrics say so.
    if evaluate(y_test, proba) != {k: manifest["metrics"][k] for k in evaluate(y_test, proba)}:
        raise ValueError(f"{version_dir}: the holdout answers differ from the manifest's metrics")

    def write_files(tmp: Path) -> dict[str, Any]:
        for path in version_dir.iterdir():
            if path.name not in (artifacts.MANIFEST, golden.GOLDEN_FILE):
                shutil.copy2(path, tmp / path.name)
        kept = {k: {"file": v["file"], **_without_checksum(v)} for k, v in entries.items()}
        write_golden_set(
            tmp,
            kept,
            tuple(f["name"] for f in manifest["features"]),
            X_test[golden_index],
            y_test[golden_index],
        )
        # Same keys in the same order as a version trained today.
        updated: dict[str, Any] = {}
        for key, value in manifest.items():
            if key not in ("schema_version", REFERENCE_KEY):
                updated[key] = kept if key == "artifacts" else value
            if key == "metrics":
                updated[REFERENCE_KEY] = reference_distributions(
                    data.X, manifest["features"], proba
                )
        return updated

    return artifacts.write_version(
        version_dir.parent.parent,
        manifest["model_name"],
        manifest["model_version"],
        write_files,
        force=True,
    )


def _without_checksum(entry: dict[str, Any]) -> dict[str, Any]:
    # write_version adds them again from the bytes on disk.
    return {k: v for k, v in entry.items() if k not in ("sha256", "size_bytes")}


def feature_schema_with_observed(
    X: NDArray[np.float64], features: Schema = CHURN
) -> list[dict[str, Any]]:
    schema = []
    for index, spec in enumerate(features.features):
        entry = spec.to_json()
        column = X[:, index]
        cast = int if spec.dtype == "integer" else float
        entry["observed"] = {"min": cast(column.min()), "max": cast(column.max())}
        schema.append(entry)
    return schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="churn", help="model name (default: churn)")
    parser.add_argument("--version", required=True, help="version to write, e.g. v3")
    parser.add_argument(
        "--schema",
        type=Path,
        metavar="FILE",
        help="feature schema, JSON (default: the churn features, "
        f"{CHURN_SCHEMA_FILE.relative_to(ROOT)})",
    )
    parser.add_argument("--data", type=Path, help="training CSV (default: synthetic data)")
    parser.add_argument("--rows", type=int, default=20000, help="synthetic rows (default 20000)")
    parser.add_argument("--data-seed", type=int, default=7, help="synthetic data seed (default 7)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="artifact root")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing version (only one never deployed: Lambda pins its SHA-256)",
    )
    parser.add_argument(
        "--golden-rows",
        type=int,
        default=golden.DEFAULT_ROWS,
        help=f"golden set size, a stratified sample of the holdout (default "
        f"{golden.DEFAULT_ROWS}; all of it when the holdout is smaller)",
    )
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="skip the compiled-runtime artifact (only runtime 'sklearn' can serve it)",
    )
    parser.add_argument(
        "--accept-regression",
        metavar="REASON",
        help="write a model the quality gate finds worse than the previous version, and "
        "record REASON with the figures in the manifest",
    )
    args = parser.parse_args(argv)
    if args.accept_regression is not None and not args.accept_regression.strip():
        parser.error('--accept-regression needs a reason, e.g. --accept-regression "new data"')
    try:
        artifacts.check_identity(args.model, args.version)
        schema = load_schema(args.schema) if args.schema else CHURN
        if args.data:
            data = csv_data(args.data, schema)
        elif schema == CHURN:
            data = synthetic_data(args.rows, args.data_seed)
        else:
            raise SchemaError(
                f"{args.schema}: synthetic data has the churn features only; give the "
                "training CSV with --data"
            )
        train(
            data,
            model_name=args.model,
            version=args.version,
            output=args.output,
            force=args.force,
            compiled=not args.no_compiled,
            golden_rows=args.golden_rows,
            accept_regression=args.accept_regression,
            log=lambda m: print(m, file=sys.stderr),
        )
    except (
        DatasetError,
        SchemaError,
        artifacts.ArtifactExistsError,
        ParityError,
        skops_artifact.SkopsParityError,
        UnsupportedModelError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

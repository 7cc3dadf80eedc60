"""Package a scikit-learn estimator or Pipeline fitted elsewhere as a model version: the same
artifact training writes (skops and joblib payloads, compiled form where supported, golden
set, manifest with checksums and library versions), judged on a labelled CSV when given.

python -m training.package --model cancer --version v1 --schema cancer.yaml \\
    --estimator cancer.skops --data cancer.csv

A pipeline fitted on a DataFrame (it has feature_names_in_) is packaged unchanged and
called the way it was fitted: columns by name, strings as strings, NaN where a request
sent null; it is checked against the schema first (names, order, encoders' categories,
and its answers on the handler's DataFrame against those on yours). --write-schema FILE
drafts that schema from the pipeline and --data instead of packaging. A model fitted on
a numpy array receives the schema's features in order, as float64, a categorical feature
as the position of its value in the schema's list; as nothing can check that order, it
needs --confirm-feature-order. A joblib file is a pickle: loading it runs whatever code
it holds, so package only files you trust, pinned with --sha256. A skops file is loaded
without unpickling and refused if it holds a type the runtime does not trust, naming the
step that holds it. Any refusal exits with status 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference import sklearn_model
from inference.frames import fitted_on_frame
from serving import artifacts
from serving.schema import Schema
from training import cli, draft_schema, estimators, feature_order, golden, skops_artifact, versions
from training.dataset import Labels, fingerprint, load_table
from training.frame_model import FrameModel, prepare
from training.publish import Labelled, evaluate, outputs_of, publish
from training.schema import load_schema
from training.training_rows import RowFilter

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "model_artifacts"
FORMATS = {".joblib": "joblib", ".skops": "skops"}
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# Without labels the golden set is inputs drawn across the schema's allowed values.
UNLABELLED_ROWS = 200
UNLABELLED_SEED = 42


class PackagingError(ValueError):
    """The estimator file cannot become this model's artifact; the message says why."""


def read_estimator(path: Path, sha256: str | None) -> tuple[Any, dict[str, Any]]:
    """The fitted object in ``path`` and how it was read (for the manifest)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise PackagingError(
            f"{path}: expected a .joblib or .skops file, got {path.suffix or 'no suffix'!r}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackagingError(f"{path}: cannot open ({exc.strerror})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256.lower():
        raise PackagingError(
            f"{path}: SHA-256 is {digest}, not the {sha256.lower()} given with --sha256"
        )
    if kind == "skops":
        if not data.startswith(sklearn_model.ZIP_MAGIC):
            raise PackagingError(f"{path}: not a skops file (a skops file is a zip archive)")
        try:
            # The runtime's own reader: the types it would refuse at serving time are
            # refused now, by name.
            estimator = sklearn_model._load_skops(data)
        except sklearn_model.SklearnModelError as exc:
            where = "; ".join(skops_artifact.untrusted_steps(data)[:10])
            raise PackagingError(f"{path}: {exc}{f' ({where})' if where else ''}") from None
        except Exception as exc:
            raise PackagingError(f"{path}: not a readable skops file ({exc})") from None
    else:
        import joblib

        if sha256 is None:
            # Said on stderr whatever the log: the user may not know what a joblib file is.
            print(
                f"warning: {path}: a joblib file is a pickle: loading it runs the code it "
                "holds; package only a file you trust, and pin it: --sha256 "
                f"{digest}",
                file=sys.stderr,
            )
        try:
            # Runs the pickle's code: the user vouched for the file (and may pin --sha256).
            estimator = joblib.load(io.BytesIO(data))
        except Exception as exc:
            raise PackagingError(f"{path}: not a readable joblib file ({exc})") from None
    return estimator, {"file": path.name, "format": kind, "sha256": digest}


def check_estimator(estimator: Any, schema: Schema, where: str) -> None:
    """Refuse what the schema's task cannot serve, or a model of other features."""
    task = schema.task
    if not callable(getattr(estimator, "predict", None)):
        raise PackagingError(f"{where}: a {type(estimator).__name__} has no predict()")
    if task != "regression" and not callable(getattr(estimator, "predict_proba", None)):
        raise PackagingError(
            f"{where}: task {task} needs predict_proba(), which a "
            f"{type(estimator).__name__} does not have"
        )
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise PackagingError(
            f"{where}: the {type(estimator).__name__} has no n_features_in_: is it fitted?"
        )
    if count != len(schema.features):
        raise PackagingError(
            f"{where}: the model takes {count} features, the schema lists "
            f"{len(schema.features)} ({', '.join(schema.feature_names)})"
        )
    classes = getattr(estimator, "classes_", None)
    if task == "regression":
        if classes is not None:
            raise PackagingError(
                f"{where}: the model is a classifier (classes {_plain(classes)}); task "
                "regression needs a regressor"
            )
        return
    if classes is None:
        raise PackagingError(f"{where}: task {task} needs a classifier; the model has no classes_")
    if task == "binary" and len(classes) != 2:
        raise PackagingError(
            f"{where}: task binary needs 2 classes; the model has {len(classes)} "
            f"({_plain(classes)})"
        )
    if task == "multiclass" and len(classes) < 3:
        raise PackagingError(
            f"{where}: task multiclass needs at least 3 classes; the model has {len(classes)} "
            f"({_plain(classes)}): use task binary"
        )


def check_labels(y: Labels, estimator: Any, schema: Schema, data: Path) -> None:
    if schema.task == "regression":
        return
    known = {_key(c) for c in estimator.classes_}
    unknown = sorted({repr(_key(v)) for v in y if _key(v) not in known})
    if unknown:
        raise PackagingError(
            f"{data}: column '{schema.label}' holds {', '.join(unknown)}, which the model "
            f"cannot answer: its classes are {_plain(estimator.classes_)}"
        )


def inputs_across_the_schema(schema: Schema, rows: int, seed: int) -> NDArray[np.float64]:
    """Encoded rows spread over every feature's allowed range or values."""
    generator = np.random.default_rng(seed)
    columns = []
    for spec in schema.features:
        if spec.values is not None:
            columns.append(generator.integers(0, len(spec.values), rows).astype(np.float64))
        elif spec.dtype == "integer":
            low, high = int(spec.minimum), int(spec.maximum)
            columns.append(generator.integers(low, high + 1, rows).astype(np.float64))
        else:
            columns.append(generator.uniform(spec.minimum, spec.maximum, rows))
    return np.column_stack(columns)


def package(
    estimator_file: Path,
    *,
    schema: Schema,
    model_name: str,
    version: str,
    output: Path = DEFAULT_OUTPUT,
    data: Path | None = None,
    training_data: Path | None = None,
    sha256: str | None = None,
    confirm_order: bool = False,
    accept_regression: str | None = None,
    compiled: bool = True,
    force: bool = False,
    log: Any = print,
) -> Path:
    """Check ``estimator_file`` against ``schema`` and write the version; returns its
    directory. Raises ``PackagingError``, ``DatasetError`` or ``gate.QualityGateError``
    with nothing written. ``training_data``: the CSV the estimator was fitted on, when
    known: its rows' filter goes into the manifest (``training_rows``), its rows are
    left out of the comparison with the previous version, and with ``data`` a holdout
    figure far below the training one is flagged (``feature_order.RULE``).
    ``confirm_order``: the user confirmed the schema's order for a model fitted without
    column names (refused otherwise)."""
    artifacts.check_identity(model_name, version)
    if (output / model_name / version).exists() and not force:
        raise versions.ArtifactExistsError(
            f"{output / model_name / version} already exists; choose a new version or pass "
            "--force to replace it"
        )
    estimator, source = read_estimator(estimator_file, sha256)
    where = str(estimator_file)
    check_estimator(estimator, schema, where)
    table = load_table(data, schema) if data is not None else None
    frame: FrameModel | None = None
    if fitted_on_frame(estimator):
        frame = prepare(estimator, schema, table, data, where, log)
        extra: dict[str, Any] = {"model_input": "frame", "feature_order": frame.order}
    else:
        extra = {
            "model_input": "matrix",
            "feature_order": feature_order.decide(estimator, schema, confirm_order, where),
        }
    model = frame.model if frame is not None else estimator
    record: dict[str, Any] = {
        "estimator": estimators.describe(estimator),
        "params": _json_params(estimator),
        "packaged_from": source,
    }
    labelled = None
    observed = unlabelled = None
    data_fingerprint = None
    if data is not None and table is not None:
        X, y = table.X, table.y
        check_labels(y, estimator, schema, data)
        record["data_source"] = {"kind": "csv", "file": data.name}
        strata = y if schema.task != "regression" else np.zeros(len(y), dtype=np.int64)
        labelled = Labelled(
            X,
            y,
            y,
            _golden_rows(X, strata, schema),
            {"sample": "stratified from the labelled data", "seed": golden.SAMPLE_SEED},
        )
        observed, data_fingerprint = X, fingerprint(X, y, schema)
    else:
        unlabelled = inputs_across_the_schema(schema, UNLABELLED_ROWS, UNLABELLED_SEED)
    training_rows = None
    if training_data is not None:
        trained = load_table(training_data, schema)
        training_rows = RowFilter.of(trained.X, trained.y)
        record["training_rows_source"] = {"kind": "csv", "file": training_data.name}
        if table is not None:
            fitted_X = trained.X
            if frame is None:
                # A model of positions was fitted on the columns in its file's order.
                fitted_X = fitted_X[:, feature_order.file_order(training_data, schema)]
            check = feature_order.compare(
                schema.task,
                _metrics(model, schema, fitted_X, trained.y),
                _metrics(model, schema, table.X, table.y),
            )
            log(feature_order.describe(check))
            if check["flagged"]:
                print(feature_order.describe(check), file=sys.stderr)
            extra["training_metric_check"] = check
    return publish(
        estimator,
        schema=schema,
        model_name=model_name,
        version=version,
        output=output,
        training_record=record,
        observed_X=observed,
        labelled=labelled,
        unlabelled_X=unlabelled,
        data_fingerprint=data_fingerprint,
        training_rows=training_rows,
        force=force,
        compiled=compiled,
        accept_regression=accept_regression,
        frame_dtypes=None if frame is None else frame.dtypes,
        manifest_extra=extra,
        log=log,
    )


def _golden_rows(X: NDArray[np.float64], strata: NDArray[Any], schema: Schema) -> NDArray[np.int64]:
    """The golden sample, of rows without a passed unknown category (its value is not in
    the matrix, and the gate sends the golden rows as requests); nulls stay."""
    return golden.known_rows_sample(X, strata, schema.categorical_indices)


def _metrics(model: Any, schema: Schema, X: NDArray[np.float64], y: Labels) -> dict[str, float]:
    # A passed unknown category reaches a frame model as a stand-in value: an encoder
    # treats every value it has never seen alike, so the answer is the same.
    classes = None if schema.task == "regression" else _plain(model.classes_)
    return evaluate(schema.task, y, outputs_of(model, schema.task, X), classes)


def _json_params(estimator: Any) -> dict[str, Any]:
    """The final estimator's own parameters as JSON (an object parameter by its repr)."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    params = {}
    for key, value in sorted(final.get_params(deep=False).items()):
        plain = value
        if (isinstance(value, float) and not math.isfinite(value)) or not isinstance(
            value, str | int | float | bool | type(None)
        ):
            plain = repr(value)
        params[key] = plain
    return params


def _key(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain(classes: Any) -> list[Any]:
    return [_key(c) for c in classes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.package",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="model name, e.g. cancer (needed to package)")
    parser.add_argument("--version", help="version to write, e.g. v1 (needed to package)")
    parser.add_argument(
        "--schema",
        type=Path,
        metavar="FILE",
        help="feature schema, JSON or YAML (needed to package)",
    )
    parser.add_argument(
        "--estimator",
        required=True,
        type=Path,
        metavar="FILE",
        help="the fitted estimator or Pipeline: FILE.skops, or FILE.joblib (a pickle: loading "
        "it runs its code; package only files you trust)",
    )
    parser.add_argument(
        "--sha256", metavar="HEX", help="refuse the estimator file unless its SHA-256 is HEX"
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="LABELLED.csv",
        help="labelled rows to judge the model on (metrics, quality gate, model card, golden "
        "set with labels); without it the gate does not check and demo/serve do not pick it",
    )
    parser.add_argument(
        "--training-data",
        type=Path,
        metavar="TRAINING.csv",
        help="the rows the estimator was fitted on (same columns as --data; for a model "
        "fitted on a numpy array, in the order of the fit): recorded as a fingerprint, so "
        "that the quality gate compares versions only on rows neither saw; with --data, a "
        "holdout metric far below the training one is flagged (" + feature_order.RULE + ")",
    )
    parser.add_argument(
        feature_order.CONFIRM_FLAG,
        action="store_true",
        help="package a model fitted without column names (on a numpy array): you confirm "
        "that the schema lists its features in the order of the fit",
    )
    parser.add_argument(
        "--write-schema",
        type=Path,
        metavar="FILE",
        help="draft the schema (FILE.json or FILE.yaml) from the fitted pipeline and --data, "
        "write it and package nothing; review it, then package with --schema FILE",
    )
    parser.add_argument(
        "--label",
        metavar="COLUMN",
        help="with --write-schema: the label column of --data (default: its one column the "
        "model does not read)",
    )
    cli.add_version_options(parser, DEFAULT_OUTPUT)
    args = cli.parse(parser, argv)
    if args.sha256 is not None and not SHA256.fullmatch(args.sha256):
        parser.error(f"--sha256 {args.sha256!r} is not 64 hex digits")
    if args.write_schema is not None:
        return cli.run(
            lambda: draft_schema.write(
                args.estimator,
                args.write_schema,
                data=args.data,
                label=args.label,
                sha256=args.sha256,
                read=read_estimator,
            )
        )
    needed = [f"--{n}" for n in ("model", "version", "schema") if getattr(args, n) is None]
    if needed:
        parser.error(f"the following arguments are required to package: {', '.join(needed)}")
    return cli.run(
        lambda: package(
            args.estimator,
            schema=load_schema(args.schema),
            data=args.data,
            training_data=args.training_data,
            sha256=args.sha256,
            confirm_order=args.confirm_feature_order,
            **cli.version_arguments(args),
        )
    )


if __name__ == "__main__":
    sys.exit(main())

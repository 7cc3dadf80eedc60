"""Fit a built-in estimator over a schema's features and write a versioned artifact with its
manifest and model card.

python -m training.train --version v3                 # churn, synthetic data
python -m training.train --version v3 --data my.csv   # churn, your data
python -m training.train --model fraud --version v1 --schema fraud.yaml --data fraud.csv \\
    --estimator random_forest --param n_estimators=300 --param max_depth=12

A model that does not beat the know-nothing predictor, chance, or (beyond a tolerance) the
model's previous version on the same holdout is refused; see serving/quality.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from serving import artifacts
from serving.distributions import MANIFEST_KEY as REFERENCE_KEY
from serving.distributions import reference_distributions
from serving.schema import Schema, SchemaError
from training import cli, estimators, golden, skops_artifact, versions
from training.dataset import Labels, check_class_balance, fingerprint, load_csv
from training.estimators import DEFAULT_KIND, GBM_PARAMS, KINDS
from training.publish import (
    ARTIFACT_FILE,
    ARTIFACT_FORMAT,
    Labelled,
    evaluate,
    feature_schema_with_observed,
    publish,
    write_golden_set,
)
from training.schema import CHURN, CHURN_SCHEMA_FILE, load_schema
from training.synthetic import generate
from training.training_rows import MANIFEST_KEY as TRAINING_ROWS_KEY
from training.training_rows import RowFilter

__all__ = ["ARTIFACT_FILE", "ARTIFACT_FORMAT", "GBM_PARAMS", "feature_schema_with_observed"]

ROOT = Path(__file__).resolve().parent.parent
# The example whose features training knows without a schema file (training/schemas/churn.json).
BUILT_IN_MODEL = "churn"
DEFAULT_OUTPUT = ROOT / "model_artifacts"
HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 42


@dataclass(frozen=True)
class TrainingData:
    X: NDArray[np.float64]
    y: Labels
    source: dict[str, Any]
    schema: Schema = CHURN


def synthetic_data(rows: int, seed: int) -> TrainingData:
    X, y = generate(rows, seed)
    check_class_balance(y, source=f"synthetic data (rows={rows}, seed={seed})")
    return TrainingData(X, y, {"kind": "synthetic", "rows": rows, "seed": seed})


def csv_data(path: Path, schema: Schema = CHURN) -> TrainingData:
    X, y = load_csv(path, schema)
    return TrainingData(X, y, {"kind": "csv", "file": path.name}, schema)


def build_pipeline(
    params: dict[str, Any] | None = None,
    *,
    schema: Schema = CHURN,
    estimator: str = DEFAULT_KIND,
) -> Pipeline:
    return estimators.build_pipeline(schema, estimator, params)


def train(
    data: TrainingData,
    *,
    model_name: str,
    version: str,
    output: Path = DEFAULT_OUTPUT,
    force: bool = False,
    estimator: str = DEFAULT_KIND,
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
        raise versions.ArtifactExistsError(
            f"{output / model_name / version} already exists; choose a new version or pass "
            "--force to replace it"
        )
    schema = data.schema
    # Checked before the split and the fit: a bad name or kind costs nothing.
    pipeline = build_pipeline(params, schema=schema, estimator=estimator)
    classification = schema.task != "regression"
    X_train, X_test, y_train, y_test = train_test_split(
        data.X,
        data.y,
        test_size=HOLDOUT_FRACTION,
        random_state=SPLIT_SEED,
        stratify=data.y if classification else None,
    )
    # A regression has no classes to stratify by: one stratum, a plain random sample.
    strata = y_test if classification else np.zeros(len(y_test), dtype=np.int64)
    golden_index = golden.known_rows_sample(X_test, strata, schema.categorical_indices, golden_rows)
    missing = estimators.missing_values(schema, estimator)
    for name, handling in missing.items():
        log(f"nullable feature {name}: {handling}")
    started = time.perf_counter()
    log(f"fitting on {len(y_train)} rows, {len(schema.features)} features ...")
    pipeline.fit(X_train, y_train)
    log(f"fitted in {time.perf_counter() - started:.1f}s; evaluating on {len(y_test)} holdout rows")
    return publish(
        pipeline,
        schema=schema,
        model_name=model_name,
        version=version,
        output=output,
        training_record={
            "estimator": estimators.describe(pipeline),
            "params": estimators.resolve_params(estimator, schema.task, params),
            # Only for a schema with nullable features: other manifests keep their bytes.
            **({"missing_values": missing} if missing else {}),
            "data_source": data.source,
            "holdout_fraction": HOLDOUT_FRACTION,
            "split_seed": SPLIT_SEED,
        },
        observed_X=data.X,
        labelled=Labelled(
            X_test,
            y_test,
            y_train,
            golden_index,
            {"sample": "stratified from the holdout", "seed": golden.SAMPLE_SEED},
        ),
        data_fingerprint=fingerprint(data.X, data.y, schema),
        # The next version compares with this one only on rows this one did not see.
        training_rows=RowFilter.of(X_train, y_train),
        force=force,
        compiled=compiled,
        accept_regression=accept_regression,
        enforce_gate=enforce_gate,
        log=log,
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
    recomputed = evaluate("binary", y_test, proba, None)
    if recomputed != {k: manifest["metrics"][k] for k in recomputed}:
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
            {"sample": "stratified from the holdout", "seed": golden.SAMPLE_SEED},
            # A version with a training-row fingerprint gets it in its golden set too.
            training_rows=manifest.get(TRAINING_ROWS_KEY),
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

    return versions.write_version(
        version_dir.parent.parent,
        manifest["model_name"],
        manifest["model_version"],
        write_files,
        force=True,
    )


def _without_checksum(entry: dict[str, Any]) -> dict[str, Any]:
    # write_version adds them again from the bytes on disk.
    return {k: v for k, v in entry.items() if k not in ("sha256", "size_bytes")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=BUILT_IN_MODEL,
        help=f"model name (default: {BUILT_IN_MODEL}, the built-in example; any other name "
        "needs --schema)",
    )
    parser.add_argument("--version", required=True, help="version to write, e.g. v3")
    parser.add_argument(
        "--schema",
        type=Path,
        metavar="FILE",
        help="feature schema, JSON or YAML (default: the churn features, "
        f"{CHURN_SCHEMA_FILE.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--estimator",
        default=DEFAULT_KIND,
        choices=list(KINDS),
        help=f"built-in estimator (default {DEFAULT_KIND}: StandardScaler + gradient boosting); "
        "the classifier or regressor follows the schema's task",
    )
    parser.add_argument(
        "--params", type=Path, metavar="FILE", help="estimator hyperparameters, a JSON object"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one hyperparameter, over --params (VALUE read as JSON, else as text); repeatable",
    )
    parser.add_argument("--data", type=Path, help="training CSV (default: synthetic data)")
    parser.add_argument("--rows", type=int, default=20000, help="synthetic rows (default 20000)")
    parser.add_argument("--data-seed", type=int, default=7, help="synthetic data seed (default 7)")
    parser.add_argument(
        "--golden-rows",
        type=int,
        default=golden.DEFAULT_ROWS,
        help=f"golden set size, a stratified sample of the holdout (default "
        f"{golden.DEFAULT_ROWS}; all of it when the holdout is smaller)",
    )
    cli.add_version_options(parser, DEFAULT_OUTPUT)
    args = cli.parse(parser, argv)
    return cli.run(lambda: _train_from_args(args))


def _train_from_args(args: argparse.Namespace) -> Path:
    artifacts.check_identity(args.model, args.version)
    if args.schema is None and args.model != BUILT_IN_MODEL:
        # Without a schema only the built-in example's features are known: training them
        # under another name would deploy churn's inputs as, say, a fraud model.
        raise SchemaError(
            f"--model {args.model} needs --schema FILE describing its features (and --data "
            f"with its training rows); without one, only the built-in {BUILT_IN_MODEL!r} "
            "example trains (see docs/bring-your-own-model.md)"
        )
    schema = load_schema(args.schema) if args.schema else CHURN
    params = estimators.parse_param_args(args.params, args.param)
    # Refused before the data is read: a typo in a name costs nothing.
    estimators.resolve_params(args.estimator, schema.task, params)
    if args.data:
        data = csv_data(args.data, schema)
    elif schema == CHURN:
        data = synthetic_data(args.rows, args.data_seed)
    else:
        raise SchemaError(
            f"{args.schema}: synthetic data has the churn features only; give the "
            "training CSV with --data"
        )
    return train(
        data,
        estimator=args.estimator,
        params=params or None,
        golden_rows=args.golden_rows,
        **cli.version_arguments(args),
    )


if __name__ == "__main__":
    sys.exit(main())

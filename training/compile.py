"""Package a fitted pipeline for the "compiled" runtime, behind a parity gate.

The compiled artifact is evaluated by ``lambda_src/inference/compiled_model.py`` with
numpy alone: no scikit-learn import and no pickle at cold start. Before it is written,
its probabilities are compared with the pipeline's on the holdout set plus random rows
spanning the observed feature ranges; a model that misses the bound is refused with
the figures, and the figures that passed go into the manifest.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

# The compiled runtime ships inside the image; training imports the same module so that
# the gate checks exactly the code that will serve.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambda_src"))
from inference import compiled_model

COMPILED_FILE = "model.compiled.npz"
# Measured on the reference models: 2.2e-16 (one ulp); the bound leaves room for
# another numpy build's exp() without admitting any real divergence.
PARITY_BOUND = 1e-12
PARITY_RANDOM_ROWS = 10000
PARITY_SEED = 20261125


class UnsupportedModelError(ValueError):
    """The pipeline has a step the compiled runtime cannot evaluate."""


class ParityError(ValueError):
    """The compiled model does not reproduce the pipeline's predictions."""


@dataclass(frozen=True)
class ParityReport:
    rows: int
    holdout_rows: int
    random_rows: int
    max_abs_diff: float
    label_mismatches: int
    bound: float

    @property
    def passed(self) -> bool:
        return self.label_mismatches == 0 and self.max_abs_diff <= self.bound


def compile_pipeline(
    pipeline: Pipeline, *, model_name: str, model_version: str, features: list[dict[str, Any]]
) -> bytes:
    """Return the ``.npz`` bytes of the compiled model."""
    steps = [type(step).__name__ for _, step in pipeline.steps]
    if steps != ["StandardScaler", "GradientBoostingClassifier"]:
        raise UnsupportedModelError(
            f"the compiled runtime supports StandardScaler + GradientBoostingClassifier, "
            f"not {' + '.join(steps)}; use runtime 'sklearn' for this model"
        )
    scaler: StandardScaler = pipeline.steps[0][1]
    gbm: GradientBoostingClassifier = pipeline.steps[1][1]
    if list(gbm.classes_) != [0, 1] or gbm.estimators_.shape[1] != 1:
        raise UnsupportedModelError("the compiled runtime supports binary 0/1 classifiers only")
    n_features = len(features)
    init_raw = float(gbm._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0, 0])

    roots, feature, threshold, left, right, value = [], [], [], [], [], []
    offset, depth = 0, 0
    for estimator in gbm.estimators_[:, 0]:
        tree = estimator.tree_
        leaf = tree.children_left == -1
        local = np.arange(tree.node_count)
        roots.append(offset)
        feature.append(np.where(leaf, 0, tree.feature))
        # A leaf compares against +inf and points at itself, so every row can take the
        # same number of steps whatever the depth of the leaf it reaches.
        threshold.append(np.where(leaf, np.inf, tree.threshold))
        left.append(np.where(leaf, local, tree.children_left) + offset)
        right.append(np.where(leaf, local, tree.children_right) + offset)
        value.append(gbm.learning_rate * tree.value[:, 0, 0])
        offset += tree.node_count
        depth = max(depth, int(tree.max_depth))

    meta = {
        "format": compiled_model.FORMAT,
        "model_name": model_name,
        "model_version": model_version,
        "features": features,
        "depth": depth,
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        mean=scaler.mean_.astype(np.float64),
        scale=scaler.scale_.astype(np.float64),
        init_raw=np.float64(init_raw),
        roots=np.asarray(roots, dtype=np.int32),
        feature=np.concatenate(feature).astype(np.int32),
        threshold=np.concatenate(threshold).astype(np.float64),
        left=np.concatenate(left).astype(np.int32),
        right=np.concatenate(right).astype(np.int32),
        value=np.concatenate(value).astype(np.float64),
        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    )
    return buffer.getvalue()


def parity_rows(
    X_holdout: NDArray[np.float64], features: list[dict[str, Any]]
) -> NDArray[np.float64]:
    """The holdout plus random rows over each feature's observed range."""
    rng = np.random.default_rng(PARITY_SEED)
    columns = []
    for spec in features:
        low, high = spec["observed"]["min"], spec["observed"]["max"]
        if spec["dtype"] == "integer":
            columns.append(rng.integers(int(low), int(high) + 1, PARITY_RANDOM_ROWS))
        else:
            columns.append(np.round(rng.uniform(low, high, PARITY_RANDOM_ROWS), 2))
    return np.vstack([X_holdout, np.column_stack(columns).astype(np.float64)])


def check_parity(
    pipeline: Pipeline,
    compiled: bytes,
    X_holdout: NDArray[np.float64],
    features: list[dict[str, Any]],
    *,
    bound: float = PARITY_BOUND,
) -> ParityReport:
    """Compare the compiled model with the pipeline; raise ``ParityError`` if it misses."""
    X = parity_rows(X_holdout, features)
    expected = pipeline.predict_proba(X)[:, 1]
    actual = compiled_model.load(compiled).predict_proba(X)
    report = ParityReport(
        rows=len(X),
        holdout_rows=len(X_holdout),
        random_rows=len(X) - len(X_holdout),
        max_abs_diff=float(np.max(np.abs(actual - expected))),
        label_mismatches=int(np.sum((actual >= 0.5) != (expected >= 0.5))),
        bound=bound,
    )
    if not report.passed:
        raise ParityError(
            f"compiled model refused: max |P(compiled) - P(sklearn)| = {report.max_abs_diff:.3g} "
            f"(bound {bound:g}), {report.label_mismatches} of {report.rows} labels differ"
        )
    return report


def parity_record(report: ParityReport) -> dict[str, Any]:
    return {**asdict(report), "passed": report.passed}

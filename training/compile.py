"""Package a fitted pipeline for the "compiled" runtime, behind a parity gate.

The compiled artifact is evaluated by ``lambda_src/inference/compiled_model.py`` with
numpy alone: no scikit-learn import and no pickle at cold start. Before it is written,
its probabilities are compared with the pipeline's on the holdout set, random rows
spanning the observed feature ranges, and tie rows: for every split of every tree, a row
that reaches that split with the split's feature on each float32 neighbour of the threshold
(on the threshold itself when it is a float32), where a ``<`` against ``<=`` slip would show.
The compiled model is evaluated in batches of every size class the runtime treats
differently. A model that misses the bound is refused with the figures, and the figures
that passed go into the manifest.
"""

from __future__ import annotations

import io
import itertools
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
# The runtime switches method at 16 and 64 rows and works in blocks of 256 (see
# inference/tree_forest.py): the gate evaluates the compiled model in chunks of these sizes
# in turn, so that each path is checked.
PARITY_CHUNK_SIZES = (1, 15, 16, 63, 64, 256, 1000)


class UnsupportedModelError(ValueError):
    """The pipeline has a step the compiled runtime cannot evaluate."""


class ParityError(ValueError):
    """The compiled model does not reproduce the pipeline's predictions."""


@dataclass(frozen=True)
class ParityReport:
    rows: int
    holdout_rows: int
    random_rows: int
    tie_rows: int
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
    # A packaged model may be a bare estimator, not a Pipeline: refused by name as well.
    steps = [type(step).__name__ for _, step in getattr(pipeline, "steps", [("", pipeline)])]
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


def tie_rows(pipeline: Pipeline) -> NDArray[np.float64]:
    """Two rows per split node: each reaches the node, its feature on either side of the split.

    Built in the trees' input space (scaled, float32) along the node's path, then mapped
    back through the scaler; a row whose scaled float32 value is not exactly the one aimed
    at is dropped (the report counts the rows kept).
    """
    scaler: StandardScaler = pipeline.steps[0][1]
    gbm: GradientBoostingClassifier = pipeline.steps[1][1]
    n_features = scaler.mean_.shape[0]
    targets: list[NDArray[np.float32]] = []
    for estimator in gbm.estimators_[:, 0]:
        tree = estimator.tree_
        low = np.full(n_features, -np.inf)
        high = np.full(n_features, np.inf)
        _tie_rows_below(tree, 0, low, high, targets)
    if not targets:
        return np.empty((0, n_features))
    scaled = np.vstack(targets)
    X = _unscale(scaled, scaler.mean_, scaler.scale_)
    exact = np.all(scaler.transform(X).astype(np.float32) == scaled, axis=1)
    return X[exact]


def _tie_rows_below(
    tree: Any,
    node: int,
    low: NDArray[np.float64],
    high: NDArray[np.float64],
    out: list[NDArray[np.float32]],
) -> None:
    # The path so far confines each feature to (low, high]: scikit-learn goes left on <=.
    left, right = tree.children_left[node], tree.children_right[node]
    if left == -1:
        return
    feature, threshold = int(tree.feature[node]), float(tree.threshold[node])
    base = np.empty(low.shape[0], dtype=np.float32)
    for f, (lo, hi) in enumerate(zip(low, high, strict=True)):
        value = _float32_at_or_below(hi) if np.isfinite(hi) else None
        if value is None or float(value) <= lo:
            value = _float32_above(lo) if np.isfinite(lo) else np.float32(0)
        if not lo < float(value) <= hi:
            return  # no float32 reaches this node: nothing below it to test either
        base[f] = value
    below = _float32_at_or_below(threshold)
    for value in (below, np.nextafter(below, np.float32(np.inf))):
        if low[feature] < float(value) <= high[feature]:
            row = base.copy()
            row[feature] = value
            out.append(row[None, :])
    saved_high, saved_low = high[feature], low[feature]
    high[feature] = min(saved_high, threshold)
    _tie_rows_below(tree, left, low, high, out)
    high[feature] = saved_high
    low[feature] = max(saved_low, threshold)
    _tie_rows_below(tree, right, low, high, out)
    low[feature] = saved_low


# Compared as Python floats: numpy compares a float32 with a Python float in float32 (NEP 50),
# which would call a rounded-up threshold "equal".
def _float32_at_or_below(x: float) -> np.float32:
    value = np.float32(x)
    return np.nextafter(value, np.float32(-np.inf)) if float(value) > x else value


def _float32_above(x: float) -> np.float32:
    value = np.float32(x)
    return np.nextafter(value, np.float32(np.inf)) if float(value) <= x else value


def _unscale(
    scaled: NDArray[np.float32], mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Raw rows whose ``float32((x - mean) / scale)`` is ``scaled``, found by bisection."""
    target = scaled.astype(np.float64)

    def forward(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return ((x - mean) / scale).astype(np.float32).astype(np.float64)

    guess = target * scale + mean
    # One float32 step of the target, in raw units, brackets the answer; widen until it does.
    step = np.abs(np.spacing(scaled).astype(np.float64) * scale) + np.abs(np.spacing(guess))
    low, high = guess - step, guess + step
    for _ in range(60):
        widen_low, widen_high = forward(low) >= target, forward(high) <= target
        if not (widen_low.any() or widen_high.any()):
            break
        low = np.where(widen_low, low - step, low)
        high = np.where(widen_high, high + step, high)
        step *= 2
    found = np.where(forward(guess) == target, guess, np.nan)
    for _ in range(200):
        todo = np.isnan(found)
        if not todo.any():
            break
        middle = low + (high - low) / 2
        value = forward(middle)
        found = np.where(todo & (value == target), middle, found)
        low = np.where(value < target, middle, low)
        high = np.where(value > target, middle, high)
    return np.where(np.isnan(found), guess, found)


def _predict_in_chunks(model: compiled_model.CompiledModel, X: NDArray[np.float64]) -> Any:
    sizes = itertools.cycle(PARITY_CHUNK_SIZES)
    parts, start = [], 0
    while start < len(X):
        size = next(sizes)
        parts.append(model.predict_proba(X[start : start + size]))
        start += size
    return np.concatenate(parts)


def check_parity(
    pipeline: Pipeline,
    compiled: bytes,
    X_holdout: NDArray[np.float64],
    features: list[dict[str, Any]],
    *,
    bound: float = PARITY_BOUND,
) -> ParityReport:
    """Compare the compiled model with the pipeline; raise ``ParityError`` if it misses."""
    sampled = parity_rows(X_holdout, features)
    ties = tie_rows(pipeline)
    X = np.vstack([sampled, ties])
    expected = pipeline.predict_proba(X)[:, 1]
    actual = _predict_in_chunks(compiled_model.load(compiled), X)
    report = ParityReport(
        rows=len(X),
        holdout_rows=len(X_holdout),
        random_rows=len(sampled) - len(X_holdout),
        tie_rows=len(ties),
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

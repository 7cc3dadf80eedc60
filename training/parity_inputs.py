"""The rows the parity gate compares the compiled model and the pipeline on.

``parity_rows``: the holdout plus random rows spanning each feature's observed range
(categorical features: every code). ``tie_rows``: for every split of every tree, a row that
reaches that split with the split's feature on each neighbour of the threshold in the
trees' own precision (on the threshold itself when it is representable), where a ``<``
against ``<=`` slip would show. ``boundary_rows``: for a linear classifier, rows on its
decision boundaries and just beside them. Rows aimed at in the estimator's input space are
mapped back through the preprocessing to model inputs (``_to_raw``).

Rows are the handler's model input matrix (serving/schema.py): NaN for a null of a nullable
feature, ``UNKNOWN_CODE`` for an unknown category of a feature that passes them. A frame
model (fitted on a DataFrame) is given them through ``inference.frames.to_frame``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from inference import compiled_pipeline
from inference.frames import to_frame
from serving.schema import UNKNOWN_CODE
from training.compile import schema_features, unwrap
from training.compile_estimators import Tree, compile_estimator
from training.compile_preprocessing import Preprocessing, preprocessing
from training.compile_support import split_pipeline

PARITY_RANDOM_ROWS = 10000
PARITY_SEED = 20261125
# Rows placed on each decision boundary of a linear classifier.
BOUNDARY_ROWS = 1000
# The share of random rows with a null (nullable features) or an unknown category
# (features that pass them), each feature on its own.
NULL_SHARE = 0.1
UNKNOWN_SHARE = 0.1


class _Step:
    """A pipeline's preprocessing as the parity rows need it: its compiled entries and its
    own ``transform`` of model input rows (through ``to_frame`` for a frame model)."""

    def __init__(
        self,
        pipeline: Any,
        n_inputs: int,
        features: list[dict[str, Any]] | None,
        frame_dtypes: Mapping[str, str] | None = None,
    ) -> None:
        pipeline, self.frame, self.dtypes = unwrap(pipeline, frame_dtypes)
        self.step, self.estimator = split_pipeline(pipeline)
        self.features = (
            None if features is None else schema_features(features, pipeline, self.frame)
        )
        self.pre = preprocessing(
            self.step, n_inputs, self.features, frame=self.frame, dtypes=self.dtypes
        )

    def transform(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        inputs: Any = X
        if self.frame:
            assert self.features is not None
            inputs = to_frame(X, self.features, dtypes=self.dtypes)
        out = inputs if self.step is None else self.step.transform(inputs)
        if hasattr(out, "toarray"):
            out = out.toarray()
        return np.asarray(out, dtype=np.float64)


def parity_rows(
    X_holdout: NDArray[np.float64], features: list[dict[str, Any]]
) -> NDArray[np.float64]:
    """The holdout plus random rows over each feature's observed range (every code of a
    categorical feature), with nulls where a feature is nullable and unknown categories
    where a feature passes them."""
    rng = np.random.default_rng(PARITY_SEED)
    columns = []
    for spec in features:
        if spec["dtype"] == "categorical":
            columns.append(rng.integers(0, len(spec["allowed"]["values"]), PARITY_RANDOM_ROWS))
            continue
        observed = spec.get("observed") or spec["allowed"]
        low, high = observed["min"], observed["max"]
        if spec["dtype"] == "integer":
            columns.append(rng.integers(int(low), int(high) + 1, PARITY_RANDOM_ROWS))
        else:
            columns.append(np.round(rng.uniform(low, high, PARITY_RANDOM_ROWS), 2))
    random = np.column_stack(columns).astype(np.float64)
    # A second generator: the rows of a schema without nulls or unknowns stay as they were.
    extra = np.random.default_rng(PARITY_SEED + 1)
    for j, spec in enumerate(features):
        if spec.get("unknown") == "pass":
            random[extra.random(PARITY_RANDOM_ROWS) < UNKNOWN_SHARE, j] = UNKNOWN_CODE
        if spec.get("nullable"):
            random[extra.random(PARITY_RANDOM_ROWS) < NULL_SHARE, j] = np.nan
    return np.vstack([X_holdout, random])


def tie_rows(
    pipeline: Any,
    features: list[dict[str, Any]] | None = None,
    frame_dtypes: Mapping[str, str] | None = None,
) -> NDArray[np.float64]:
    """Two rows per split node: each reaches the node, its feature on either side of the split.

    Built in the trees' input space (after preprocessing, in the trees' precision) along
    the node's path, then mapped back through the preprocessing; a row whose transformed
    numeric values are not exactly the ones aimed at is dropped (the report counts the rows
    kept). Splits on one-hot or table columns have no ties to test (their inputs are a
    categorical feature's few values). ``features``: the artifact's entries (needed for a
    frame model and for categorical features' tables), ``frame_dtypes`` its DataFrame's.
    """
    n_inputs = int(getattr(pipeline, "n_features_in_", 0))
    inputs = _Step(pipeline, n_inputs, features, frame_dtypes)
    pre = inputs.pre
    meta, trees, _ = compile_estimator(inputs.estimator, len(pre.input))
    if trees is None:
        return np.empty((0, n_inputs))
    dtype = np.dtype(meta["tree_input"])
    targets: list[NDArray[Any]] = []
    width = len(pre.input)
    for tree in trees:
        low = np.full(width, -np.inf)
        high = np.full(width, np.inf)
        _tie_rows_below(tree, 0, low, high, targets, dtype)
    if not targets:
        return np.empty((0, n_inputs))
    aimed = np.vstack(targets)
    X = _to_raw(aimed, pre, n_inputs, dtype)
    transformed = inputs.transform(X)
    numeric = ~np.isin(
        pre.kind, (compiled_pipeline.ONEHOT, compiled_pipeline.TABLE, compiled_pipeline.MISSING)
    )
    exact = np.all(transformed.astype(dtype)[:, numeric] == aimed[:, numeric], axis=1)
    return X[exact]


def _tie_rows_below(
    tree: Tree,
    node: int,
    low: NDArray[np.float64],
    high: NDArray[np.float64],
    out: list[NDArray[Any]],
    dtype: np.dtype[Any],
) -> None:
    # The path so far confines each feature to (low, high]: scikit-learn goes left on <=.
    left, right = tree.left[node], tree.right[node]
    if left == -1:
        return
    feature, threshold = int(tree.feature[node]), float(tree.threshold[node])
    categorical = tree.cat_split is not None and tree.cat_split[node] >= 0
    if categorical or not np.isfinite(threshold):
        # No number ties a categorical split, nor one at +inf (only NaN goes right).
        _tie_rows_below(tree, left, low, high, out, dtype)
        _tie_rows_below(tree, right, low, high, out, dtype)
        return
    base = np.empty(low.shape[0], dtype=dtype)
    for f, (lo, hi) in enumerate(zip(low, high, strict=True)):
        value = _at_or_below(hi, dtype) if np.isfinite(hi) else None
        if value is None or float(value) <= lo:
            value = _above(lo, dtype) if np.isfinite(lo) else dtype.type(0)
        if not lo < float(value) <= hi:
            return  # no value of this precision reaches this node: nothing below it either
        base[f] = value
    below = _at_or_below(threshold, dtype)
    for value in (below, np.nextafter(below, dtype.type(np.inf))):
        if low[feature] < float(value) <= high[feature]:
            row = base.copy()
            row[feature] = value
            out.append(row[None, :])
    saved_high, saved_low = high[feature], low[feature]
    high[feature] = min(saved_high, threshold)
    _tie_rows_below(tree, left, low, high, out, dtype)
    high[feature] = saved_high
    low[feature] = max(saved_low, threshold)
    _tie_rows_below(tree, right, low, high, out, dtype)
    low[feature] = saved_low


# Compared as Python floats: numpy compares a float32 with a Python float in float32 (NEP 50),
# which would call a rounded-up threshold "equal".
def _at_or_below(x: float, dtype: np.dtype[Any]) -> Any:
    value = dtype.type(x)
    return np.nextafter(value, dtype.type(-np.inf)) if float(value) > x else value


def _above(x: float, dtype: np.dtype[Any]) -> Any:
    value = dtype.type(x)
    return np.nextafter(value, dtype.type(np.inf)) if float(value) <= x else value


def _to_raw(
    aimed: NDArray[Any], pre: Preprocessing, n_inputs: int, dtype: np.dtype[Any]
) -> NDArray[np.float64]:
    """Model input rows whose preprocessing gives ``aimed`` (numeric columns, found by
    bisection; a categorical code: the category whose one-hot column is aimed highest; a
    feature read through tables: its first code)."""
    X = np.zeros((aimed.shape[0], n_inputs))
    onehot: dict[int, list[tuple[int, float]]] = {}
    for j, (column, kind, a, b) in enumerate(zip(pre.input, pre.kind, pre.a, pre.b, strict=True)):
        target = aimed[:, j]
        if kind == compiled_pipeline.PASSTHROUGH:
            X[:, column] = target
        elif kind == compiled_pipeline.ONEHOT:
            onehot.setdefault(column, []).append((j, a))
        elif kind == compiled_pipeline.STANDARD:
            X[:, column] = _invert(target, _standard(a, b), target * b + a, dtype)
        elif kind == compiled_pipeline.MINMAX and a != 0:
            X[:, column] = _invert(target, _minmax(a, b), (target - b) / a, dtype)
    for column, entries in onehot.items():
        positions = [j for j, _ in entries]
        codes = np.asarray([category for _, category in entries])
        X[:, column] = codes[np.argmax(aimed[:, positions], axis=1)]
    return X


def _standard(a: float, b: float) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    return lambda x: (x - a) / b  # StandardScaler.transform's arithmetic


def _minmax(a: float, b: float) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    return lambda x: x * a + b  # MinMaxScaler.transform's arithmetic (before any clip)


def _invert(
    target: NDArray[Any],
    transform: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    guess: NDArray[Any],
    dtype: np.dtype[Any],
) -> NDArray[np.float64]:
    """Raw values ``x`` with ``dtype(transform(x)) == target``, found by bisection
    (``transform`` increasing); the guess where none exists."""
    wanted = target.astype(np.float64)
    guess = guess.astype(np.float64)

    def forward(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return transform(x).astype(dtype).astype(np.float64)

    # One step of the target's precision, in raw units, brackets the answer; widen until it does.
    slope = np.abs(transform(np.ones(1))[0] - transform(np.zeros(1))[0]) or 1.0
    step = np.abs(np.spacing(target).astype(np.float64) / slope) + np.abs(np.spacing(guess))
    low, high = guess - step, guess + step
    for _ in range(60):
        widen_low, widen_high = forward(low) >= wanted, forward(high) <= wanted
        if not (widen_low.any() or widen_high.any()):
            break
        low = np.where(widen_low, low - step, low)
        high = np.where(widen_high, high + step, high)
        step *= 2
    found = np.where(forward(guess) == wanted, guess, np.nan)
    for _ in range(200):
        todo = np.isnan(found)
        if not todo.any():
            break
        middle = low + (high - low) / 2
        value = forward(middle)
        found = np.where(todo & (value == wanted), middle, found)
        low = np.where(value < wanted, middle, low)
        high = np.where(value > wanted, middle, high)
    return np.where(np.isnan(found), guess, found)


def boundary_rows(
    pipeline: Any,
    base: NDArray[np.float64],
    features: list[dict[str, Any]] | None = None,
    frame_dtypes: Mapping[str, str] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """For a linear classifier: ``base`` rows moved, along one numeric input, onto each
    decision boundary (P = 0.5, or two classes' scores equal), and to either side of it by
    a few times the rounding error of the scores.

    Returns the rows and which of them sit on a boundary. There the label is decided by
    the last bit of a dot product: scikit-learn's own labels for those rows change with
    the batch size (BLAS sums in another order), so the gate holds them to the probability
    bound only, and the rows just beside the boundary to identical labels.
    """
    n_inputs = base.shape[1]
    nothing = (np.empty((0, n_inputs)), np.zeros(0, dtype=bool))
    inputs = _Step(pipeline, n_inputs, features, frame_dtypes)
    estimator, pre = inputs.estimator, inputs.pre
    if type(estimator) is not LogisticRegression or not len(base):
        return nothing
    kinds = np.asarray(pre.kind)
    usable = np.flatnonzero(
        (kinds == compiled_pipeline.PASSTHROUGH)
        | (kinds == compiled_pipeline.STANDARD)
        | ((kinds == compiled_pipeline.MINMAX) & (np.asarray(pre.a) != 0))
    )
    if not usable.size:
        return nothing
    base = base[:BOUNDARY_ROWS]
    Z = inputs.transform(base)
    coef, intercept = estimator.coef_, estimator.intercept_
    pairs = [(0, None)] if coef.shape[0] == 1 else list(itertools.pairwise(range(coef.shape[0])))
    rows, on_boundary = [], []
    for first, second in pairs:
        d = coef[first] if second is None else coef[first] - coef[second]
        c = intercept[first] if second is None else intercept[first] - intercept[second]
        j = int(usable[np.argmax(np.abs(d[usable]))])
        if d[j] == 0:
            continue
        on = Z.copy()
        on[:, j] = -(Z @ d - Z[:, j] * d[j] + c) / d[j]
        # A bound on the rounding error of a dot product of this many terms.
        noise = (len(d) + 2) * np.finfo(np.float64).eps * (np.abs(on * d).sum(axis=1) + abs(c))
        for shift, exact in ((0.0, True), (-4.0, False), (4.0, False)):
            aimed = on.copy()
            aimed[:, j] += shift * noise / d[j]
            X = base.copy()
            X[:, pre.input[j]] = _to_raw(aimed, pre, n_inputs, np.dtype(np.float64))[
                :, pre.input[j]
            ]
            rows.append(X)
            on_boundary.append(np.full(len(X), exact))
    if not rows:
        return nothing
    return np.vstack(rows), np.concatenate(on_boundary)

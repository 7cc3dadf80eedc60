"""Package a fitted pipeline for the "compiled" runtime, behind a parity gate.

The compiled artifact (format ``sklearn-compiled-npz/2``) is evaluated by
``lambda_src/inference/compiled_pipeline.py`` with numpy alone: no scikit-learn import
and no pickle at cold start. What compiles (see docs/performance.md for the table):

* preprocessing: none, ``StandardScaler``, ``MinMaxScaler``, ``OneHotEncoder`` over the
  categorical codes, or a ``ColumnTransformer`` of those (and ``passthrough``/``drop``);
* estimators: ``GradientBoosting*``, ``HistGradientBoosting*`` (numeric splits),
  ``RandomForest*``, ``ExtraTrees*``, ``DecisionTree*``, ``LogisticRegression``,
  ``LinearRegression``, ``Ridge``; binary, multiclass and regression.

Anything else raises ``UnsupportedModelError`` naming what is not supported, and the
version is served by runtime ``sklearn`` only.

Before the artifact is written its outputs are compared with the pipeline's on the
holdout set, random rows spanning each feature's observed range (categorical features:
every code), and boundary rows: for every split of every tree, a row that reaches that
split with the split's feature on each neighbour of the threshold in the trees' own
precision (on the threshold itself when it is representable), where a ``<`` against ``<=``
slip would show; for a linear classifier, rows on its decision boundaries. The compiled
model is evaluated in batches of every size class the runtime treats differently. A model
that misses the bound is refused with the figures, and the figures that passed go into
the manifest.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from inference import compiled_model, compiled_pipeline
from serving.tasks import TASKS

COMPILED_FILE = "model.compiled.npz"
COMPILED_FORMAT = compiled_pipeline.FORMAT
# Measured on the reference models: 2.2e-16 (one ulp); the bound leaves room for
# another numpy build's exp() without admitting any real divergence.
PARITY_BOUND = 1e-12
PARITY_RANDOM_ROWS = 10000
PARITY_SEED = 20261125
# The runtime switches method at 16 and 64 rows and works in blocks of 256 (see
# inference/tree_forest.py): the gate evaluates the compiled model in chunks of these sizes
# in turn, so that each path is checked.
PARITY_CHUNK_SIZES = (1, 15, 16, 63, 64, 256, 1000)
# Rows placed on each decision boundary of a linear classifier.
BOUNDARY_ROWS = 1000

TREE_ENSEMBLES = (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
)
LINEAR_MODELS = (LogisticRegression, LinearRegression, Ridge)
SUPPORTED_ESTIMATORS = tuple(c.__name__ for c in (*TREE_ENSEMBLES, *LINEAR_MODELS))
SUPPORTED_PREPROCESSING = (
    "StandardScaler",
    "MinMaxScaler",
    "OneHotEncoder",
    "ColumnTransformer of those and 'passthrough'",
)
_FALLBACK = "runtime 'sklearn' serves this model"


class UnsupportedModelError(ValueError):
    """The pipeline has a step the compiled runtime cannot evaluate; the message says which."""


class ParityError(ValueError):
    """The compiled model does not reproduce the pipeline's predictions."""


@dataclass(frozen=True)
class ParityReport:
    rows: int
    holdout_rows: int
    random_rows: int
    tie_rows: int  # rows on a split threshold or a linear decision boundary
    max_abs_diff: float
    label_mismatches: int
    bound: float
    # Rows exactly on a linear decision boundary: held to the bound, their labels not
    # compared (see boundary_rows).
    unlabelled_rows: int = 0

    @property
    def passed(self) -> bool:
        return self.label_mismatches == 0 and self.max_abs_diff <= self.bound


@dataclass
class _Preprocessing:
    """One entry per column of the estimator's input (see compiled_pipeline's docstring)."""

    input: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def add(self, column: int, kind: int, a: float = 0.0, b: float = 1.0) -> None:
        self.input.append(column)
        self.kind.append(kind)
        self.a.append(float(a))
        self.b.append(float(b))
        self.low.append(-np.inf)
        self.high.append(np.inf)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "pre_input": np.asarray(self.input, dtype=np.int32),
            "pre_kind": np.asarray(self.kind, dtype=np.int8),
            "pre_a": np.asarray(self.a, dtype=np.float64),
            "pre_b": np.asarray(self.b, dtype=np.float64),
            "pre_low": np.asarray(self.low, dtype=np.float64),
            "pre_high": np.asarray(self.high, dtype=np.float64),
        }


@dataclass(frozen=True)
class _Tree:
    """One tree in scikit-learn's layout: leaves have ``left == right == -1``."""

    feature: NDArray[np.intp]
    threshold: NDArray[np.float64]
    left: NDArray[np.intp]
    right: NDArray[np.intp]
    value: NDArray[np.float64]  # (nodes,) or (nodes, K): what the leaf adds


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _split_pipeline(pipeline: Any) -> tuple[Any | None, Any]:
    # A step set to None or "passthrough" does nothing.
    steps = (
        [s for _, s in pipeline.steps if s is not None and not isinstance(s, str)]
        if isinstance(pipeline, Pipeline)
        else [pipeline]
    )
    if not steps:
        raise UnsupportedModelError(f"the pipeline has no estimator; {_FALLBACK}")
    *pre, estimator = steps
    if len(pre) > 1:
        raise UnsupportedModelError(
            "the compiled runtime evaluates at most one preprocessing step, not "
            f"{' + '.join(type(s).__name__ for s in pre)}; {_FALLBACK}"
        )
    return (pre[0] if pre else None), estimator


def describe(pipeline: Any) -> str:
    """``StandardScaler + GradientBoostingClassifier``: what the manifest and errors name."""
    if isinstance(pipeline, Pipeline):
        return " + ".join(
            type(s).__name__ for _, s in pipeline.steps if s is not None and not isinstance(s, str)
        )
    return type(pipeline).__name__


def _preprocessing(step: Any | None, n_features: int) -> _Preprocessing:
    pre = _Preprocessing()
    columns = list(range(n_features))
    if step is None:
        for column in columns:
            pre.add(column, compiled_pipeline.PASSTHROUGH)
    elif isinstance(step, ColumnTransformer):
        _column_transformer(step, n_features, pre)
    else:
        _transformer(step, columns, pre, where="")
    return pre


def _column_transformer(ct: ColumnTransformer, n_features: int, pre: _Preprocessing) -> None:
    if getattr(ct, "sparse_output_", False):
        raise UnsupportedModelError(f"a ColumnTransformer with sparse output; {_FALLBACK}")
    indices: dict[str, list[int]] = getattr(ct, "_transformer_to_input_indices", {})
    for name, transformer, _ in ct.transformers_:
        columns = [int(c) for c in indices.get(name, [])]
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not columns:
            continue
        if any(not 0 <= c < n_features for c in columns):
            raise UnsupportedModelError(f"ColumnTransformer step {name!r} selects unknown columns")
        start = len(pre.input)
        # remainder="passthrough" is fitted as FunctionTransformer(func=None): the identity.
        if (isinstance(transformer, str) and transformer == "passthrough") or (
            type(transformer) is FunctionTransformer and transformer.func is None
        ):
            for column in columns:
                pre.add(column, compiled_pipeline.PASSTHROUGH)
        else:
            _transformer(transformer, columns, pre, where=f" (ColumnTransformer step {name!r})")
        # The compiled columns must sit where scikit-learn's hstack puts them.
        expected = ct.output_indices_[name]
        if (expected.start, expected.stop) != (start, len(pre.input)):
            raise UnsupportedModelError(
                f"ColumnTransformer step {name!r}: output columns {expected.start}.."
                f"{expected.stop} could not be reproduced; {_FALLBACK}"
            )


def _transformer(step: Any, columns: list[int], pre: _Preprocessing, *, where: str) -> None:
    if type(step) is StandardScaler:
        mean = step.mean_ if step.with_mean else np.zeros(len(columns))
        scale = step.scale_ if step.with_std and step.scale_ is not None else np.ones(len(columns))
        for column, m, s in zip(columns, mean, scale, strict=True):
            pre.add(column, compiled_pipeline.STANDARD, m, s)
    elif type(step) is MinMaxScaler:
        for column, s, m in zip(columns, step.scale_, step.min_, strict=True):
            pre.add(column, compiled_pipeline.MINMAX, s, m)
            if step.clip:
                pre.low[-1], pre.high[-1] = map(float, step.feature_range)
    elif type(step) is OneHotEncoder:
        if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
            raise UnsupportedModelError(
                f"OneHotEncoder{where} with drop or infrequent categories; {_FALLBACK}"
            )
        if step.sparse_output or np.dtype(step.dtype) != np.float64:
            raise UnsupportedModelError(
                f"OneHotEncoder{where} must have sparse_output=False and dtype float64; {_FALLBACK}"
            )
        for column, categories in zip(columns, step.categories_, strict=True):
            if categories.dtype.kind not in "iuf" or not np.all(np.isfinite(categories)):
                raise UnsupportedModelError(
                    f"OneHotEncoder{where}: categories must be numeric codes (encode "
                    f"categoricals as positions in the schema list), not {categories.dtype}; "
                    f"{_FALLBACK}"
                )
            for category in categories:
                pre.add(column, compiled_pipeline.ONEHOT, float(category))
    else:
        raise UnsupportedModelError(
            f"the compiled runtime does not support the preprocessing step "
            f"{type(step).__name__}{where} (supported: {', '.join(SUPPORTED_PREPROCESSING)}); "
            f"{_FALLBACK}"
        )


def _sklearn_tree(tree: Any, value: NDArray[np.float64]) -> _Tree:
    return _Tree(
        feature=tree.feature.astype(np.intp),
        threshold=tree.threshold.astype(np.float64),
        left=tree.children_left.astype(np.intp),
        right=tree.children_right.astype(np.intp),
        value=value,
    )


def _in_column(values: NDArray[np.float64], k: int, width: int) -> NDArray[np.float64]:
    # One class's tree of a multiclass boosting stage: zeros elsewhere add nothing.
    out = np.zeros((values.shape[0], width), dtype=np.float64)
    out[:, k] = values
    return out


def _estimator(
    estimator: Any, width: int
) -> tuple[dict[str, Any], list[_Tree] | None, dict[str, NDArray[Any]]]:
    """(meta, trees or None, linear arrays) of a supported estimator."""
    kind = type(estimator)
    if kind not in (*TREE_ENSEMBLES, *LINEAR_MODELS):
        raise UnsupportedModelError(
            f"the compiled runtime does not support the estimator {kind.__name__} "
            f"(supported: {', '.join(SUPPORTED_ESTIMATORS)}); {_FALLBACK}"
        )
    classifier = hasattr(estimator, "classes_")
    n_classes = len(estimator.classes_) if classifier else 0
    if getattr(estimator, "n_outputs_", 1) != 1 or (
        not classifier and np.ndim(getattr(estimator, "coef_", np.zeros(1))) != 1
    ):
        raise UnsupportedModelError(f"{kind.__name__} with several outputs; {_FALLBACK}")
    multiclass = n_classes > 2
    if kind in LINEAR_MODELS:
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        link = ("softmax" if multiclass else "expit") if classifier else "identity"
        return {"estimator": "linear", "link": link}, None, {"coef": coef, "intercept": intercept}

    meta: dict[str, Any] = {"estimator": "trees", "tree_input": "float32", "mean_of": 0}
    trees: list[_Tree] = []
    if kind in (GradientBoostingClassifier, GradientBoostingRegressor):
        if classifier and estimator.loss != "log_loss":
            raise UnsupportedModelError(
                f"GradientBoostingClassifier with loss={estimator.loss!r} (only 'log_loss'); "
                f"{_FALLBACK}"
            )
        init = estimator.init_
        if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in (
            "DummyClassifier",
            "DummyRegressor",
        ):
            raise UnsupportedModelError(
                f"{kind.__name__} with an init estimator {type(init).__name__}; {_FALLBACK}"
            )
        raw_init = estimator._raw_predict_init(np.zeros((1, width), dtype=np.float32))[0]
        meta["init"] = np.asarray(raw_init, dtype=np.float64)
        stages, per_stage = estimator.estimators_.shape
        for stage, k in itertools.product(range(stages), range(per_stage)):
            tree = estimator.estimators_[stage, k].tree_
            # predict_stages adds learning_rate * value: the same product, made once here.
            value = estimator.learning_rate * tree.value[:, 0, 0]
            trees.append(
                _sklearn_tree(tree, _in_column(value, k, per_stage) if per_stage > 1 else value)
            )
        meta["link"] = ("softmax" if multiclass else "expit") if classifier else "identity"
    elif kind in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        if estimator.is_categorical_ is not None and np.any(estimator.is_categorical_):
            raise UnsupportedModelError(
                f"{kind.__name__} with native categorical features (categorical_features=...); "
                f"one-hot encode them or {_FALLBACK}"
            )
        link_name = type(estimator._loss.link).__name__
        expected_link = (
            ("MultinomialLogit" if multiclass else "LogitLink") if classifier else "IdentityLink"
        )
        if link_name != expected_link:
            raise UnsupportedModelError(
                f"{kind.__name__} with loss={estimator.loss!r} (its link {link_name} is not "
                f"compiled); {_FALLBACK}"
            )
        meta["tree_input"] = "float64"  # HGB compares the raw float64 values
        meta["init"] = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
        per_stage = len(estimator._predictors[0]) if estimator._predictors else 1
        for stage in estimator._predictors:
            for k, predictor in enumerate(stage):
                trees.append(_hgb_tree(predictor.nodes, k, per_stage, kind.__name__))
        meta["link"] = ("softmax" if multiclass else "expit") if classifier else "identity"
    else:
        forest = kind not in (DecisionTreeClassifier, DecisionTreeRegressor)
        members = list(estimator.estimators_) if forest else [estimator]
        meta["mean_of"] = len(members)  # forests divide the sum; a single tree divides by 1
        meta["init"] = np.zeros(n_classes if classifier else 1, dtype=np.float64)
        for member in members:
            tree = member.tree_
            value = tree.value[:, 0, :n_classes] if classifier else tree.value[:, 0, 0]
            trees.append(_sklearn_tree(tree, np.asarray(value, dtype=np.float64)))
        meta["link"] = "identity"
    if not trees:
        raise UnsupportedModelError(f"{kind.__name__} has no trees; {_FALLBACK}")
    return meta, trees, {}


def _hgb_tree(nodes: NDArray[Any], k: int, per_stage: int, name: str) -> _Tree:
    leaf = nodes["is_leaf"].astype(bool)
    if np.any(nodes["is_categorical"][~leaf]):
        raise UnsupportedModelError(f"{name} has a categorical split; {_FALLBACK}")
    threshold = nodes["num_threshold"].astype(np.float64)
    if not np.all(np.isfinite(threshold[~leaf])):
        raise UnsupportedModelError(
            f"{name} has a split on missing values (trained with NaN); {_FALLBACK}"
        )
    value = nodes["value"].astype(np.float64)
    return _Tree(
        feature=np.where(leaf, -2, nodes["feature_idx"]).astype(np.intp),
        threshold=np.where(leaf, -2.0, threshold),
        left=np.where(leaf, -1, nodes["left"].astype(np.intp)).astype(np.intp),
        right=np.where(leaf, -1, nodes["right"].astype(np.intp)).astype(np.intp),
        value=_in_column(value, k, per_stage) if per_stage > 1 else value,
    )


def _flatten(trees: list[_Tree]) -> tuple[dict[str, NDArray[Any]], int]:
    roots, feature, threshold, left, right, value = [], [], [], [], [], []
    offset, depth = 0, 0
    for tree in trees:
        leaf = tree.left == -1
        local = np.arange(leaf.shape[0])
        roots.append(offset)
        feature.append(np.where(leaf, 0, tree.feature))
        # A leaf compares against +inf and points at itself, so every row can take the
        # same number of steps whatever the depth of the leaf it reaches.
        threshold.append(np.where(leaf, np.inf, tree.threshold))
        left.append(np.where(leaf, local, tree.left) + offset)
        right.append(np.where(leaf, local, tree.right) + offset)
        value.append(tree.value)
        offset += leaf.shape[0]
        depth = max(depth, _depth(tree))
    arrays: dict[str, NDArray[Any]] = {
        "roots": np.asarray(roots, dtype=np.int32),
        "feature": np.concatenate(feature).astype(np.int32),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "left": np.concatenate(left).astype(np.int32),
        "right": np.concatenate(right).astype(np.int32),
        "value": np.concatenate(value).astype(np.float64),
    }
    return arrays, depth


def _depth(tree: _Tree) -> int:
    depth, frontier = 0, np.array([0])
    while True:
        inner = frontier[tree.left[frontier] != -1]
        if not inner.size:
            return depth
        frontier = np.concatenate([tree.left[inner], tree.right[inner]])
        depth += 1


def _check_task(estimator: Any, task: str, classes: Sequence[Any] | None) -> tuple[Any, ...] | None:
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    fitted = getattr(estimator, "classes_", None)
    if task == "regression":
        if fitted is not None:
            raise ValueError("task is regression but the estimator is a classifier")
        return None
    if fitted is None:
        raise ValueError(f"task is {task} but the estimator is a regressor")
    labels = tuple(_json_scalar(c) for c in fitted)
    if (task == "binary") != (len(labels) == 2):
        raise ValueError(f"task is {task} but the estimator has {len(labels)} classes")
    if classes is not None and list(classes) != list(labels):
        raise ValueError(f"classes {list(classes)} differ from the estimator's {list(labels)}")
    return labels


def compile_pipeline(
    pipeline: Any,
    *,
    model_name: str,
    model_version: str,
    features: list[dict[str, Any]],
    task: str = "binary",
    classes: Sequence[Any] | None = (0, 1),
) -> bytes:
    """Return the ``.npz`` bytes of the compiled model (format ``sklearn-compiled-npz/2``).

    Raises ``UnsupportedModelError`` naming the step that does not compile (the version is
    then served by runtime ``sklearn`` only).
    """
    step, estimator = _split_pipeline(pipeline)
    labels = _check_task(estimator, task, classes)
    n_inputs = getattr(pipeline, "n_features_in_", len(features))
    if n_inputs != len(features):
        raise ValueError(
            f"the pipeline takes {n_inputs} inputs but the schema lists {len(features)} features"
        )
    pre = _preprocessing(step, n_inputs)
    meta, trees, linear = _estimator(estimator, len(pre.input))
    arrays = pre.arrays()
    if trees is not None:
        tree_arrays, depth = _flatten(trees)
        arrays.update(tree_arrays, init=meta.pop("init"))
        meta["depth"] = depth
    else:
        arrays.update(linear)
    meta.update(
        format=COMPILED_FORMAT,
        model_name=model_name,
        model_version=model_version,
        features=features,
        task=task,
        classes=None if labels is None else list(labels),
        pipeline=describe(pipeline),
    )
    buffer = io.BytesIO()
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    try:
        compiled_model.load(data)
    except compiled_model.CompiledModelError as exc:
        raise UnsupportedModelError(f"{describe(pipeline)} does not compile: {exc}") from None
    return data


def parity_rows(
    X_holdout: NDArray[np.float64], features: list[dict[str, Any]]
) -> NDArray[np.float64]:
    """The holdout plus random rows over each feature's observed range (every code of a
    categorical feature)."""
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
    return np.vstack([X_holdout, np.column_stack(columns).astype(np.float64)])


def tie_rows(pipeline: Any) -> NDArray[np.float64]:
    """Two rows per split node: each reaches the node, its feature on either side of the split.

    Built in the trees' input space (after preprocessing, in the trees' precision) along
    the node's path, then mapped back through the preprocessing; a row whose transformed
    numeric values are not exactly the ones aimed at is dropped (the report counts the rows
    kept). Splits on one-hot columns have no ties to test (their inputs are 0 or 1).
    """
    step, estimator = _split_pipeline(pipeline)
    n_inputs = int(getattr(pipeline, "n_features_in_", 0))
    pre = _preprocessing(step, n_inputs)
    meta, trees, _ = _estimator(estimator, len(pre.input))
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
    transformed = X if step is None else np.asarray(step.transform(X), dtype=np.float64)
    numeric = np.asarray(pre.kind) != compiled_pipeline.ONEHOT
    exact = np.all(transformed.astype(dtype)[:, numeric] == aimed[:, numeric], axis=1)
    return X[exact]


def _tie_rows_below(
    tree: _Tree,
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
    aimed: NDArray[Any], pre: _Preprocessing, n_inputs: int, dtype: np.dtype[Any]
) -> NDArray[np.float64]:
    """Model input rows whose preprocessing gives ``aimed`` (numeric columns, found by
    bisection; a categorical code: the category whose one-hot column is aimed highest)."""
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
        elif a != 0:
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
    pipeline: Any, base: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """For a linear classifier: ``base`` rows moved, along one numeric input, onto each
    decision boundary (P = 0.5, or two classes' scores equal), and to either side of it by
    a few times the rounding error of the scores.

    Returns the rows and which of them sit on a boundary. There the label is decided by
    the last bit of a dot product: scikit-learn's own labels for those rows change with
    the batch size (BLAS sums in another order), so the gate holds them to the probability
    bound only, and the rows just beside the boundary to identical labels.
    """
    step, estimator = _split_pipeline(pipeline)
    n_inputs = base.shape[1]
    nothing = (np.empty((0, n_inputs)), np.zeros(0, dtype=bool))
    if type(estimator) is not LogisticRegression or not len(base):
        return nothing
    pre = _preprocessing(step, n_inputs)
    kinds = np.asarray(pre.kind)
    usable = np.flatnonzero(
        (kinds == compiled_pipeline.PASSTHROUGH)
        | (kinds == compiled_pipeline.STANDARD)
        | ((kinds == compiled_pipeline.MINMAX) & (np.asarray(pre.a) != 0))
    )
    if not usable.size:
        return nothing
    base = base[:BOUNDARY_ROWS]
    Z = base if step is None else np.asarray(step.transform(base), dtype=np.float64)
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


def _outputs_in_chunks(model: Any, X: NDArray[np.float64]) -> NDArray[np.float64]:
    sizes = itertools.cycle(PARITY_CHUNK_SIZES)
    parts, start = [], 0
    while start < len(X):
        size = next(sizes)
        parts.append(np.asarray(model.outputs(X[start : start + size]), dtype=np.float64))
        start += size
    return np.concatenate(parts)


def expected_outputs(pipeline: Any, task: str, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """What the runtime protocol's ``outputs`` must give, by scikit-learn itself."""
    if task == "regression":
        return np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1)
    proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
    return proba[:, 1] if task == "binary" else proba


def labels_of(outputs: NDArray[np.float64], task: str) -> NDArray[np.int64]:
    """The handler's decision: binary P >= 0.5, multiclass the first highest column."""
    if task == "binary":
        return (outputs >= 0.5).astype(np.int64)
    if task == "multiclass":
        return np.asarray(np.argmax(outputs, axis=1), dtype=np.int64)
    return np.zeros(outputs.shape[0], dtype=np.int64)


def check_parity(
    pipeline: Any,
    compiled: bytes,
    X_holdout: NDArray[np.float64],
    features: list[dict[str, Any]],
    *,
    task: str | None = None,
    bound: float = PARITY_BOUND,
) -> ParityReport:
    """Compare the compiled model with the pipeline; raise ``ParityError`` if it misses.

    ``task`` defaults to the compiled model's own; given, it must agree with it.
    """
    model = compiled_model.load(compiled)
    if task is not None and task != model.task:
        raise ParityError(f"compiled model is a {model.task} model, not {task}")
    task = model.task
    sampled = parity_rows(X_holdout, features)
    boundary, on_boundary = boundary_rows(pipeline, sampled)
    ties = np.vstack([tie_rows(pipeline), boundary])
    X = np.vstack([sampled, ties])
    labelled = np.concatenate([np.ones(len(X) - len(boundary), dtype=bool), ~on_boundary])
    expected = expected_outputs(pipeline, task, X)
    actual = _outputs_in_chunks(model, X)
    if actual.shape != expected.shape:
        raise ParityError(
            f"compiled model answers shape {actual.shape}, scikit-learn {expected.shape}"
        )
    report = ParityReport(
        rows=len(X),
        holdout_rows=len(X_holdout),
        random_rows=len(sampled) - len(X_holdout),
        tie_rows=len(ties),
        max_abs_diff=float(np.max(np.abs(actual - expected))) if len(X) else 0.0,
        label_mismatches=int(
            np.sum((labels_of(actual, task) != labels_of(expected, task)) & labelled)
        ),
        bound=bound,
        unlabelled_rows=int(np.sum(~labelled)),
    )
    if not report.passed:
        what = "value" if task == "regression" else "P"
        raise ParityError(
            f"compiled model refused: max |{what}(compiled) - {what}(sklearn)| = "
            f"{report.max_abs_diff:.3g} (bound {bound:g}), {report.label_mismatches} of "
            f"{report.rows - report.unlabelled_rows} labels differ"
        )
    return report


def parity_record(report: ParityReport) -> dict[str, Any]:
    return {**asdict(report), "passed": report.passed}

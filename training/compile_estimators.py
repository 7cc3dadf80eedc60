"""Compile a fitted estimator into the compiled runtime's tree or linear arrays.

Every built-in kind of ``training.estimators`` compiles, classifier and regressor alike:
gradient boosting (``GradientBoosting*``), histogram gradient boosting
(``HistGradientBoosting*``, numeric splits and the logit/identity links), forests
(``RandomForest*``, ``ExtraTrees*``), single trees (``DecisionTree*``) and linear models
(``LogisticRegression``, ``LinearRegression``, ``Ridge``); one output, binary, multiclass or
regression. Trees come out in scikit-learn's own node layout and order, so that the runtime
adds the same numbers in the same order; ``flatten`` lays them end to end. Any other
estimator, or an option these do not reproduce, raises ``UnsupportedModelError``.

Missing values: every tree carries its nodes' ``missing_go_to_left`` (scikit-learn's
trees, forests and single trees take NaN on 1.9; gradient boosting refuses NaN itself, and
its trees' flags are emitted all the same). Histogram gradient boosting's native
categorical features compile when their categories are numbers (codes, or any numbers):
the estimator's internal ``OrdinalEncoder`` numbers each feature's known values, and the
third item returned carries them as ``cat_values`` / ``cat_offsets``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.compile_support import FALLBACK, UnsupportedModelError
from training.estimators import KINDS


@dataclass(frozen=True)
class Tree:
    """One tree in scikit-learn's layout: leaves have ``left == right == -1``.

    ``missing_left``: 1 where a NaN goes left. ``cat_split``: -1, or for a categorical
    split the row of ``cat_left`` (this tree's bitsets over category indices, 8 uint32
    words each, histogram gradient boosting's ``raw_left_cat_bitsets``).
    """

    feature: NDArray[np.intp]
    threshold: NDArray[np.float64]
    left: NDArray[np.intp]
    right: NDArray[np.intp]
    value: NDArray[np.float64]  # (nodes,) or (nodes, K): what the leaf adds
    # The training weight that reached each node, which path-dependent TreeSHAP weighs the
    # branches a row does not follow by (what shap.TreeExplainer reads for each family).
    cover: NDArray[np.float64]
    missing_left: NDArray[np.uint8] | None = None
    cat_split: NDArray[np.intp] | None = None
    cat_left: NDArray[np.uint32] | None = None


@dataclass(frozen=True)
class _Target:
    classifier: bool
    n_classes: int  # 0 for a regressor

    @property
    def multiclass(self) -> bool:
        return self.n_classes > 2

    @property
    def link(self) -> str:
        if not self.classifier:
            return "identity"
        return "softmax" if self.multiclass else "expit"


# (meta, trees or None, linear arrays): what one family's compiler returns.
Compiled = tuple[dict[str, Any], list[Tree] | None, dict[str, NDArray[Any]]]


def compile_estimator(
    estimator: Any, width: int, input_values: Sequence[Sequence[Any] | None] | None = None
) -> Compiled:
    """(meta, trees or None, linear arrays) of a supported estimator taking ``width`` inputs.

    ``input_values``: when the estimator reads the schema's columns directly (no
    preprocessing step), each column's categorical values (``None`` for a number): a
    DataFrame-fitted HGB's categories are then matched to the codes the runtime receives.
    """
    kind = type(estimator)
    compiler = COMPILERS.get(kind)
    if compiler is None:
        raise UnsupportedModelError(
            f"the compiled runtime does not support the estimator {kind.__name__} "
            f"(supported: {', '.join(SUPPORTED_ESTIMATORS)}); {FALLBACK}"
        )
    classifier = hasattr(estimator, "classes_")
    target = _Target(classifier, len(estimator.classes_) if classifier else 0)
    if getattr(estimator, "n_outputs_", 1) != 1 or (
        not classifier and np.ndim(getattr(estimator, "coef_", np.zeros(1))) != 1
    ):
        raise UnsupportedModelError(f"{kind.__name__} with several outputs; {FALLBACK}")
    if compiler is _hist_gradient_boosting:
        compiled = _hist_gradient_boosting(estimator, width, target, input_values)
    else:
        compiled = compiler(estimator, width, target)
    if compiled[1] is not None and not compiled[1]:
        raise UnsupportedModelError(f"{kind.__name__} has no trees; {FALLBACK}")
    return compiled


def _linear(estimator: Any, width: int, target: _Target) -> Compiled:
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    meta = {"estimator": "linear", "link": target.link}
    return meta, None, {"coef": coef, "intercept": intercept}


def _trees_meta(tree_input: str, mean_of: int, init: NDArray[Any], link: str) -> dict[str, Any]:
    return {
        "estimator": "trees",
        "tree_input": tree_input,
        "mean_of": mean_of,
        "init": np.asarray(init, dtype=np.float64),
        "link": link,
    }


def _gradient_boosting(estimator: Any, width: int, target: _Target) -> Compiled:
    name = type(estimator).__name__
    if target.classifier and estimator.loss != "log_loss":
        raise UnsupportedModelError(
            f"GradientBoostingClassifier with loss={estimator.loss!r} (only 'log_loss'); {FALLBACK}"
        )
    init = estimator.init_
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in (
        "DummyClassifier",
        "DummyRegressor",
    ):
        raise UnsupportedModelError(
            f"{name} with an init estimator {type(init).__name__}; {FALLBACK}"
        )
    raw_init = estimator._raw_predict_init(np.zeros((1, width), dtype=np.float32))[0]
    trees: list[Tree] = []
    stages, per_stage = estimator.estimators_.shape
    for stage, k in itertools.product(range(stages), range(per_stage)):
        tree = estimator.estimators_[stage, k].tree_
        # predict_stages adds learning_rate * value: the same product, made once here.
        value = estimator.learning_rate * tree.value[:, 0, 0]
        trees.append(
            _sklearn_tree(tree, _in_column(value, k, per_stage) if per_stage > 1 else value)
        )
    return _trees_meta("float32", 0, raw_init, target.link), trees, {}


def _hist_gradient_boosting(
    estimator: Any,
    width: int,
    target: _Target,
    input_values: Sequence[Sequence[Any] | None] | None = None,
) -> Compiled:
    name = type(estimator).__name__
    link_name = type(estimator._loss.link).__name__
    expected_link = (
        ("MultinomialLogit" if target.multiclass else "LogitLink")
        if target.classifier
        else "IdentityLink"
    )
    if link_name != expected_link:
        raise UnsupportedModelError(
            f"{name} with loss={estimator.loss!r} (its link {link_name} is not "
            f"compiled); {FALLBACK}"
        )
    column, categories, recode = _hgb_categories(estimator, width, name, input_values)
    per_stage = len(estimator._predictors[0]) if estimator._predictors else 1
    trees = [
        _hgb_tree(predictor, column, recode, k, per_stage, name)
        for stage in estimator._predictors
        for k, predictor in enumerate(stage)
    ]
    init = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
    # HGB compares the raw float64 values.
    return _trees_meta("float64", 0, init, target.link), trees, categories


def _hgb_categories(
    estimator: Any, width: int, name: str, input_values: Sequence[Sequence[Any] | None] | None
) -> tuple[NDArray[np.intp], dict[str, NDArray[Any]], dict[int, NDArray[np.intp]]]:
    """(input column of each predictor feature, the ``cat_values``/``cat_offsets`` arrays,
    per recoded column the encoder's index of each known value in ``cat_values`` order).

    With categorical features, HGB's ``_preprocessor`` (a ColumnTransformer) puts their
    ``OrdinalEncoder`` codes first, then the numeric columns: the predictors' feature
    indices count in that order, and their bitsets over the encoder's codes. Numeric
    categories are the values the runtime compares as they are. A DataFrame-fitted HGB
    reading a categorical schema column (``from_dtype`` pandas categories, strings) gets the
    schema's code of each value instead: its known values are the codes of the schema
    values the encoder knows, and its bitsets are recoded to match.
    """
    preprocessor = getattr(estimator, "_preprocessor", None)
    if preprocessor is None:
        return np.arange(width, dtype=np.intp), {}, {}
    is_categorical = np.asarray(estimator.is_categorical_, dtype=bool)
    cat_columns = np.flatnonzero(is_categorical)
    column = np.concatenate([cat_columns, np.flatnonzero(~is_categorical)]).astype(np.intp)
    encoder = preprocessor.named_transformers_["encoder"]
    frame = hasattr(estimator, "feature_names_in_")
    known: dict[int, NDArray[np.float64]] = {}
    recode: dict[int, NDArray[np.intp]] = {}
    for input_column, values in zip(cat_columns.tolist(), encoder.categories_, strict=True):
        schema = input_values[input_column] if frame and input_values is not None else None
        if schema is not None:
            index = {v: c for c, v in enumerate(values) if not _is_missing(v)}
            codes = [j for j, v in enumerate(schema) if v in index]
            if not codes:
                raise UnsupportedModelError(
                    f"{name}'s categorical feature {input_column} knows none of the schema's "
                    f"values {list(schema)[:5]}; {FALLBACK}"
                )
            known[input_column] = np.asarray(codes, dtype=np.float64)
            recode[input_column] = np.asarray([index[schema[j]] for j in codes], dtype=np.intp)
        elif values.dtype.kind in "fiu":
            values = np.asarray(values, dtype=np.float64)
            known[input_column] = values[~np.isnan(values)]  # NaN: the encoder's missing value
        else:
            raise UnsupportedModelError(
                f"{name} with categorical feature {input_column} of {values.dtype} categories "
                f"(the compiled runtime takes numeric categories, e.g. codes, or a "
                f"DataFrame's categorical schema columns); {FALLBACK}"
            )
    sizes = np.array([known[c].shape[0] if c in known else 0 for c in range(width)])
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat = [known[c] for c in range(width) if c in known]
    return column, {"cat_values": np.concatenate(flat), "cat_offsets": offsets}, recode


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and bool(np.isnan(value)))


def _recoded(bitset: NDArray[np.uint32], index: NDArray[np.intp]) -> NDArray[np.uint32]:
    """A bitset over encoder indices as one over ranks: bit r set where bit index[r] was."""
    words = bitset.astype(np.uint64)
    bit = (words[index // 32] >> (index % 32).astype(np.uint64)) & np.uint64(1)
    out = np.zeros(bitset.shape[0], dtype=np.uint64)
    ranks = np.flatnonzero(bit)
    np.bitwise_or.at(out, ranks // 32, np.left_shift(np.uint64(1), (ranks % 32).astype(np.uint64)))
    return out.astype(np.uint32)


def _forest(estimator: Any, width: int, target: _Target) -> Compiled:
    return _averaged(list(estimator.estimators_), target)


def _single_tree(estimator: Any, width: int, target: _Target) -> Compiled:
    return _averaged([estimator], target)


def _averaged(members: list[Any], target: _Target) -> Compiled:
    trees = []
    for member in members:
        tree = member.tree_
        value = tree.value[:, 0, : target.n_classes] if target.classifier else tree.value[:, 0, 0]
        trees.append(_sklearn_tree(tree, np.asarray(value, dtype=np.float64)))
    init = np.zeros(target.n_classes if target.classifier else 1, dtype=np.float64)
    # Forests divide the sum; a single tree divides by 1.
    return _trees_meta("float32", len(members), init, "identity"), trees, {}


# The compiler of each built-in kind's estimators, in the order errors list them.
_COMPILER_OF_KIND: dict[str, Callable[[Any, int, _Target], Compiled]] = {
    "gbm": _gradient_boosting,
    "hist_gbm": _hist_gradient_boosting,
    "random_forest": _forest,
    "extra_trees": _forest,
    "decision_tree": _single_tree,
    "logistic": _linear,
    "linear": _linear,
    "ridge": _linear,
}
COMPILERS: dict[type, Callable[[Any, int, _Target], Compiled]] = {
    cls: compiler for kind, compiler in _COMPILER_OF_KIND.items() for cls in KINDS[kind].classes
}
SUPPORTED_ESTIMATORS = tuple(cls.__name__ for cls in COMPILERS)


def _sklearn_tree(tree: Any, value: NDArray[np.float64]) -> Tree:
    return Tree(
        feature=tree.feature.astype(np.intp),
        threshold=tree.threshold.astype(np.float64),
        left=tree.children_left.astype(np.intp),
        right=tree.children_right.astype(np.intp),
        value=value,
        # Tree.apply: isnan(x) first, to this side (a feature without NaN at fit time: the
        # child that took more samples); a threshold of +inf sends only NaN right.
        missing_left=np.asarray(tree.missing_go_to_left, dtype=np.uint8),
        cover=tree.weighted_n_node_samples.astype(np.float64),
    )


def _in_column(values: NDArray[np.float64], k: int, width: int) -> NDArray[np.float64]:
    # One class's tree of a multiclass boosting stage: zeros elsewhere add nothing.
    out = np.zeros((values.shape[0], width), dtype=np.float64)
    out[:, k] = values
    return out


def _hgb_tree(
    predictor: Any,
    column: NDArray[np.intp],
    recode: dict[int, NDArray[np.intp]],
    k: int,
    per_stage: int,
    name: str,
) -> Tree:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    categorical = nodes["is_categorical"].astype(bool) & ~leaf
    bitsets = np.asarray(predictor.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8)
    bitset_idx = nodes["bitset_idx"].astype(np.intp)
    if np.any(bitset_idx[categorical] >= bitsets.shape[0]):
        raise UnsupportedModelError(f"{name} has a categorical split without a bitset; {FALLBACK}")
    if recode:
        # One bitset per categorical node, over the ranks of the codes the runtime reads.
        own = np.flatnonzero(categorical)
        rows = []
        for node in own.tolist():
            input_column = int(column[nodes["feature_idx"][node]])
            bitset = bitsets[bitset_idx[node]]
            rows.append(
                _recoded(bitset, recode[input_column]) if input_column in recode else bitset
            )
        bitsets = np.array(rows, dtype=np.uint32).reshape(-1, 8)
        bitset_idx = np.zeros_like(bitset_idx)
        bitset_idx[own] = np.arange(own.shape[0])
    # A categorical node's num_threshold is unused (predict tests its bitset first).
    threshold = np.where(categorical, 0.0, nodes["num_threshold"].astype(np.float64))
    value = nodes["value"].astype(np.float64)
    return Tree(
        feature=np.where(leaf, -2, column[nodes["feature_idx"]]).astype(np.intp),
        threshold=np.where(leaf, -2.0, threshold),
        left=np.where(leaf, -1, nodes["left"].astype(np.intp)).astype(np.intp),
        right=np.where(leaf, -1, nodes["right"].astype(np.intp)).astype(np.intp),
        value=_in_column(value, k, per_stage) if per_stage > 1 else value,
        missing_left=nodes["missing_go_to_left"].astype(np.uint8),
        cat_split=np.where(categorical, bitset_idx, -1).astype(np.intp),
        cat_left=bitsets,
        cover=nodes["count"].astype(np.float64),
    )


def flatten(trees: list[Tree]) -> tuple[dict[str, NDArray[Any]], int]:
    """The trees end to end as the runtime's arrays, and the depth of the deepest.

    ``missing_left`` always; ``cat_split`` and ``cat_left`` only when a tree has a
    categorical split (each tree's bitset rows offset past the previous trees').
    """
    roots, feature, threshold, left, right, value, cover = [], [], [], [], [], [], []
    missing_left, cat_split, cat_left = [], [], []
    offset, depth, bitsets = 0, 0, 0
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
        missing = (
            np.zeros(leaf.shape[0], np.uint8) if tree.missing_left is None else tree.missing_left
        )
        missing_left.append(np.where(leaf, 0, missing))
        split = np.full(leaf.shape[0], -1) if tree.cat_split is None else tree.cat_split
        cat_split.append(np.where(leaf | (split < 0), -1, split + bitsets))
        if tree.cat_left is not None:
            cat_left.append(tree.cat_left)
            bitsets += tree.cat_left.shape[0]
        cover.append(tree.cover)
        offset += leaf.shape[0]
        depth = max(depth, _depth(tree))
    arrays: dict[str, NDArray[Any]] = {
        "roots": np.asarray(roots, dtype=np.int32),
        "feature": np.concatenate(feature).astype(np.int32),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "left": np.concatenate(left).astype(np.int32),
        "right": np.concatenate(right).astype(np.int32),
        "value": np.concatenate(value).astype(np.float64),
        "missing_left": np.concatenate(missing_left).astype(np.uint8),
        "cover": np.concatenate(cover).astype(np.float64),
    }
    splits = np.concatenate(cat_split).astype(np.int32)
    if np.any(splits >= 0):
        arrays["cat_split"] = splits
        arrays["cat_left"] = np.concatenate(cat_left).astype(np.uint32)
    return arrays, depth


def _depth(tree: Tree) -> int:
    depth, frontier = 0, np.array([0])
    while True:
        inner = frontier[tree.left[frontier] != -1]
        if not inner.size:
            return depth
        frontier = np.concatenate([tree.left[inner], tree.right[inner]])
        depth += 1

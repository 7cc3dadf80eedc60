"""Compile a fitted estimator into the compiled runtime's tree or linear arrays.

Every built-in kind of ``training.estimators`` compiles, classifier and regressor alike:
gradient boosting (``GradientBoosting*``), histogram gradient boosting
(``HistGradientBoosting*``, numeric splits and the logit/identity links), forests
(``RandomForest*``, ``ExtraTrees*``), single trees (``DecisionTree*``) and linear models
(``LogisticRegression``, ``LinearRegression``, ``Ridge``); one output, binary, multiclass or
regression. Trees come out in scikit-learn's own node layout and order, so that the runtime
adds the same numbers in the same order; ``flatten`` lays them end to end. Any other
estimator, or an option these do not reproduce, raises ``UnsupportedModelError``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.compile_support import FALLBACK, UnsupportedModelError
from training.estimators import KINDS


@dataclass(frozen=True)
class Tree:
    """One tree in scikit-learn's layout: leaves have ``left == right == -1``."""

    feature: NDArray[np.intp]
    threshold: NDArray[np.float64]
    left: NDArray[np.intp]
    right: NDArray[np.intp]
    value: NDArray[np.float64]  # (nodes,) or (nodes, K): what the leaf adds
    # The training weight that reached each node, which path-dependent TreeSHAP weighs the
    # branches a row does not follow by (what shap.TreeExplainer reads for each family).
    cover: NDArray[np.float64]


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


def compile_estimator(estimator: Any, width: int) -> Compiled:
    """(meta, trees or None, linear arrays) of a supported estimator taking ``width`` inputs."""
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


def _hist_gradient_boosting(estimator: Any, width: int, target: _Target) -> Compiled:
    name = type(estimator).__name__
    if estimator.is_categorical_ is not None and np.any(estimator.is_categorical_):
        raise UnsupportedModelError(
            f"{name} with native categorical features (categorical_features=...); "
            f"one-hot encode them or {FALLBACK}"
        )
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
    per_stage = len(estimator._predictors[0]) if estimator._predictors else 1
    trees = [
        _hgb_tree(predictor.nodes, k, per_stage, name)
        for stage in estimator._predictors
        for k, predictor in enumerate(stage)
    ]
    init = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
    # HGB compares the raw float64 values.
    return _trees_meta("float64", 0, init, target.link), trees, {}


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
        cover=tree.weighted_n_node_samples.astype(np.float64),
    )


def _in_column(values: NDArray[np.float64], k: int, width: int) -> NDArray[np.float64]:
    # One class's tree of a multiclass boosting stage: zeros elsewhere add nothing.
    out = np.zeros((values.shape[0], width), dtype=np.float64)
    out[:, k] = values
    return out


def _hgb_tree(nodes: NDArray[Any], k: int, per_stage: int, name: str) -> Tree:
    leaf = nodes["is_leaf"].astype(bool)
    if np.any(nodes["is_categorical"][~leaf]):
        raise UnsupportedModelError(f"{name} has a categorical split; {FALLBACK}")
    threshold = nodes["num_threshold"].astype(np.float64)
    if not np.all(np.isfinite(threshold[~leaf])):
        raise UnsupportedModelError(
            f"{name} has a split on missing values (trained with NaN); {FALLBACK}"
        )
    value = nodes["value"].astype(np.float64)
    return Tree(
        feature=np.where(leaf, -2, nodes["feature_idx"]).astype(np.intp),
        threshold=np.where(leaf, -2.0, threshold),
        left=np.where(leaf, -1, nodes["left"].astype(np.intp)).astype(np.intp),
        right=np.where(leaf, -1, nodes["right"].astype(np.intp)).astype(np.intp),
        value=_in_column(value, k, per_stage) if per_stage > 1 else value,
        cover=nodes["count"].astype(np.float64),
    )


def flatten(trees: list[Tree]) -> tuple[dict[str, NDArray[Any]], int]:
    """The trees end to end as the runtime's arrays, and the depth of the deepest."""
    roots, feature, threshold, left, right, value, cover = [], [], [], [], [], [], []
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
        "cover": np.concatenate(cover).astype(np.float64),
    }
    return arrays, depth


def _depth(tree: Tree) -> int:
    depth, frontier = 0, np.array([0])
    while True:
        inner = frontier[tree.left[frontier] != -1]
        if not inner.size:
            return depth
        frontier = np.concatenate([tree.left[inner], tree.right[inner]])
        depth += 1

"""Format ``sklearn-compiled-npz/2``: a preprocessing step and an estimator, with numpy alone.

Written by ``training/compile.py`` for every pipeline it supports; ``compiled_model.load``
reads it (and still reads the first format, ``gbm-trees-npz/1``, unchanged). Each stage
repeats scikit-learn's own arithmetic, operation for operation, so that the outputs match
to the last bits on typical inputs; the packaging parity gate enforces the bound anyway.

Arrays (all plain numbers: the archive is read with ``allow_pickle=False``):

* preprocessing, one entry per column of the estimator's input: ``pre_input`` (the model
  input column it reads), ``pre_kind`` (0 passthrough; 1 standard: ``(x - a) / b``;
  2 min-max: ``x * a + b`` then clipped to ``[pre_low, pre_high]``; 3 one-hot: ``x == a``),
  ``pre_a``, ``pre_b``, ``pre_low``, ``pre_high``.
* trees (``meta.estimator == "trees"``): the flat node arrays of ``tree_forest``, ``value``
  of shape ``(nodes,)`` or ``(nodes, K)``, ``init`` of shape ``(K,)``. ``meta.tree_input``
  says whether the trees compare in float32 (scikit-learn's trees, forests, gradient
  boosting) or float64 (histogram gradient boosting); ``meta.combine`` is ``sum`` (boosting:
  init plus every tree in stage order) or ``mean`` (forests: the sum divided by the number
  of trees). Optionally ``cover`` (float64 per node: the training weight that reached it),
  read by explanations only (``inference.explain``): an archive without it predicts as
  before and cannot explain.
* linear (``meta.estimator == "linear"``): ``coef`` and ``intercept`` in scikit-learn's own
  shapes, evaluated as ``X @ coef.T + intercept`` (``X @ coef`` for a 1-D ``coef``).

Then ``meta.link``: ``identity``, ``expit`` (binary log-odds) or ``softmax``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from inference import tree_forest
from inference.compiled_format import FORMAT_V2, PRE_ARRAYS
from serving.tasks import TASKS

if TYPE_CHECKING:
    from inference.explain import Explainer

FORMAT = FORMAT_V2
PASSTHROUGH, STANDARD, MINMAX, ONEHOT = 0, 1, 2, 3
LINKS = ("identity", "expit", "softmax")


class FormatError(ValueError):
    """The archive does not hold a consistent model of this format."""


class _Preprocess:
    __slots__ = ("groups", "identity", "input")

    def __init__(self, arrays: Mapping[str, NDArray[Any]], n_features: int) -> None:
        input_ = arrays["pre_input"].astype(np.intp)
        kind = arrays["pre_kind"].astype(np.intp)
        a, b = arrays["pre_a"].astype(np.float64), arrays["pre_b"].astype(np.float64)
        low, high = arrays["pre_low"].astype(np.float64), arrays["pre_high"].astype(np.float64)
        width = input_.shape[0]
        if (
            any(arrays[k].ndim != 1 or arrays[k].shape[0] != width for k in PRE_ARRAYS)
            or (width and (input_.min() < 0 or input_.max() >= n_features))
            or (width and (kind.min() < PASSTHROUGH or kind.max() > ONEHOT))
            or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)))
            or np.any(b[kind == STANDARD] == 0)
            or np.any(np.isnan(low) | np.isnan(high) | (low > high))
        ):
            raise FormatError("preprocessing arrays are inconsistent")
        self.input = input_
        self.identity = bool(
            width == n_features
            and np.all(kind == PASSTHROUGH)
            and np.array_equal(input_, np.arange(n_features))
        )
        # One whole-array operation per kind present; ``None`` columns: every column.
        self.groups: list[tuple[int, Any, Any, Any, Any, Any]] = []
        for k in (STANDARD, MINMAX, ONEHOT):
            cols = np.flatnonzero(kind == k)
            if not cols.size:
                continue
            clip = k == MINMAX and bool(np.any(np.isfinite(low[cols]) | np.isfinite(high[cols])))
            self.groups.append(
                (
                    k,
                    None if cols.size == width else cols,
                    a[cols],
                    b[cols],
                    low[cols] if clip else None,
                    high[cols] if clip else None,
                )
            )

    def apply(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.identity:
            return X
        # A new C-ordered array, like the scalers' copy and ColumnTransformer's hstack (X[:, idx]
        # would be F-ordered, and a matrix product over it sums in another order).
        out = np.take(X, self.input, axis=1)
        for kind, cols, a, b, low, high in self.groups:
            part = out if cols is None else out[:, cols]
            if kind == STANDARD:
                # StandardScaler.transform: X -= mean_; X /= scale_
                part = (part - a) / b
            elif kind == MINMAX:
                # MinMaxScaler.transform: X *= scale_; X += min_; then np.clip if clip
                part = part * a + b
                if low is not None:
                    part = np.clip(part, low, high)
            else:
                part = (part == a).astype(np.float64)
            if cols is None:
                out = part
            else:
                out[:, cols] = part
        return np.ascontiguousarray(out)


class _Trees:
    __slots__ = ("float32", "forest", "mean_of")

    def __init__(self, forest: tree_forest.Forest, *, float32: bool, mean_of: int) -> None:
        self.forest = forest
        self.float32 = float32
        self.mean_of = mean_of  # 0: a sum (boosting); n: divided by the n trees (forests)

    def raw(self, Z: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.float32:
            # scikit-learn's trees validate X as float32 and compare it with the float64
            # thresholds: the float32 value, widened.
            Z = Z.astype(np.float32).astype(np.float64)
        raw = self.forest.raw(Z)
        if self.mean_of:
            raw /= self.mean_of
        return raw


class _Linear:
    __slots__ = ("coef", "intercept")

    def __init__(self, coef: NDArray[np.float64], intercept: NDArray[np.float64]) -> None:
        self.coef = coef
        self.intercept = intercept

    def raw(self, Z: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.coef.ndim == 1:
            return np.asarray(Z @ self.coef + self.intercept, dtype=np.float64)
        return np.asarray(Z @ self.coef.T + self.intercept, dtype=np.float64)


class CompiledPipeline:
    """A ``model_loader.Model``: ``outputs(X)`` per the task (see that protocol)."""

    __slots__ = (
        "_explainer",
        "arrays",
        "classes",
        "estimator",
        "features",
        "link",
        "model_name",
        "model_version",
        "preprocess",
        "task",
    )

    def __init__(
        self,
        *,
        model_name: str,
        model_version: str,
        features: list[dict[str, Any]],
        task: str,
        classes: tuple[Any, ...] | None,
        preprocess: _Preprocess,
        estimator: _Trees | _Linear,
        link: str,
        arrays: Mapping[str, NDArray[Any]] | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.features = features
        self.task = task
        self.classes = classes
        self.preprocess = preprocess
        self.estimator = estimator
        self.link = link
        self.arrays = dict(arrays or {})  # the archive's arrays, read again by explanations
        self._explainer: Explainer | None = None

    def explainer(self) -> Explainer:
        """The model's ``explain.Explainer``, built on first use (no cost at load) and kept.

        Raises ``explain.ExplanationsUnavailableError`` when the archive cannot be explained
        (an archive written before ``cover`` was, for trees).
        """
        if self._explainer is None:
            from inference import explain  # imported only when explanations are asked for

            self._explainer = explain.build(self)
        return self._explainer

    def outputs(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        raw = self.estimator.raw(self.preprocess.apply(X))
        if raw.ndim == 2 and raw.shape[1] == 1:
            raw = raw[:, 0]
        if self.link == "expit":
            return _expit(raw)
        if self.link == "softmax":
            return _softmax(raw)
        if self.task == "binary" and raw.ndim == 2:
            return raw[:, 1]  # a forest's class fractions: P(classes[1])
        return raw


def _expit(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    # scipy.special.expit's own formula, 1 / (1 + exp(-x)): on 200,000 random inputs it
    # gives scipy's bits for 98.5 % (the rest: numpy's and libm's exp() differ by an ulp),
    # where the sign-split formula of format 1 matches 60 %. exp() overflows to inf for
    # x < -709, and 1 / inf is scipy's 0.
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-raw)), dtype=np.float64)


def _softmax(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    # sklearn.utils.extmath.softmax, step for step.
    out = np.array(raw, dtype=np.float64)
    out -= out.max(axis=1).reshape(-1, 1)
    np.exp(out, out=out)
    out /= out.sum(axis=1).reshape(-1, 1)
    return out


def build(meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> CompiledPipeline:
    """Check everything ``meta`` and ``arrays`` say against each other; ``FormatError`` if not."""
    features = meta.get("features")
    task = meta.get("task")
    link = meta.get("link")
    if not isinstance(features, list) or not features:
        raise FormatError("meta.features is not a non-empty list")
    if task not in TASKS:
        raise FormatError(f"meta.task {task!r} is not one of {', '.join(TASKS)}")
    if link not in LINKS:
        raise FormatError(f"meta.link {link!r} is not one of {', '.join(LINKS)}")
    classes = _classes(task, meta.get("classes"))
    preprocess = _Preprocess(arrays, len(features))
    width = preprocess.input.shape[0]
    kind = meta.get("estimator")
    estimator: _Trees | _Linear
    if kind == "trees":
        estimator, outputs = _trees(meta, arrays, width)
    elif kind == "linear":
        estimator, outputs = _linear(arrays, width)
    else:
        raise FormatError(f"meta.estimator {kind!r} is not 'trees' or 'linear'")
    mean = isinstance(estimator, _Trees) and bool(estimator.mean_of)
    _check_outputs(task, link, classes, outputs, mean=mean)
    return CompiledPipeline(
        model_name=str(meta["model_name"]),
        model_version=str(meta["model_version"]),
        features=list(features),
        task=str(task),
        classes=classes,
        preprocess=preprocess,
        estimator=estimator,
        link=str(link),
        arrays=arrays,
    )


def _classes(task: str, classes: Any) -> tuple[Any, ...] | None:
    if task == "regression":
        if classes is not None:
            raise FormatError("a regression model has no classes")
        return None
    if (
        not isinstance(classes, list)
        or any(isinstance(c, bool) or not isinstance(c, str | int | float) for c in classes)
        or len(set(classes)) != len(classes)
        or (task == "binary" and len(classes) != 2)
        or (task == "multiclass" and len(classes) < 3)
    ):
        raise FormatError(f"meta.classes {classes!r} are not the distinct labels of a {task} model")
    return tuple(classes)


def _trees(
    meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]], width: int
) -> tuple[_Trees, int]:
    feature, value, init = arrays["feature"], arrays["value"], arrays["init"]
    nodes = feature.shape[0]
    outputs = 1 if value.ndim == 1 else int(value.shape[1])
    depth, mean_of, tree_input = meta.get("depth"), meta.get("mean_of"), meta.get("tree_input")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (depth, mean_of)):
        raise FormatError("meta.depth and meta.mean_of must be integers")
    assert isinstance(depth, int) and isinstance(mean_of, int)
    if (
        any(arrays[k].ndim != 1 for k in ("roots", "feature", "threshold", "left", "right", "init"))
        or value.ndim not in (1, 2)
        or any(arrays[k].shape[0] != nodes for k in ("threshold", "left", "right", "value"))
        or init.shape != (outputs,)
        or not np.all(np.isfinite(init))
        or not np.all(np.isfinite(value))
        or not 0 <= depth <= 1000
        or not 0 <= mean_of <= arrays["roots"].shape[0]
        or tree_input not in ("float32", "float64")
        or any(
            a.size and (a.min() < 0 or a.max() >= nodes)
            for a in (arrays["roots"], arrays["left"], arrays["right"])
        )
        or (nodes and (feature.min() < 0 or feature.max() >= width))
        or arrays["roots"].shape[0] == 0
    ):
        raise FormatError("tree arrays are inconsistent")
    try:
        forest = tree_forest.build(
            init_raw=float(init[0]) if value.ndim == 1 else init.astype(np.float64),
            roots=arrays["roots"].astype(np.intp),
            feature=feature.astype(np.intp),
            threshold=arrays["threshold"].astype(np.float64),
            left=arrays["left"].astype(np.intp),
            right=arrays["right"].astype(np.intp),
            value=value.astype(np.float64),
            depth=int(depth),
        )
    except tree_forest.ForestStructureError as exc:
        raise FormatError(f"tree arrays are inconsistent: {exc}") from None
    return _Trees(forest, float32=tree_input == "float32", mean_of=int(mean_of)), outputs


def _linear(arrays: Mapping[str, NDArray[Any]], width: int) -> tuple[_Linear, int]:
    coef = arrays["coef"].astype(np.float64)
    intercept = arrays["intercept"].astype(np.float64)
    if coef.ndim == 1:
        ok = coef.shape == (width,) and intercept.ndim == 0
        outputs = 1
    else:
        outputs = int(coef.shape[0]) if coef.ndim == 2 else 0
        ok = coef.ndim == 2 and coef.shape[1] == width and intercept.shape == (outputs,)
    if not ok or not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
        raise FormatError("linear arrays are inconsistent")
    # C order, as scikit-learn holds coef_: the same matrix product, the same BLAS call.
    return _Linear(np.ascontiguousarray(coef), intercept), outputs


def _check_outputs(
    task: str, link: str, classes: tuple[Any, ...] | None, outputs: int, *, mean: bool
) -> None:
    n_classes = 0 if classes is None else len(classes)
    expected = {
        # (link, outputs) pairs each task can be evaluated with
        "binary": {("identity", 2)} if mean else {("expit", 1)},
        "multiclass": {("identity" if mean else "softmax", n_classes)},
        "regression": {("identity", 1)},
    }[task]
    if (link, outputs) not in expected:
        raise FormatError(
            f"a {task} model with link {link!r} and {outputs} output(s) does not fit its classes"
        )

"""Formats ``sklearn-compiled-npz/3`` and ``/2``: preprocessing and an estimator, with numpy alone.

Format 3 is written by ``training/compile.py`` for every pipeline it supports;
``compiled_model.load`` reads it, format 2 (format 3 without ``pre_fill`` and
``pre_table``: read as no fill and no tables) and the first format, ``gbm-trees-npz/1``,
unchanged. Each stage
repeats scikit-learn's own arithmetic, operation for operation, so that the outputs match
to the last bits on typical inputs; the packaging parity gate enforces the bound anyway.

Arrays (all plain numbers: the archive is read with ``allow_pickle=False``):

* preprocessing, one entry per column of the estimator's input: ``pre_input`` (the model
  input column it reads), ``pre_fill`` (NaN: none; else a missing input value, NaN, is
  replaced by it before the transform: ``SimpleImputer``), ``pre_kind`` (0 passthrough;
  1 standard: ``(x - a) / b``, also ``RobustScaler``; 2 min-max: ``x * a + b`` then
  clipped to ``[pre_low, pre_high]``; 3 one-hot: ``x == a``; 4 table: the column's value
  is ``pre_table[a + row]``, ``row`` the input's code 0..K-1, K (``pre_b``) for a null and
  K + 1 for an unknown category, -1; 5 missing: ``pre_b`` where the input is null,
  ``pre_a`` elsewhere: ``SimpleImputer(add_indicator=True)``'s indicator, through any
  scaler after it), ``pre_a``, ``pre_b``, ``pre_low``, ``pre_high``, and
  ``pre_table`` (every table, flat). A table holds what the fitted scikit-learn
  transformer itself gave for each value of the feature's domain at compile time
  (encoders, imputers of categories, whole sub-pipelines over categorical columns).
* trees (``meta.estimator == "trees"``): the flat node arrays of ``tree_forest``, ``value``
  of shape ``(nodes,)`` or ``(nodes, K)``, ``init`` of shape ``(K,)``. ``meta.tree_input``
  says whether the trees compare in float32 (scikit-learn's trees, forests, gradient
  boosting) or float64 (histogram gradient boosting); ``meta.combine`` is ``sum`` (boosting:
  init plus every tree in stage order) or ``mean`` (forests: the sum divided by the number
  of trees). Missing values and categories (``tree_routing``; all optional, absent in a v2
  archive): ``missing_left`` (uint8 per node: 1 sends a NaN left, 0 right; default 0);
  ``cat_split`` (int32 per node: -1, or for histogram gradient boosting's native
  categorical split the row of ``cat_left``, uint32 ``(splits, 8)``: bit ``c`` of a row set
  sends the category of index ``c`` left, a known category without its bit goes right);
  ``cat_values`` (float64) and ``cat_offsets`` (int64, estimator input columns + 1): column
  ``j``'s known category values are ``cat_values[cat_offsets[j]:cat_offsets[j + 1]]``,
  ascending, and a value's index is its position there. A value that is none of them (an
  unknown code such as -1, NaN) goes where the node sends a NaN. Optionally ``cover``
  (float64 per node: the training weight that reached it), read by explanations only
  (``inference.explain``): an archive without it predicts as before and cannot explain.
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
from inference.compiled_format import FORMAT_V3, PRE_ARRAYS
from serving.tasks import TASKS

if TYPE_CHECKING:
    from inference.explain import Explainer

FORMAT = FORMAT_V3
PASSTHROUGH, STANDARD, MINMAX, ONEHOT, TABLE, MISSING = 0, 1, 2, 3, 4, 5
LINKS = ("identity", "expit", "softmax")


class FormatError(ValueError):
    """The archive does not hold a consistent model of this format."""


class _Preprocess:
    __slots__ = ("fill", "groups", "identity", "input")

    def __init__(self, arrays: Mapping[str, NDArray[Any]], n_features: int) -> None:
        input_ = arrays["pre_input"].astype(np.intp)
        kind = arrays["pre_kind"].astype(np.intp)
        a, b = arrays["pre_a"].astype(np.float64), arrays["pre_b"].astype(np.float64)
        low, high = arrays["pre_low"].astype(np.float64), arrays["pre_high"].astype(np.float64)
        width = input_.shape[0]
        # A format 2 archive has neither: no fill, no tables.
        fill = np.asarray(arrays.get("pre_fill", np.full(width, np.nan)), dtype=np.float64)
        table = np.asarray(arrays.get("pre_table", np.empty(0)), dtype=np.float64)
        if (
            any(arrays[k].ndim != 1 or arrays[k].shape[0] != width for k in PRE_ARRAYS)
            or fill.shape != (width,)
            or table.ndim != 1
            or (width and (input_.min() < 0 or input_.max() >= n_features))
            or (width and (kind.min() < PASSTHROUGH or kind.max() > MISSING))
            or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)))
            or np.any(b[kind == STANDARD] == 0)
            or np.any(np.isnan(low) | np.isnan(high) | (low > high))
            or np.any(np.isinf(fill))
            or np.any(~np.isnan(fill[(kind == TABLE) | (kind == MISSING)]))
            or not _tables_fit(a[kind == TABLE], b[kind == TABLE], table.shape[0])
        ):
            raise FormatError("preprocessing arrays are inconsistent")
        self.input = input_
        self.identity = bool(
            width == n_features
            and np.all(kind == PASSTHROUGH)
            and np.all(np.isnan(fill))
            and np.array_equal(input_, np.arange(n_features))
        )
        filled = np.flatnonzero(~np.isnan(fill))
        self.fill = (filled, fill[filled]) if filled.size else None
        # One whole-array operation per kind present; ``None`` columns: every column.
        self.groups: list[tuple[int, Any, Any, Any, Any, Any]] = []
        for k in (STANDARD, MINMAX, ONEHOT, TABLE, MISSING):
            cols = np.flatnonzero(kind == k)
            if not cols.size:
                continue
            clip = k == MINMAX and bool(np.any(np.isfinite(low[cols]) | np.isfinite(high[cols])))
            if k == TABLE:
                # pre_a: each table's offset, pre_b: its K; rows K (null) and K + 1 (unknown);
                # the flat tables in the place of the clip bounds.
                self.groups.append(
                    (k, cols, a[cols].astype(np.intp), b[cols].astype(np.intp), table, None)
                )
                continue
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
        if self.fill is not None:
            # SimpleImputer.transform: X[mask] = statistics_, before the column's transform.
            cols, values = self.fill
            part = out[:, cols]
            out[:, cols] = np.where(np.isnan(part), values, part)
        for kind, cols, a, b, low, high in self.groups:
            part = out if cols is None else out[:, cols]
            if kind == STANDARD:
                # StandardScaler/RobustScaler.transform: X -= center; X /= scale
                part = (part - a) / b
            elif kind == MINMAX:
                # MinMaxScaler.transform: X *= scale_; X += min_; then np.clip if clip
                part = part * a + b
                if low is not None:
                    part = np.clip(part, low, high)
            elif kind == ONEHOT:
                part = (part == a).astype(np.float64)
            elif kind == MISSING:
                # SimpleImputer's add_indicator column (through any scaler after it).
                part = np.where(np.isnan(part), b, a)
            else:
                # The feature's code 0..K-1, null (NaN) at row K, unknown (-1) at row K + 1.
                with np.errstate(invalid="ignore"):
                    row = np.where(np.isnan(part), b, np.where(part < 0, b + 1, part))
                part = low[a + row.astype(np.intp)]
            if cols is None:
                out = part
            else:
                out[:, cols] = part
        return np.ascontiguousarray(out)


def _tables_fit(offset: NDArray[np.float64], k: NDArray[np.float64], size: int) -> bool:
    return bool(
        np.all(offset == np.floor(offset))
        and np.all(k == np.floor(k))
        and np.all(offset >= 0)
        and np.all(k >= 1)
        and np.all(offset + k + 2 <= size)
    )


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

    def outputs(self, X: NDArray[np.float64], unknown: object = None) -> NDArray[np.float64]:
        # ``unknown`` (raw values of passed unknown categories) is ignored: -1 in X suffices.
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
    routing = _routing(arrays, nodes, width)
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
            **routing,
        )
    except tree_forest.ForestStructureError as exc:
        raise FormatError(f"tree arrays are inconsistent: {exc}") from None
    return _Trees(forest, float32=tree_input == "float32", mean_of=int(mean_of)), outputs


def _routing(arrays: Mapping[str, NDArray[Any]], nodes: int, width: int) -> dict[str, Any]:
    """``tree_forest.build``'s missing-value and categorical arguments, shapes checked."""
    routing: dict[str, Any] = {}
    missing_left = arrays.get("missing_left")
    if missing_left is not None:
        if missing_left.shape != (nodes,) or missing_left.dtype.kind not in "biu":
            raise FormatError("missing_left is not one integer per node")
        routing["missing_left"] = missing_left.astype(np.uint8)
    cat_split, cat_left = arrays.get("cat_split"), arrays.get("cat_left")
    if (cat_split is None) != (cat_left is None):
        raise FormatError("cat_split and cat_left come together")
    if cat_split is not None and cat_left is not None:
        if (
            cat_split.shape != (nodes,)
            or cat_split.dtype.kind not in "iu"
            or cat_left.ndim != 2
            or cat_left.dtype.kind not in "iu"
        ):
            raise FormatError("cat_split or cat_left have the wrong shape or type")
        routing["cat_split"] = cat_split.astype(np.intp)
        routing["cat_left"] = cat_left.astype(np.uint32)
    values, offsets = arrays.get("cat_values"), arrays.get("cat_offsets")
    if (values is None) != (offsets is None):
        raise FormatError("cat_values and cat_offsets come together")
    if values is not None and offsets is not None:
        if (
            values.ndim != 1
            or offsets.shape != (width + 1,)
            or offsets.dtype.kind not in "iu"
            or offsets[0] != 0
            or offsets[-1] != values.shape[0]
            or np.any(np.diff(offsets) < 0)
        ):
            raise FormatError("cat_offsets do not cut cat_values into one slice per input column")
        values = values.astype(np.float64)
        routing["cat_values"] = {
            j: values[offsets[j] : offsets[j + 1]]
            for j in range(width)
            if offsets[j + 1] > offsets[j]
        }
    return routing


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

"""Exact explanations for the compiled runtime: path-dependent TreeSHAP and linear terms.

``CompiledPipeline.explainer()`` builds an ``Explainer`` on first use (nothing at load) and
keeps it. ``Explainer.explain(X)`` takes the model input matrix (schema order, codes) and
returns an ``Explanation``: ``base`` (outputs,), ``contributions`` (rows, schema features,
outputs) and ``space``. Each estimator input column's contribution is added onto the
schema feature it reads (``pre_input``), so the one-hot columns of a categorical feature
add up to that feature. ``base + contributions.sum(axis=1)`` is the model's raw output in
``space``: ``log_odds`` (boosted and linear classifiers: one column, the log-odds of
``classes[1]``, for a binary model; one column per class, the softmax's raw scores, for a
multiclass one), ``probability`` (forests and single trees: the class fractions, of
``classes[1]`` alone for a binary model) or ``value`` (regressors).

Trees: path-dependent TreeSHAP (Lundberg et al., 2018), exact, the values
``shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")`` gives. A leaf ``l``
reached through the distinct features ``j`` of its path adds to feature ``i`` of the path

    v_l * (o_i - z_i) * sum_k c_k * [t^k] prod_{j != i} (z_j + o_j t),   c_k = k!(d-1-k)!/d!

where ``z_j`` is the product of the cover ratios (child / parent) of the path's splits on
``j`` and ``o_j`` is 1 when the row satisfies all of them, else 0; ``d`` is the number of
distinct features. The weights depend on the row only through the ``2^d`` patterns of
``o``, so at build time every leaf gets a table of its weights for each pattern (the
polynomial is multiplied out once, and divided by each factor: shap's EXTEND and UNWIND).
A query then computes each row's pattern at every leaf from the split conditions, level
by level over all trees at once, gathers the weights and adds them onto the features with
one matrix product. When the tables would be too large (deep trees: forests grown to
purity), the same weights are computed per row instead: slower, equally exact. ``base`` is
``init`` plus each tree's cover-weighted mean leaf value (shap's ``expected_value``). The
split rule is ``goes_left`` alone (numbers, missing values and categorical splits, as the
compiled trees route them). Measured on the churn GBM (200 trees of depth 4, one pinned core of a
loaded 2-core x86_64 machine; ``python -m benchmarks.explain --cpu 1``): tables of 21,822
rows of 4 weights (0.7 MB) built in ~5 ms of CPU on first use; one row in 0.19 ms; 100
rows in ~7 ms of CPU where shap takes ~16 ms. A 100-tree forest grown to purity on 20,000
rows (440,000 leaves) takes the per-row path: ~150 ms a row, where shap takes ~85 ms.

Linear models: the contribution of column ``c`` is ``coef_c * z_c`` in the estimator's
input space (after the scalers and the one-hot encoding) and the base is the intercept:
the reference point is ``z = 0``, which for a standardized column is its training mean.
``shap.LinearExplainer(model, background)`` gives ``coef_c * (z_c - mean_c)`` with the
background's means, and the base moved by ``coef . mean``: the two agree on standardized
columns, and elsewhere differ by a per-feature constant (the archive holds no training
means). Either is exact: the base plus the contributions is the model's raw output.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import factorial
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from inference.compiled_pipeline import CompiledPipeline, _Linear, _Trees

LOG_ODDS, PROBABILITY, VALUE = "log_odds", "probability", "value"
# Pattern tables: at most this many float64 entries (16 MB) and distinct features a path.
MAX_TABLE_ENTRIES = 1 << 21
MAX_TABLE_SLOTS = 12
MAX_SLOTS = 64  # distinct features on one path: a row's pattern is one uint64
# Rows per block: the temporaries of a block stay at about this many entries.
_BLOCK_ENTRIES = 1 << 20
# (row, leaf) pairs whose weights are computed together when there are no tables.
_CHUNK_ENTRIES = 1 << 13
# The (leaf slots, features x outputs) matrix that adds weights onto features, if this small.
_DENSE_MAP_ENTRIES = 1 << 20

Arrays = Mapping[str, NDArray[Any]]


class ExplanationsUnavailableError(ValueError):
    """This model's archive cannot be explained (for example: written before ``cover``)."""


class Explanation:
    __slots__ = ("base", "contributions", "space")

    def __init__(
        self, base: NDArray[np.float64], contributions: NDArray[np.float64], space: str
    ) -> None:
        self.base = base  # (outputs,)
        self.contributions = contributions  # (rows, schema features, outputs)
        self.space = space


def goes_left(Zt: NDArray[np.float64], split: Arrays, nodes: NDArray[np.intp]) -> NDArray[np.bool_]:
    """(nodes, rows): whether each row goes left at each of ``nodes``; ``Zt`` is the
    estimator's input transposed, (columns, rows).

    The one place the split rule lives, as the compiled trees evaluate it
    (``inference.tree_routing``): a number goes left iff ``x <= threshold`` (``Zt`` already
    widened from float32 where the trees compare so); a NaN goes to the node's
    ``missing_left`` side; at a categorical split (``cat_split >= 0``) a known category goes
    left when its bit is set in the node's ``cat_left`` row, and a value that is none of the
    feature's known categories (unknown, negative, NaN) goes to the missing side.
    """
    feature = split["feature"][nodes]
    x = Zt[feature]
    with np.errstate(invalid="ignore"):
        left = np.asarray(x <= split["threshold"][nodes, None])
    missing_left = split.get("missing_left")
    missing = (
        np.zeros(nodes.shape[0], dtype=np.bool_)
        if missing_left is None
        else np.asarray(missing_left)[nodes] == 1
    )
    if missing_left is not None:
        left = np.where(np.isnan(x), missing[:, None], left)
    cat_split = split.get("cat_split")
    if cat_split is None:
        return left
    rows = np.asarray(cat_split)[nodes]
    categorical = rows >= 0
    if not categorical.any():
        return left
    offsets, known_all = split["cat_offsets"], split["cat_values"]
    words = np.asarray(split["cat_left"]).astype(np.uint64)
    for f in np.unique(feature[categorical]).tolist():
        picked = np.flatnonzero(categorical & (feature == f))
        known = known_all[int(offsets[f]) : int(offsets[f + 1])]
        values = Zt[f]
        index = np.searchsorted(known, values)
        clipped = np.minimum(index, known.shape[0] - 1)
        hit = (index < known.shape[0]) & (known[clipped] == values)
        shift = (clipped % 32).astype(np.uint64)
        bits = (words[rows[picked]][:, clipped // 32] >> shift) & np.uint64(1)
        left[picked] = np.where(hit, bits == 1, missing[picked, None])
    return left


class Explainer:
    """``explain(X)``: base and per-feature contributions of each row of ``X``."""

    space: str
    base: NDArray[np.float64]
    n_features: int

    def explain(self, X: NDArray[np.float64]) -> Explanation:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (rows, {self.n_features}), not {X.shape}")
        return Explanation(self.base.copy(), self._contributions(X), self.space)

    def _contributions(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError


def build(pipeline: CompiledPipeline) -> Explainer:
    """The explainer of a compiled pipeline; ``ExplanationsUnavailableError`` if it has none."""
    from inference.compiled_pipeline import _Linear, _Trees

    estimator = pipeline.estimator
    if isinstance(estimator, _Linear):
        return LinearExplainer(pipeline, estimator)
    if isinstance(estimator, _Trees):
        return TreeExplainer(pipeline, estimator)
    raise ExplanationsUnavailableError(f"no explanations for {type(estimator).__name__}")


def _space(pipeline: CompiledPipeline, averaged: bool) -> str:
    if pipeline.task == "regression":
        return VALUE
    return PROBABILITY if averaged else LOG_ODDS


def _feature_map(pipeline: CompiledPipeline) -> NDArray[np.float64]:
    """(estimator input columns, schema features): 1 where the column reads the feature."""
    input_ = pipeline.preprocess.input
    out = np.zeros((input_.shape[0], len(pipeline.features)), dtype=np.float64)
    out[np.arange(input_.shape[0]), input_] = 1.0
    return out


class LinearExplainer(Explainer):
    def __init__(self, pipeline: CompiledPipeline, linear: _Linear) -> None:
        coef = np.atleast_2d(linear.coef)
        self.preprocess = pipeline.preprocess
        self.coef = coef  # (outputs, columns)
        self.base = np.atleast_1d(np.asarray(linear.intercept, dtype=np.float64)).copy()
        self.map = _feature_map(pipeline)
        self.n_features = len(pipeline.features)
        self.space = _space(pipeline, averaged=False)

    def _contributions(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        Z = self.preprocess.apply(X)
        # (rows, outputs, columns) terms, then columns onto features.
        terms = Z[:, None, :] * self.coef[None, :, :]
        return np.ascontiguousarray(np.matmul(terms, self.map).transpose(0, 2, 1))


def _shapley_coefficients(d: NDArray[np.intp], slots: int) -> NDArray[np.float64]:
    """(len(d), slots): c_k = k!(d-1-k)!/d! for k < d, else 0."""
    table = np.zeros((slots + 1, max(slots, 1)), dtype=np.float64)
    for n in range(1, slots + 1):
        for k in range(n):
            table[n, k] = factorial(k) * factorial(n - 1 - k) / factorial(n)
    return table[d][:, :slots]


def _weights(
    z: NDArray[np.float64], o: NDArray[np.float64], coef: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Each path feature's TreeSHAP weight (the leaf value's multiplier).

    Shapes ``(slots, ...)``, broadcast after the first axis (kept first: every step works
    on whole contiguous arrays). ``z`` zero fractions (> 0), ``o`` one fractions (0 or 1),
    ``coef`` the Shapley coefficients of the path's length. A padding slot has ``z = 1,
    o = 0`` (its factor is 1, its coefficients 0) and a weight the caller drops.
    """
    slots = z.shape[0]
    shape = np.broadcast_shapes(z.shape[1:], o.shape[1:], coef.shape[1:])
    # prod_j (z_j + o_j t), one array per power of t (EXTEND, every feature of the path).
    poly = [np.ones(shape)] + [np.zeros(shape) for _ in range(slots)]
    for j in range(slots):
        zj, oj = z[j], o[j]
        for k in range(j + 1, 0, -1):
            poly[k] *= zj
            poly[k] += poly[k - 1] * oj
        poly[0] *= zj
    # Divided by z_i when o_i = 0: the same sum for every i, then one division each.
    total = sum((coef[k] * poly[k] for k in range(slots)), np.zeros(shape))
    out = np.empty((slots, *shape), dtype=np.float64)
    for i in range(slots):
        zi, oi = z[i], o[i]
        # Divided by (z_i + t) from the top when o_i = 1 (UNWIND).
        q = poly[slots]
        one = coef[slots - 1] * q
        for k in range(slots - 1, 0, -1):
            q = poly[k] - zi * q
            one += coef[k - 1] * q
        out[i] = (oi - zi) * np.where(oi > 0, one, total / zi)
    return out


class TreeExplainer(Explainer):
    def __init__(self, pipeline: CompiledPipeline, trees: _Trees) -> None:
        arrays = pipeline.arrays
        if "cover" not in arrays:
            raise ExplanationsUnavailableError(
                f"{pipeline.model_name} {pipeline.model_version}: the compiled archive has no "
                "'cover' array (written before explanations were); package the version again "
                "to explain it"
            )
        self.float32 = bool(trees.float32)
        mean_of = int(trees.mean_of)
        self.n_features = len(pipeline.features)
        self.preprocess = pipeline.preprocess
        self.space = _space(pipeline, averaged=bool(mean_of))
        feature = arrays["feature"].astype(np.intp)
        nodes = feature.shape[0]
        left, right = arrays["left"].astype(np.intp), arrays["right"].astype(np.intp)
        cover = np.asarray(arrays["cover"], dtype=np.float64)
        if cover.shape != (nodes,) or not np.all(np.isfinite(cover) & (cover > 0)):
            raise ExplanationsUnavailableError(
                "the 'cover' array is not one positive weight per node"
            )
        # Every array of the archive (a split rule may read more than these two).
        threshold = arrays["threshold"].astype(np.float64)
        self.split = {**arrays, "feature": feature, "threshold": threshold}
        self.left, self.right = left, right
        leaf = left == np.arange(nodes)
        self._paths(arrays["roots"].astype(np.intp), leaf, cover)

        value = arrays["value"].astype(np.float64)
        init = arrays["init"].astype(np.float64)
        if value.ndim == 1:
            value = value[:, None]
        if pipeline.task == "binary" and value.shape[1] == 2:  # a forest's class fractions
            value, init = value[:, 1:], init[1:]
        leaf_value = value[self.leaf_node] / (mean_of or 1)  # (leaves, outputs)
        self.leaf_value = leaf_value
        reach = np.prod(self.leaf_zero, axis=1)  # the share of the training weight
        self.base = init + reach @ leaf_value
        columns = np.where(self.real, self.leaf_column, 0)
        self.leaf_feature = pipeline.preprocess.input[columns]  # (leaves, slots)
        self.leaf_feature_t = np.ascontiguousarray(self.leaf_feature.T, dtype=np.int32)
        self.table = self._tables()
        self._scatter_map()
        # Kept: what the chosen evaluation reads (a forest grown to purity has ~10^6 leaves).
        del self.leaf_zero, self.leaf_column
        if self.table is not None:
            del self.zero_t, self.real_t, self.leaf_feature_t
        else:
            del self.leaf_feature

    def _paths(self, roots: NDArray[np.intp], leaf: NDArray[np.bool_], cover: Any) -> None:
        """Every leaf's distinct path features (slots) and zero fractions, and each split's
        slot, top-down over all trees at once."""
        feature, left, right = self.split["feature"], self.left, self.right
        depth = 0
        frontier, width = roots, 1
        columns = np.full((roots.shape[0], width), -1, dtype=np.intp)
        zeros = np.ones((roots.shape[0], width), dtype=np.float64)
        used = np.zeros(roots.shape[0], dtype=np.intp)
        self.slot = np.zeros(feature.shape[0], dtype=np.intp)
        self.levels: list[NDArray[np.intp]] = []
        found: list[tuple[Any, ...]] = []
        while frontier.size:
            ends = leaf[frontier]
            found.append((frontier[ends], columns[ends], zeros[ends], used[ends]))
            inner = ~ends
            parent, columns, zeros, used = (
                frontier[inner],
                columns[inner],
                zeros[inner],
                used[inner],
            )
            if not parent.size:
                break
            self.levels.append(parent)
            depth += 1
            if used.max() >= columns.shape[1]:  # room for one more distinct feature
                columns = np.pad(columns, ((0, 0), (0, 1)), constant_values=-1)
                zeros = np.pad(zeros, ((0, 0), (0, 1)), constant_values=1.0)
            match = columns == feature[parent][:, None]
            seen = match.any(axis=1)
            slot = np.where(seen, match.argmax(axis=1), used)
            rows = np.arange(parent.shape[0])
            columns[rows, slot] = feature[parent]
            used = used + ~seen
            self.slot[parent] = slot
            halves = []
            for child in (left[parent], right[parent]):
                z = zeros.copy()
                z[rows, slot] *= cover[child] / cover[parent]
                halves.append(z)
            frontier = np.concatenate([left[parent], right[parent]])
            columns = np.concatenate([columns, columns])
            zeros = np.concatenate(halves)
            used = np.concatenate([used, used])
        slots = max(max(int(f[3].max(initial=0)) for f in found), 1)
        if slots > MAX_SLOTS:
            raise ExplanationsUnavailableError(f"a path splits on more than {MAX_SLOTS} features")

        def padded(a: NDArray[Any], fill: float) -> NDArray[Any]:
            a = a[:, :slots]
            return np.pad(a, ((0, 0), (0, slots - a.shape[1])), constant_values=fill)

        self.leaf_node = np.concatenate([f[0] for f in found])
        self.leaf_column = np.concatenate([padded(f[1], -1) for f in found])
        self.leaf_zero = np.concatenate([padded(f[2], 1.0) for f in found])
        self.leaf_slots = np.concatenate([f[3] for f in found])
        self.real = np.arange(slots) < self.leaf_slots[:, None]
        # Slot-first copies for the per-row weights: (slots, 1, leaves).
        self.real_t = np.ascontiguousarray(self.real.T[:, None, :])
        self.zero_t = np.ascontiguousarray(self.leaf_zero.T[:, None, :])
        self.coef_by_slots = _shapley_coefficients(np.arange(slots + 1), slots)
        dtype = next(np.dtype(f"uint{b}") for b in (8, 16, 32, 64) if b >= slots)
        self.bits = np.left_shift(1, self.slot).astype(dtype)
        self.n_slots = slots

    def _scatter_map(self) -> None:
        """The matrix that multiplies weights by leaf values onto features, if small: rows
        (leaf, slot) for the tables' gathers, (slot, leaf) for the computed weights."""
        leaves, slots = self.leaf_feature.shape
        outputs = self.leaf_value.shape[1]
        self.map: NDArray[np.float64] | None = None
        if leaves * slots * self.n_features * outputs > _DENSE_MAP_ENTRIES:
            return
        dense = np.zeros((leaves, slots, self.n_features, outputs), dtype=np.float64)
        li, si = np.nonzero(self.real)
        np.add.at(dense, (li, si, self.leaf_feature[li, si]), self.leaf_value[li])
        if self.table is not None:
            self.map = dense.reshape(leaves * slots, self.n_features * outputs)
        else:
            self.map = np.ascontiguousarray(dense.transpose(1, 0, 2, 3)).reshape(
                slots, leaves, self.n_features * outputs
            )

    def _tables(self) -> NDArray[np.float64] | None:
        """Per leaf, the weights of each of its ``2^d`` patterns, if they fit."""
        slots = self.n_slots
        sizes = np.left_shift(1, self.leaf_slots)
        if slots > MAX_TABLE_SLOTS or int(sizes.sum()) * slots > MAX_TABLE_ENTRIES:
            return None
        self.offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        table = np.zeros((int(sizes.sum()), slots), dtype=np.float64)
        for d in np.unique(self.leaf_slots).tolist():
            if d == 0:  # a tree that is one leaf: no feature, no weight
                continue
            group = np.flatnonzero(self.leaf_slots == d)
            patterns = np.arange(1 << d)
            # Bit s of a pattern set: the row does not follow the path on slot s (o_s = 0).
            o = 1.0 - ((patterns >> np.arange(d)[:, None]) & 1).astype(np.float64)
            coef = _shapley_coefficients(np.array([d]), d).reshape(d, 1, 1)
            w = _weights(self.leaf_zero[group, :d].T[:, :, None], o[:, None, :], coef)
            rows = (self.offset[group][:, None] + patterns).ravel()
            table[rows, :d] = w.reshape(d, -1).T
        return table

    def _misses(self, Z: NDArray[np.float64]) -> NDArray[Any]:
        """(rows, leaves): bit s set where the row does not follow the leaf's path on slot s."""
        # Nodes by rows: each level writes whole rows of this array.
        Zt = np.ascontiguousarray(Z.T)
        miss = np.zeros((self.left.shape[0], Z.shape[0]), dtype=self.bits.dtype)
        none = self.bits.dtype.type(0)
        for parent in self.levels:
            left = goes_left(Zt, self.split, parent)
            bit = self.bits[parent][:, None]
            above = miss[parent]
            miss[self.left[parent]] = above | np.where(left, none, bit)
            miss[self.right[parent]] = above | np.where(left, bit, none)
        return np.ascontiguousarray(miss[self.leaf_node].T)

    def _contributions(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        Z = self.preprocess.apply(X)
        if self.float32:
            Z = Z.astype(np.float32).astype(np.float64)
        rows = Z.shape[0]
        leaves, slots = self.leaf_slots.shape[0], self.n_slots
        per_row = max(
            self.left.shape[0], leaves * (slots + 1) * (1 if self.table is not None else 4)
        )
        block = max(1, _BLOCK_ENTRIES // per_row)
        out = np.empty((rows, self.n_features, self.leaf_value.shape[1]), dtype=np.float64)
        for start in range(0, rows, block):
            part = Z[start : start + block]
            out[start : start + block] = self._block(part)
        return out

    def _block(self, Z: NDArray[np.float64]) -> NDArray[np.float64]:
        miss = self._misses(Z)
        rows, leaves = miss.shape
        outputs = self.leaf_value.shape[1]
        if self.table is not None:
            # (rows, leaves, slots): one row of the table per (row, leaf).
            weights = np.take(self.table, self.offset + miss, axis=0)
            if self.map is not None:
                flat: NDArray[np.float64] = weights.reshape(rows, -1) @ self.map
                return flat.reshape(rows, self.n_features, outputs)
            return self._counts(weights, self.leaf_feature, self.leaf_value[:, None, :], 0)
        # Computed per row, a few thousand (row, leaf) pairs at a time: the temporaries of
        # the polynomial stay in cache (three times faster than whole-batch arrays).
        step = max(1, _CHUNK_ENTRIES // rows)
        out = np.zeros((rows, self.n_features, outputs), dtype=np.float64)
        one = miss.dtype.type(1)
        for start in range(0, leaves, step):
            part = slice(start, start + step)
            bits = miss[:, part]
            real = self.real_t[:, :, part]
            o = np.stack([1.0 - ((bits >> miss.dtype.type(s)) & one) for s in range(self.n_slots)])
            o *= real
            # (slots, rows, leaves of the part)
            coef = self.coef_by_slots[self.leaf_slots[part]].T[:, None, :]
            weights = _weights(self.zero_t[:, :, part], o, coef) * real
            if self.map is not None:
                out += np.matmul(weights, self.map[:, part]).sum(axis=0).reshape(out.shape)
            else:
                value = self.leaf_value[part]  # (leaves of the part, outputs)
                feature = self.leaf_feature_t[:, None, part]
                out += self._counts(weights, feature, value[None], 1)
        return out

    def _counts(
        self,
        weights: NDArray[np.float64],
        feature: NDArray[np.integer[Any]],
        value: NDArray[np.float64],
        row_axis: int,
    ) -> NDArray[np.float64]:
        """Large models: the weights times the leaf values, added onto the features by
        weighted counts. ``weights`` is 3-D with the rows on ``row_axis``; ``feature`` and
        ``value[..., k]`` broadcast against it."""
        rows = weights.shape[row_axis]
        shape = [1, 1, 1]
        shape[row_axis] = rows
        where = (np.arange(rows).reshape(shape) * self.n_features + feature).ravel()
        out = np.empty((rows, self.n_features, value.shape[-1]), dtype=np.float64)
        for k in range(value.shape[-1]):
            terms = (weights * value[..., k]).ravel()
            out[:, :, k] = np.bincount(
                where, weights=terms, minlength=rows * self.n_features
            ).reshape(rows, self.n_features)
        return out

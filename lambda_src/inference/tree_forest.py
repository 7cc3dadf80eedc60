"""Sum of a forest's leaf values for a batch of rows, with numpy alone and no loop over trees.

The compiled artifact holds every tree as flat node arrays (a leaf points at itself). At
load, ``build`` checks that the arrays form one proper binary tree per root and
precomputes QuickScorer-style tables (Lucchese et al., SIGIR 2015): each tree's leaves are
numbered left to right, and a row's state in a tree is the bitvector of the leaves it can
still reach. A split that sends the row right (``x > threshold``; scikit-learn goes left on
``<=``) rules out its left subtree's leaves. Sorted by threshold, the splits of one feature
that send a value right are a prefix of that feature's list, found with ``searchsorted``;
the AND of the masks of every prefix is one precomputed table row (one column per tree).
A row's bitvectors are the AND of one table row per feature, and the leaf it reaches is the
lowest bit left set. Per batch that is a few whole-array operations, where walking the
trees level by level costs several gathers per level.

Trees with more leaves than 64 bits hold fall back to the level-by-level walk.

Missing values and categories (``tree_routing``): a NaN goes to its node's missing side
(``missing_left``), never through a comparison. The bitvector evaluator gives each split
feature one more table row, the AND of the masks of that feature's splits whose NaN goes
right; a NaN selects it instead of a ``searchsorted`` prefix (below 64 rows the complex
search lands there by itself, see ``keys``; larger batches pay one ``isnan`` per block). A
categorical feature (histogram gradient boosting's native categories) has one row per code
``0..K-1`` of its known values and one for ``K`` (unknown values and NaN): the AND of the
masks of its splits that send that code right. The level walk keeps its loop for a clean
batch without categorical splits; otherwise it overrides each level's direction of a NaN
and of every categorical node from the same flags.

A leaf's value is a number (one output: log-odds, a regression value) or a row of ``K``
numbers (a forest's class fractions, or one class's score with zeros elsewhere when each
boosting stage has one tree per class: adding 0.0 changes no sum, so each output is still
summed in scikit-learn's stage order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from inference.tree_routing import Routing, RoutingError

MAX_BITVECTOR_LEAVES = 64
# Below this many rows the stage-order sum uses cumsum (sequential by definition). From
# here on, np.add.reduce over the tree axis of a (trees, rows) array is one vector add per
# tree, so each row is still summed in stage order (a test holds the two bit-identical);
# with a single row numpy would sum pairwise instead.
_REDUCE_FROM_ROWS = 16
# Below this many rows one searchsorted over every feature's thresholds at once beats one
# call per feature (fewer numpy calls); above it the per-feature calls are cheaper.
_ONE_SEARCH_BELOW_ROWS = 64
# Larger batches go through in blocks of this many rows: the temporaries of a block (the
# per-feature bitvectors, ~0.7 MB) stay in cache and in the allocator's reused memory. One
# 1,000-row pass allocates ~6 MB that the allocator may return to the kernel and fault in
# again on every call: 1.1 to 4.3 ms for the same rows, against 1.2 ms in blocks.
_BLOCK_ROWS = 256
# scikit-learn goes left on x <= threshold, so the splits that send x right are those with
# threshold < x: searchsorted's side="left" count. A value on a threshold goes left.
_SEARCH_SIDE: Literal["left", "right"] = "left"

# Plain classes with __slots__ rather than dataclasses: this module is imported on every
# cold start, and building four dataclasses cost ~3 ms there.


class _Nodes:
    """One forest's node arrays, as ``build`` checked them (the two evaluators' input)."""

    __slots__ = ("depth", "feature", "left", "right", "roots", "routing", "threshold", "value")

    def __init__(
        self,
        roots: NDArray[np.intp],
        feature: NDArray[np.intp],
        threshold: NDArray[np.float64],
        left: NDArray[np.intp],
        right: NDArray[np.intp],
        value: NDArray[np.float64],
        depth: int,
        routing: Routing,
    ) -> None:
        self.roots, self.feature, self.threshold = roots, feature, threshold
        self.left, self.right, self.value, self.depth = left, right, value, depth
        self.routing = routing


class ForestStructureError(ValueError):
    """The node arrays do not form one binary tree per root of the declared depth."""


class _Bitvectors:
    __slots__ = (
        "blocks",
        "cat_base",
        "categorical",
        "keys",
        "leaf_base",
        "leaf_value",
        "lowest_bit",
        "missing_rows",
        "routing",
        "split_features",
        "starts",
        "table",
        "thresholds",
    )

    def __init__(
        self,
        nodes: _Nodes,
        *,
        levels: list[NDArray[np.intp]],
        leaf: NDArray[np.bool_],
        tree_of: NDArray[np.intp],
        leaves_below: NDArray[np.intp],
    ) -> None:
        roots, feature, threshold = nodes.roots, nodes.feature, nodes.threshold
        left, right, value, routing = nodes.left, nodes.right, nodes.value, nodes.routing
        trees = roots.shape[0]
        position = np.zeros(leaf.shape[0], dtype=np.intp)  # first leaf of the subtree's leaves
        for level in levels:
            inner = level[~leaf[level]]
            position[left[inner]] = position[inner]
            position[right[inner]] = position[inner] + leaves_below[left[inner]]
        max_leaves = int(leaves_below[roots].max(initial=1))
        bits = next(b for b in (8, 16, 32, 64) if b >= max_leaves)
        dtype = np.dtype(f"uint{bits}")

        # Every split's mask: its left subtree's leaves ruled out.
        left_leaves = np.where(leaf, 0, leaves_below[left]).astype(np.uint64)
        ruled_out = (np.left_shift(np.uint64(1), left_leaves) - np.uint64(1)) << position.astype(
            np.uint64
        )
        mask = (~ruled_out).astype(dtype)  # drops bits above the width, which no leaf uses

        numeric = ~leaf & (routing.right_start < 0)
        splits = np.flatnonzero(numeric)
        splits = splits[np.lexsort((threshold[splits], feature[splits]))]
        split_features, counts = np.unique(feature[splits], return_counts=True)
        blocks = split_features.shape[0]
        # Block b: the empty prefix, then one row per split of feature b in threshold order.
        # After every block: one missing row per block, then each categorical feature's
        # rows for its codes 0..K (K: unknown or NaN).
        starts = np.arange(blocks, dtype=np.intp) + np.concatenate([[0], np.cumsum(counts)[:-1]])
        prefix_rows = splits.shape[0] + blocks
        cat_sizes = [known.shape[0] + 1 for known in routing.values]
        table = np.full(
            (prefix_rows + blocks + sum(cat_sizes), trees), np.iinfo(dtype).max, dtype=dtype
        )
        table_row = np.arange(splits.shape[0]) + np.repeat(np.arange(blocks), counts) + 1
        table[table_row, tree_of[splits]] = mask[splits]
        thresholds = []
        for block, (start, count) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
            prefixes = table[start : start + count + 1]
            np.bitwise_and.accumulate(prefixes, axis=0, out=prefixes)
            thresholds.append(threshold[splits[start - block : start - block + count]])
        # A NaN: every split of the feature whose missing side is the right one.
        goes_right = splits[routing.missing_right[splits]]
        block_of = np.searchsorted(split_features, feature[goes_right])
        np.bitwise_and.at(table, (prefix_rows + block_of, tree_of[goes_right]), mask[goes_right])
        self.missing_rows = prefix_rows + np.arange(blocks, dtype=np.intp)
        first = np.cumsum([0, *cat_sizes])[:-1]
        self.cat_base = (prefix_rows + blocks + first).astype(np.intp)  # each one's code 0 row
        if routing.categorical:
            cat_nodes = np.flatnonzero(routing.right_start >= 0)
            slot = np.searchsorted(routing.features, feature[cat_nodes])
            width = np.asarray(cat_sizes, dtype=np.intp)[slot]
            node = np.repeat(cat_nodes, width)
            code = np.arange(node.shape[0]) - np.repeat(np.cumsum(width) - width, width)
            sends_right = routing.right[routing.right_start[node] + code]
            row = np.repeat(self.cat_base[slot], width) + code
            np.bitwise_and.at(
                table,
                (row[sends_right], tree_of[node[sends_right]]),
                mask[node[sends_right]],
            )

        self.routing = routing
        self.categorical = routing.categorical
        self.split_features = split_features.astype(np.intp)
        self.thresholds = thresholds  # per split feature, ascending
        # Every threshold as block + 1j * threshold: numpy orders complex numbers
        # lexicographically, so one searchsorted finds every feature's prefix at once.
        # (Set part by part: 1j * inf would be nan + inf j.) Then one key -1 + nan j per
        # block: numpy sorts a NaN imaginary part after every number, so those keys stay
        # above every query of a number, and a query b + nan j lands past every key, at
        # len(keys) + b = prefix_rows + b: block b's missing row, with no isnan on the way.
        self.keys = np.empty(splits.shape[0] + blocks, dtype=np.complex128)
        self.keys.real = np.concatenate([np.repeat(np.arange(blocks), counts), np.full(blocks, -1)])
        self.keys.imag = np.concatenate([np.zeros(0), *thresholds, np.full(blocks, np.nan)])
        self.starts = starts  # each block's first table row
        self.blocks = np.arange(blocks, dtype=np.intp)
        self.table = table  # (rows of all blocks, trees): the AND of each prefix's masks
        # bitvector -> position of its lowest set bit, when a table of 2**bits is small
        self.lowest_bit = _lowest_bit_table(bits) if bits <= 16 else None
        self.leaf_base = np.arange(trees, dtype=np.intp) * max_leaves
        self.leaf_value = np.zeros((trees * max_leaves, *value.shape[1:]), dtype=np.float64)
        leaves = np.flatnonzero(leaf)
        self.leaf_value[self.leaf_base[tree_of[leaves]] + position[leaves]] = value[leaves]

    def contributions(self, scaled: NDArray[np.float64]) -> NDArray[np.float64]:
        rows = scaled.shape[0]
        values = scaled[:, self.split_features]
        if rows < _ONE_SEARCH_BELOW_ROWS:
            query = np.empty(values.shape, dtype=np.complex128)
            query.real = self.blocks
            query.imag = values
            index = np.searchsorted(self.keys, query, side=_SEARCH_SIDE)
            index += self.blocks  # a NaN: its block's missing row (see the keys)
        else:
            index = np.empty(values.shape, dtype=np.intp)
            for column, thresholds in enumerate(self.thresholds):
                index[:, column] = np.searchsorted(thresholds, values[:, column], side=_SEARCH_SIDE)
            index += self.starts
            missing = np.isnan(values)
            if missing.any():
                index = np.where(missing, self.missing_rows, index)
        if self.categorical:
            index = np.concatenate([index, self.routing.codes(scaled) + self.cat_base], axis=1)
        reachable = np.bitwise_and.reduce(self.table[index], axis=1)
        if self.lowest_bit is not None:
            leaf = np.take(self.lowest_bit, reachable) + self.leaf_base
        else:
            lowest = reachable & (~reachable + reachable.dtype.type(1))
            leaf = np.frexp(lowest.astype(np.float64))[1] - 1 + self.leaf_base
        # (trees, rows[, K]), C-ordered: the stage-order sum runs along axis 0.
        if self.leaf_value.ndim == 1:
            return np.take(self.leaf_value, leaf.T)
        return np.take(self.leaf_value, leaf.T, axis=0)


def _lowest_bit_table(bits: int) -> NDArray[np.uint8]:
    # uint8 keeps the 16-bit table at 64 KB, in cache for the lookups.
    table = np.zeros(1 << bits, dtype=np.uint8)
    for bit in range(bits):
        table[1 << bit :: 1 << (bit + 1)] = bit
    return table


class _LevelWalk:
    """Every row through every tree one level at a time: for trees too wide for 64 bits."""

    __slots__ = ("children", "depth", "feature", "roots", "routing", "threshold", "value")

    def __init__(self, nodes: _Nodes) -> None:
        self.roots = nodes.roots
        self.feature = nodes.feature
        self.threshold = nodes.threshold
        # Of node i: 2i and 2i + 1.
        self.children = np.stack([nodes.left, nodes.right], axis=1).ravel()
        self.value = nodes.value
        self.depth = nodes.depth
        self.routing = nodes.routing

    def contributions(self, scaled: NDArray[np.float64]) -> NDArray[np.float64]:
        rows, n_features = scaled.shape
        routing = self.routing
        missing = bool(np.isnan(scaled).any())
        categorical = routing.categorical
        if categorical:
            # A categorical column reads as its code, whose flags each categorical node holds.
            scaled = scaled.copy()
            scaled[:, routing.features] = routing.codes(scaled)
        flat = scaled.ravel()
        row_offset = np.arange(rows, dtype=np.intp) * n_features
        node = np.repeat(self.roots[:, None], rows, axis=1)
        if not (missing or categorical):
            # The clean path as it always was: no (trees, rows) temporary outlives its level.
            for _ in range(self.depth):
                go_right = flat[row_offset + self.feature[node]] > self.threshold[node]
                node = self.children[node * 2 + go_right]
            return self._values(node)
        for _ in range(self.depth):
            x = flat[row_offset + self.feature[node]]
            go_right = x > self.threshold[node]
            if missing:
                go_right = np.where(np.isnan(x), routing.missing_right[node], go_right)
            if categorical:
                start = routing.right_start[node]
                is_categorical = start >= 0
                code = np.where(is_categorical, x, 0).astype(np.intp)
                go_right = np.where(is_categorical, routing.right[start + code], go_right)
            node = self.children[node * 2 + go_right]
        return self._values(node)

    def _values(self, node: NDArray[np.intp]) -> NDArray[np.float64]:
        if self.value.ndim == 1:
            return np.take(self.value, node)
        return np.take(self.value, node, axis=0)


class Forest:
    """``raw(scaled)``: init plus every tree's leaf value, added in stage order.

    Shape ``(rows,)`` for scalar leaf values, ``(rows, K)`` for rows of ``K`` values.
    """

    __slots__ = ("evaluator", "width")

    def __init__(self, evaluator: _Bitvectors | _LevelWalk, width: int | None = None) -> None:
        self.evaluator = evaluator
        self.width = width  # K, or None for scalar leaf values

    @property
    def method(self) -> str:
        return "bitvector" if isinstance(self.evaluator, _Bitvectors) else "level-walk"

    def raw(self, scaled: NDArray[np.float64]) -> NDArray[np.float64]:
        rows = scaled.shape[0]
        if rows <= _BLOCK_ROWS:
            return self._raw_block(scaled)
        out = np.empty((rows,) if self.width is None else (rows, self.width), dtype=np.float64)
        for start in range(0, rows, _BLOCK_ROWS):
            out[start : start + _BLOCK_ROWS] = self._raw_block(scaled[start : start + _BLOCK_ROWS])
        return out

    def _raw_block(self, scaled: NDArray[np.float64]) -> NDArray[np.float64]:
        contributions = self.evaluator.contributions(scaled)
        total: NDArray[np.float64]
        if contributions.ndim == 3:
            # Each (row, output) pair is one column of the sum: the same rule as below.
            trees, rows, width = contributions.shape
            flat = contributions.reshape(trees, rows * width)
            if rows * width < _REDUCE_FROM_ROWS:
                total = np.cumsum(flat, axis=0)[-1]
            else:
                total = np.add.reduce(flat, axis=0)
            return total.reshape(rows, width)
        if scaled.shape[0] < _REDUCE_FROM_ROWS:
            total = np.cumsum(contributions, axis=0)[-1]
        else:
            total = np.add.reduce(contributions, axis=0)
        return total


def build(
    *,
    init_raw: float | NDArray[np.float64],
    roots: NDArray[np.intp],
    feature: NDArray[np.intp],
    threshold: NDArray[np.float64],
    left: NDArray[np.intp],
    right: NDArray[np.intp],
    value: NDArray[np.float64],
    depth: int,
    max_bitvector_leaves: int = MAX_BITVECTOR_LEAVES,
    missing_left: NDArray[np.uint8] | None = None,
    cat_split: NDArray[np.intp] | None = None,
    cat_left: NDArray[np.uint32] | None = None,
    cat_values: Mapping[int, NDArray[np.float64]] | None = None,
) -> Forest:
    """Check the node arrays and precompute what evaluation needs.

    ``value``: shape ``(nodes,)``, or ``(nodes, K)`` with ``init_raw`` of shape ``(K,)``.
    ``missing_left`` (per node, 1: a NaN goes left; default: right), ``cat_split`` (per
    node: -1, or the row of ``cat_left``, the bitsets of categorical splits) and
    ``cat_values`` (each categorical feature's known values): see ``tree_routing``.
    """
    nodes = feature.shape[0]
    width = None if value.ndim == 1 else int(value.shape[1])
    levels = _levels(roots, left, right, depth, nodes)
    leaf = left == np.arange(nodes)
    try:
        routing = Routing(
            nodes=nodes,
            split=~leaf,
            feature=feature,
            missing_left=missing_left,
            cat_split=cat_split,
            cat_left=cat_left,
            cat_values=cat_values,
        )
    except RoutingError as exc:
        raise ForestStructureError(str(exc)) from None
    # +inf is scikit-learn's threshold of a split that sends only NaN right.
    if np.any(np.isnan(threshold[~leaf & (routing.right_start < 0)])):
        raise ForestStructureError("a split threshold is not a number")
    tree_of = np.empty(nodes, dtype=np.intp)
    tree_of[roots] = np.arange(roots.shape[0])
    for level in levels:
        inner = level[~leaf[level]]
        tree_of[left[inner]] = tree_of[right[inner]] = tree_of[inner]
    leaves_below = leaf.astype(np.intp)
    for level in reversed(levels):
        inner = level[~leaf[level]]
        leaves_below[inner] = leaves_below[left[inner]] + leaves_below[right[inner]]
    # init + the first tree's value is the first addition scikit-learn makes: made once here.
    value = value.copy()
    value[leaf & (tree_of == 0)] += init_raw
    nodes = _Nodes(roots, feature, threshold, left, right, value, depth, routing)
    if int(leaves_below[roots].max(initial=0)) > max_bitvector_leaves:
        return Forest(_LevelWalk(nodes), width)
    return Forest(
        _Bitvectors(nodes, levels=levels, leaf=leaf, tree_of=tree_of, leaves_below=leaves_below),
        width,
    )


def _levels(
    roots: NDArray[np.intp], left: NDArray[np.intp], right: NDArray[np.intp], depth: int, nodes: int
) -> list[NDArray[np.intp]]:
    """Nodes by depth, checking that every node hangs under exactly one root, once."""
    levels = []
    frontier = roots
    for _ in range(depth + 1):
        levels.append(frontier)
        inner = frontier[left[frontier] != frontier]
        frontier = np.concatenate([left[inner], right[inner]])
    if frontier.size:
        raise ForestStructureError(f"a tree is deeper than the declared depth {depth}")
    visits = np.bincount(np.concatenate(levels), minlength=nodes)
    if nodes and (visits.max() > 1 or visits.min() < 1):
        raise ForestStructureError("the node arrays are not one binary tree per root")
    return levels

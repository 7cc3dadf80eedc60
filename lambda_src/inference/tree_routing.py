"""Where a tree sends a missing value (NaN) and a category: ``tree_forest``'s routing tables.

scikit-learn's trees test ``isnan(x)`` first: a NaN goes to the node's
``missing_go_to_left`` side (for a feature that had no NaN at fit time, the side that
received more training samples; never a comparison). Histogram gradient boosting's
categorical splits (``is_categorical``) then send a category left when its bit is set in
the node's bitset (``raw_left_cat_bitsets``, 8 words of 32 bits over the category's index),
right when it is a known category without its bit, and, like a NaN, to the missing side
when it is unknown. The estimator's input holds the raw category values: the index of a
value is its position among the feature's known values (ascending, as the estimator's own
``OrdinalEncoder`` numbered them), and any other value (an unseen number, a negative code,
a fraction, NaN) is unknown.

``Routing`` checks those arrays against the nodes and turns each categorical node's bitset
into one row of "goes right" flags over the feature's codes ``0..K-1`` plus the code ``K``
that every unknown value and NaN gets: both evaluators then read a category as a code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

BITSET_WORD_BITS = 32


class RoutingError(ValueError):
    """The missing-value or categorical arrays do not fit the nodes."""


class Routing:
    """Per node: where a NaN goes, and for a categorical node where each code goes.

    ``missing_right`` (bool per node); ``features`` (the categorical input columns,
    ascending), ``values`` (each one's known values, ascending); ``right_start`` (per node:
    -1, or the offset in ``right`` of the node's flags for codes ``0..K``, ``K`` = unknown).
    """

    __slots__ = (
        "_key_start",
        "_keys",
        "_slots",
        "_unknown",
        "categorical",
        "features",
        "missing_right",
        "right",
        "right_start",
        "values",
    )

    def __init__(
        self,
        *,
        nodes: int,
        split: NDArray[np.bool_],
        feature: NDArray[np.intp],
        missing_left: NDArray[np.uint8] | None,
        cat_split: NDArray[np.intp] | None,
        cat_left: NDArray[np.uint32] | None,
        cat_values: Mapping[int, NDArray[np.float64]] | None,
    ) -> None:
        if missing_left is None:
            # v2 archives: NaN never reached the trees (validation refused it).
            missing_left = np.zeros(nodes, dtype=np.uint8)
        if missing_left.shape != (nodes,) or np.any(missing_left > 1):
            raise RoutingError("missing_left is not one 0 or 1 per node")
        self.missing_right = missing_left == 0
        values = dict(cat_values or {})
        self.features = np.array(sorted(values), dtype=np.intp)
        self.values = [np.asarray(values[f], dtype=np.float64) for f in self.features.tolist()]
        for f, known in zip(self.features.tolist(), self.values, strict=True):
            if known.ndim != 1 or not known.size or not np.all(np.isfinite(known)):
                raise RoutingError(f"categorical feature {f}'s known values are not finite numbers")
            if np.any(np.diff(known) <= 0):
                raise RoutingError(f"categorical feature {f}'s known values are not ascending")
        sizes = np.array([v.shape[0] for v in self.values], dtype=np.intp)
        self._slots = np.arange(sizes.shape[0], dtype=np.intp)
        self._key_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self._unknown = sizes
        # Every known value as slot + 1j * value, then one NaN key that matches no query.
        self._keys = np.empty(int(sizes.sum()) + 1, dtype=np.complex128)
        self._keys.real = np.concatenate([np.repeat(self._slots, sizes), [np.nan]])
        self._keys.imag = np.concatenate([np.zeros(0), *self.values, [np.nan]])
        self.right_start = np.full(nodes, -1, dtype=np.intp)
        self.right = np.zeros(0, dtype=np.bool_)
        categorical = np.zeros(nodes, dtype=np.bool_)
        if cat_split is not None:
            if cat_split.shape != (nodes,):
                raise RoutingError("cat_split is not one entry per node")
            categorical = split & (cat_split >= 0)
        is_cat_feature = np.isin(feature, self.features)
        if np.any(split & (is_cat_feature != categorical)):
            raise RoutingError(
                "a split's kind does not match its feature: numeric splits read numeric "
                "features, categorical splits the features with known categories"
            )
        # Codes are looked up only when some split reads them.
        self.categorical = bool(categorical.any())
        if self.categorical:
            self._categorical(np.flatnonzero(categorical), feature, cat_split, cat_left)

    def _categorical(
        self,
        cat_nodes: NDArray[np.intp],
        feature: NDArray[np.intp],
        cat_split: NDArray[np.intp] | None,
        cat_left: NDArray[np.uint32] | None,
    ) -> None:
        assert cat_split is not None
        if cat_left is None or cat_left.ndim != 2:
            raise RoutingError("cat_left is not a 2-D array of bitsets")
        rows = cat_split[cat_nodes]
        if rows.max() >= cat_left.shape[0]:
            raise RoutingError(f"a categorical split's bitset row {int(rows.max())} is missing")
        capacity = cat_left.shape[1] * BITSET_WORD_BITS
        slot = np.searchsorted(self.features, feature[cat_nodes])
        sizes = np.array([v.shape[0] for v in self.values], dtype=np.intp)
        if sizes.max() > capacity:
            raise RoutingError(f"a categorical feature has more than {capacity} categories")
        width = sizes[slot] + 1
        self.right_start[cat_nodes] = np.concatenate([[0], np.cumsum(width)[:-1]])
        right = []
        words = cat_left.astype(np.uint64)
        for node, row, k in zip(
            cat_nodes.tolist(), rows.tolist(), sizes[slot].tolist(), strict=True
        ):
            code = np.arange(k)
            shift = (code % BITSET_WORD_BITS).astype(np.uint64)
            in_left = (words[row, code // BITSET_WORD_BITS] >> shift) & np.uint64(1)
            right.append(np.append(in_left == 0, self.missing_right[node]))
        self.right = np.concatenate(right)

    def codes(self, X: NDArray[np.float64]) -> NDArray[np.intp]:
        """(rows, categorical features): each value's index among the known values, or K."""
        # One searchsorted over every feature's values as slot + 1j * value (numpy orders
        # complex numbers lexicographically; a NaN part sorts last and equals nothing).
        query = np.empty((X.shape[0], self.features.shape[0]), dtype=np.complex128)
        query.real = self._slots
        query.imag = X[:, self.features]
        position = np.searchsorted(self._keys, query)
        hit = np.take(self._keys, position) == query
        return np.where(hit, position - self._key_start, self._unknown)

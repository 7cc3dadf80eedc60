"""Lookup tables for categorical features: the fitted transformer itself, run on each value.

A categorical feature reaches the compiled runtime as its code (0..K-1), NaN for a null
and -1 for a passed unknown category (serving/schema.py's model input matrix). Whatever
a transformer does to such a column (one-hot or ordinal encoding with any option,
imputing the most frequent category first, ...) is a function of those K + 2 values, as
long as each output column depends on one input column. ``tables`` computes it by running
the fitted transformer on probe inputs built exactly as the handler's are (a DataFrame by
``inference.frames.to_frame`` for a frame model, the codes matrix otherwise): one input
column at a time over its domain, the others held fixed, attributing each output column to
the input column that moves it; then VERIFIES the tables on random combinations of every
column's domain at once. Any output column that two inputs move, or any mismatch, raises
``UnsupportedModelError`` naming the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.frames import to_frame
from inference.validation import Feature
from serving.schema import UNKNOWN_CODE
from training.compile_support import FALLBACK, UnsupportedModelError, chain

VERIFY_ROWS = 512
VERIFY_SEED = 20261208


class Probe:
    """The schema's features and how the pipeline receives its input."""

    def __init__(
        self,
        features: Sequence[Feature] | None,
        n_features: int,
        *,
        frame: bool,
        dtypes: dict[str, str] | None,
    ) -> None:
        self.features = None if features is None else tuple(features)
        self.n_features = n_features
        self.frame = frame
        self.dtypes = dtypes
        if frame and features is None:
            raise ValueError("a frame model's preprocessing needs the schema's features")

    def categorical(self, column: int) -> bool:
        return self.features is not None and self.features[column].values is not None

    def nullable_or_unknown(self, column: int) -> bool:
        if self.features is None:
            return False
        feature = self.features[column]
        return feature.nullable or feature.pass_unknown

    def name(self, column: int) -> str:
        return str(column) if self.features is None else self.features[column].name

    def domain(self, column: int) -> NDArray[np.float64]:
        """The model inputs a categorical column can hold: its codes, NaN if nullable and
        the unknown code if it passes unknown categories (in the tables' row order)."""
        assert self.features is not None
        feature = self.features[column]
        assert feature.values is not None
        codes = [float(code) for code in range(len(feature.values))]
        if feature.nullable:
            codes.append(np.nan)
        if feature.pass_unknown:
            codes.append(UNKNOWN_CODE)
        return np.asarray(codes, dtype=np.float64)

    def run(self, step: Any, X: NDArray[np.float64], columns: list[int], where: str) -> Any:
        """``step``'s output on the model input rows ``X``, dense float64."""
        if self.frame:
            assert self.features is not None
            inputs: Any = to_frame(X, self.features, dtypes=self.dtypes).iloc[:, columns]
        else:
            inputs = X[:, columns]
        try:
            out = inputs if not chain(step) else step.transform(inputs)
            if hasattr(out, "toarray"):
                out = out.toarray()  # the same numbers as the sparse matrix the estimator gets
            return np.asarray(out, dtype=np.float64).reshape(len(X), -1)
        except (ValueError, TypeError) as exc:
            raise UnsupportedModelError(
                f"{where} does not give numbers for the schema's values of "
                f"{', '.join(self.name(c) for c in columns)}: {exc}; {FALLBACK}"
            ) from None


def _row_of(codes: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    return np.where(np.isnan(codes), k, np.where(codes < 0, k + 1, codes)).astype(np.intp)


def _same(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
    return np.asarray((a == b) | (np.isnan(a) & np.isnan(b)), dtype=bool)


def tables(
    step: Any,
    columns: list[int],
    positions: list[int],
    probe: Probe,
    *,
    where: str,
    aligned: dict[int, list[int]] | None = None,
) -> dict[int, list[tuple[int, NDArray[np.float64]]]]:
    """For each position (into ``columns``) in ``positions``: the output columns it moves,
    each with its table (K + 2 values; NaN in the rows of a null or an unknown the schema
    does not let through).

    ``aligned``: the output columns each position writes (imputers and scalers: its own,
    and its missing-value indicator's), and only ``positions`` are tabled; otherwise every
    output column must belong to one of ``positions`` (every input column of the step).
    """
    if not positions:
        return {}
    base = np.zeros((1, probe.n_features))
    width = probe.run(step, base, columns, where).shape[1]
    owner: dict[int, int] = {}
    found: dict[int, NDArray[np.float64]] = {}
    for position in positions:
        column = columns[position]
        codes = probe.domain(column)
        X = np.repeat(base, len(codes), axis=0)
        X[:, column] = codes
        out = probe.run(step, X, columns, where)
        moved = np.flatnonzero(~np.all(_same(out, out[:1]), axis=0))
        if aligned is not None:
            if not set(moved.tolist()) <= set(aligned[position]):
                raise UnsupportedModelError(
                    f"{where}: input {probe.name(column)!r} moves output columns "
                    f"{moved.tolist()}, not its own; {FALLBACK}"
                )
            moved = np.asarray(aligned[position])
        for o in moved.tolist():
            if o in owner:
                raise UnsupportedModelError(
                    f"{where}: output column {o} depends on both {probe.name(columns[owner[o]])!r}"
                    f" and {probe.name(column)!r}; {FALLBACK}"
                )
            owner[o] = position
        k = len(probe.features[column].values or ()) if probe.features else 0
        for o in moved.tolist():
            values = np.full(k + 2, np.nan)
            values[_row_of(codes, k)] = out[:, o]
            found[o] = values
    if aligned is None:
        # Output columns no single input moves: constants, read with the first input.
        for o in range(width):
            if o not in owner:
                column = columns[positions[0]]
                codes = probe.domain(column)
                k = len(probe.features[column].values or ()) if probe.features else 0
                values = np.full(k + 2, np.nan)
                values[_row_of(codes, k)] = probe.run(step, base, columns, where)[0, o]
                owner[o], found[o] = positions[0], values
    _verify(step, columns, owner, found, probe, where)
    result: dict[int, list[tuple[int, NDArray[np.float64]]]] = {}
    for o in sorted(owner):
        result.setdefault(owner[o], []).append((o, found[o]))
    return result


def _verify(
    step: Any,
    columns: list[int],
    owner: dict[int, int],
    found: dict[int, NDArray[np.float64]],
    probe: Probe,
    where: str,
) -> None:
    """Every table against the step itself on random rows of every column's domain at once."""
    rng = np.random.default_rng(VERIFY_SEED)
    X = np.zeros((VERIFY_ROWS, probe.n_features))
    for column in columns:
        if probe.categorical(column):
            X[:, column] = rng.choice(probe.domain(column), VERIFY_ROWS)
    out = probe.run(step, X, columns, where)
    for o, position in owner.items():
        column = columns[position]
        k = len(found[o]) - 2
        expected = found[o][_row_of(X[:, column], k)]
        if not np.all(_same(out[:, o], expected)):
            raise UnsupportedModelError(
                f"{where}: output column {o} is not a function of {probe.name(column)!r} "
                f"alone (its table differs from the step on rows combining several columns' "
                f"values); {FALLBACK}"
            )

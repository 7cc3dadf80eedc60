"""The fast path of request validation: a clean batch checked with whole-array operations.

Checking value by value (``inference.validation``) costs about 10 us a record, most of a
large batch's time. ``valid_batch`` checks the common case, a clean batch, with a few
whole-array operations; anything else returns None and goes through the value-by-value
check, which finds and names every problem. The two agree on which batches are valid and
on the matrix (property tests in tests/handler check it, nulls and unknown categories
included).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from serving.schema import UNKNOWN_CODE

if TYPE_CHECKING:
    from inference.validation import CategoryValue, Feature

_NUMBER_TYPES = {int, float}
_NULLABLE_TYPES = {int, float, type(None)}


def valid_batch_matrix(records: list[Any], schema: Sequence[Feature]) -> NDArray[np.float64] | None:
    """``valid_batch``'s matrix (None when the batch is not exactly valid)."""
    fast = valid_batch(records, schema)
    return None if fast is None else fast[0]


def valid_batch(
    records: list[Any], schema: Sequence[Feature]
) -> tuple[NDArray[np.float64], dict[tuple[int, int], CategoryValue]] | None:
    """The batch as a matrix, and its passed unknown categories by (row, column), when
    every record is exactly valid; else None (``inference.validation`` then names every
    problem). A null of a nullable feature is NaN, a passed unknown ``UNKNOWN_CODE``."""
    names = [feature.name for feature in schema]
    pick = operator.itemgetter(*names)
    try:
        # A record that is not a mapping or lacks a field raises here. itemgetter and map
        # run in C: a Python loop over every value was most of a clean batch's cost.
        rows = list(map(pick, records))
    except (KeyError, TypeError, IndexError):
        return None
    if len(names) == 1:
        rows = [(value,) for value in rows]  # itemgetter of one name returns the value
    if set(map(len, records)) != {len(names)}:
        return None  # unknown fields
    return valid_rows(rows, schema)


def valid_rows(
    rows: list[Any], schema: Sequence[Feature]
) -> tuple[NDArray[np.float64], dict[tuple[int, int], CategoryValue]] | None:
    """``valid_batch`` on records already picked: each row the values of ``schema``'s
    features in order (a CSV batch read column-wise arrives so, without a dict per row)."""
    categorical = [index for index, feature in enumerate(schema) if feature.values is not None]
    nullable = np.array([feature.nullable for feature in schema])
    # A JSON null is NaN in the matrix: then every NaN must be one (a NaN number is refused).
    types = _NULLABLE_TYPES if nullable.any() else _NUMBER_TYPES
    unknown: dict[tuple[int, int], CategoryValue] = {}
    if categorical:
        matrix = _coded_matrix(rows, schema, categorical, types, unknown)
    else:
        matrix = _numbers(rows, rows, (len(rows), len(schema)), types)
    if matrix is None:
        return None
    # A passed unknown category's code is below the feature's range.
    minimum = np.array([UNKNOWN_CODE if f.pass_unknown else f.minimum for f in schema])
    maximum = np.array([feature.maximum for feature in schema])
    integer = np.array([feature.integer for feature in schema])
    finite = np.isfinite(matrix)
    if not finite.all():
        nulls = sum(map(operator.methodcaller("count", None), rows))
        missing: NDArray[np.bool_] = np.any(~finite, axis=0)
        if missing[~nullable].any() or np.count_nonzero(~finite) != nulls:
            return None
        # A null stands in as its feature's minimum: in range, and whole for an integer
        # feature (0.0 was below the range of most features: every batch with a null took
        # the value-by-value path).
        matrix_ = np.where(finite, matrix, minimum)
    else:
        matrix_ = matrix
    if (matrix_ < minimum).any() or (matrix_ > maximum).any():
        return None
    if (matrix_[:, integer] != np.floor(matrix_[:, integer])).any():
        return None
    return matrix, unknown


def _coded_matrix(
    rows: list[Any],
    schema: Sequence[Feature],
    categorical: list[int],
    types: set[type],
    unknown: dict[tuple[int, int], CategoryValue],
) -> NDArray[np.float64] | None:
    """The batch's matrix with each categorical value replaced by its code, column by column
    (the all-numeric path above never pays for this); None at the first value that is not
    exactly valid. A null stays None (NaN), a passed unknown gets ``UNKNOWN_CODE``."""
    columns: list[Any] = list(zip(*rows, strict=True))
    for index in categorical:
        feature = schema[index]
        codes = feature.codes
        try:
            # The key's type keeps 1 apart from "1" and true; a list or object is unhashable.
            coded: list[float | None] = [codes.get((type(v), v)) for v in columns[index]]
        except TypeError:
            return None
        if None in coded:
            for row in [row for row, code in enumerate(coded) if code is None]:
                value = columns[index][row]
                if value is None and feature.nullable:
                    continue
                if not (feature.pass_unknown and type(value) in feature.value_types):
                    return None
                coded[row] = UNKNOWN_CODE
                unknown[(row, index)] = value
        columns[index] = coded
    numeric = [column for index, column in enumerate(columns) if index not in categorical]
    by_column = _numbers(numeric, columns, (len(schema), len(rows)), types)
    return None if by_column is None else np.ascontiguousarray(by_column.T)


def _numbers(
    checked: Sequence[Any], values: Sequence[Any], shape: tuple[int, int], types: set[type]
) -> NDArray[np.float64] | None:
    """``values`` (sequences, flattened in order) as a float matrix of ``shape`` (None is
    NaN); None when a value of ``checked`` is not of ``types`` or too large for a float."""
    # type() rather than isinstance(): bool is an int subclass, and true/false is refused.
    if not set(map(type, itertools.chain.from_iterable(checked))) <= types:
        return None
    try:
        # fromiter over the flat values: half the time of np.array on a list of tuples.
        flat = itertools.chain.from_iterable(values)
        return np.fromiter(flat, np.float64, count=shape[0] * shape[1]).reshape(shape)
    except OverflowError:
        return None  # an integer too large for a float is out of range anyway

"""The whole-array check of clean batches agrees with the value-by-value validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.errors import RequestError
from inference.validation import Feature, parse_instances, valid_batch_matrix
from tests.handler.conftest import assert_fast_path_agrees

SCHEMA = (
    Feature("tenure_months", True, 0, 240),
    Feature("monthly_charges", False, 0.0, 1000.0),
    Feature("has_tech_support", True, 0, 1),
)
# The same features, two of them nullable: null is NaN there, refused in the third.
NULLABLE = (
    Feature("tenure_months", True, 0, 240, nullable=True),
    Feature("monthly_charges", False, 0.0, 1000.0, nullable=True),
    Feature("has_tech_support", True, 0, 1),
)

edge_values = st.one_of(
    st.integers(-5, 300),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1.0, 0.5, 240, 240.0, 240.5, 1000.0, 1000.01, -0.0, True, False]),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


def record_strategy() -> st.SearchStrategy[Any]:
    names = [f.name for f in SCHEMA]
    fields = st.dictionaries(
        st.sampled_from([*names, "extra"]), edge_values, min_size=0, max_size=4
    )
    full = st.fixed_dictionaries({n: edge_values for n in names})
    return st.one_of(full, full, fields, st.integers(), st.text(max_size=2), st.none())


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(record_strategy(), min_size=1, max_size=6), st.sampled_from([SCHEMA, NULLABLE]))
def test_fast_path_accepts_exactly_what_the_slow_path_accepts(
    records: list[Any], schema: tuple[Feature, ...]
) -> None:
    assert_fast_path_agrees(records, schema)


def test_a_null_of_a_nullable_feature_is_nan_on_both_paths() -> None:
    clean = {"tenure_months": 3, "monthly_charges": 9.5, "has_tech_support": 1}
    records = [clean, {**clean, "monthly_charges": None}, {**clean, "tenure_months": None}]
    X = valid_batch_matrix(records, NULLABLE)
    assert X is not None
    assert np.isnan(X).tolist() == [[False] * 3, [False, True, False], [True, False, False]]
    single = parse_instances(records[1], NULLABLE, max_batch_size=1).X
    assert np.array_equal(single, X[1:2], equal_nan=True)
    # A NaN number is not a null: refused by both paths, nullable or not.
    nan = [clean, {**clean, "monthly_charges": math.nan}]
    assert valid_batch_matrix(nan, NULLABLE) is None
    with pytest.raises(RequestError, match=r"instances\[1\]\.monthly_charges: must be a finite"):
        parse_instances({"instances": nan}, NULLABLE, max_batch_size=10)


def test_a_null_in_a_feature_whose_range_excludes_zero_stays_on_the_fast_path() -> None:
    """A null is checked against its feature's range as the feature's minimum: standing in
    as 0.0, it sent every batch with a null in a feature like body mass (2,340 to 6,660 g)
    through the value-by-value path."""
    schema = (
        Feature("body_mass_g", True, 2340, 6660, nullable=True),
        Feature("bill_length_mm", False, 29.3, 62.4, nullable=True),
    )
    records = [
        {"body_mass_g": 3550, "bill_length_mm": None},
        {"body_mass_g": None, "bill_length_mm": 42.2},
    ]
    X = valid_batch_matrix(records, schema)
    assert X is not None
    assert np.isnan(X).tolist() == [[False, True], [True, False]]
    # Out of range is still refused on the fast path, next to a null.
    assert (
        valid_batch_matrix([*records, {"body_mass_g": 2339, "bill_length_mm": None}], schema)
        is None
    )


@pytest.mark.parametrize("batch", [False, True])
def test_a_null_for_a_feature_that_is_not_nullable_says_so(batch: bool) -> None:
    record = {"tenure_months": None, "monthly_charges": 9.5, "has_tech_support": None}
    payload: Any = {"instances": [record]} if batch else record
    with pytest.raises(RequestError) as info:
        parse_instances(payload, NULLABLE, max_batch_size=10)
    # tenure_months is nullable; has_tech_support is not, and the message says so.
    where = "instances[0].has_tech_support" if batch else "has_tech_support"
    assert info.value.message == (
        f"{where}: must be a number, got null (the feature is not nullable)"
    )
    assert info.value.log_details == [
        {"field": "has_tech_support", "kind": "not_nullable", **({"row": 0} if batch else {})}
    ]


def test_clean_batch_takes_the_fast_path_and_keeps_input_order() -> None:
    records = [
        {"tenure_months": i, "monthly_charges": 10.5 * i, "has_tech_support": i % 2}
        for i in range(50)
    ]
    X = valid_batch_matrix(records, SCHEMA)
    assert X is not None and X.shape == (50, 3)
    assert X[:, 0].tolist() == list(range(50))


def test_a_bad_record_deep_in_a_batch_is_still_named() -> None:
    records = [{"tenure_months": 1, "monthly_charges": 1.0, "has_tech_support": 0}] * 99
    records = [*records, {"tenure_months": 1, "monthly_charges": math.nan, "has_tech_support": 0}]
    try:
        parse_instances({"instances": records}, SCHEMA, max_batch_size=1000)
    except RequestError as exc:
        assert "instances[99].monthly_charges: must be a finite number" in str(exc)
    else:
        raise AssertionError("a NaN in row 99 was accepted")

"""The whole-array check of clean batches agrees with the value-by-value validation."""

from __future__ import annotations

import math
from typing import Any

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
@given(st.lists(record_strategy(), min_size=1, max_size=6))
def test_fast_path_accepts_exactly_what_the_slow_path_accepts(records: list[Any]) -> None:
    assert_fast_path_agrees(records, SCHEMA)


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

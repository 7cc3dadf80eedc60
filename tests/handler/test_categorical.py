"""Categorical features: the artifact's allowed values, exact JSON matching, codes in the matrix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.errors import RequestError
from inference.limits import MESSAGE_MAX_CHARS
from inference.validation import parse_instances, schema_from_artifact
from serving.schema import UNKNOWN_CODE
from tests.handler.conftest import assert_fast_path_agrees

FEATURES = [
    {"name": "tenure_months", "dtype": "integer", "allowed": {"min": 0, "max": 240}},
    {"name": "contract", "dtype": "categorical", "allowed": {"values": ["monthly", "yearly"]}},
    {"name": "monthly_charges", "dtype": "number", "allowed": {"min": 0, "max": 1000}},
    # Integer categories: 1 is a value, "1", 1.0 and true are not.
    {"name": "plan", "dtype": "categorical", "allowed": {"values": [3, 1, 2]}},
]
SCHEMA = schema_from_artifact(FEATURES)
NAMES = [feature.name for feature in SCHEMA]
# The same features with unknown categories passed and nulls accepted (numeric and categorical).
OPEN = schema_from_artifact(
    [
        {**FEATURES[0], "nullable": True},
        {**FEATURES[1], "unknown": "pass", "nullable": True},
        FEATURES[2],
        {**FEATURES[3], "unknown": "pass"},
    ]
)


def record(**changes: object) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tenure_months": 12,
        "contract": "yearly",
        "monthly_charges": 50.5,
        "plan": 1,
    }
    out.update(changes)
    return out


def rejected(payload: object) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_instances(payload, SCHEMA, max_batch_size=100)
    return info.value


def test_the_matrix_holds_each_value_s_position_in_the_schema_list() -> None:
    X = parse_instances(record(), SCHEMA, max_batch_size=10).X
    assert X.tolist() == [[12.0, 1.0, 50.5, 1.0]]
    batch = [record(contract="monthly", plan=3), record(plan=2)]
    X = parse_instances({"instances": batch}, SCHEMA, max_batch_size=10).X
    assert X.tolist() == [[12.0, 0.0, 50.5, 0.0], [12.0, 1.0, 50.5, 2.0]]
    assert X.flags["C_CONTIGUOUS"] and X.dtype == np.float64


def test_a_categorical_schema_entry_keeps_its_values() -> None:
    contract = SCHEMA[1]
    assert contract.values == ("monthly", "yearly")
    assert (contract.integer, contract.minimum, contract.maximum) == (True, 0.0, 1.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("weekly", 'contract: "weekly" is not one of "monthly", "yearly"'),
        ("Monthly", 'contract: "Monthly" is not one of "monthly", "yearly"'),
        (1, 'contract: must be one of "monthly", "yearly", got number 1'),
        (["monthly"], 'contract: must be one of "monthly", "yearly", got array ["monthly"]'),
    ],
)
def test_a_value_outside_the_list_is_named_with_the_allowed_ones(
    value: object, message: str
) -> None:
    error = rejected(record(contract=value))
    assert error.message == message
    assert error.log_details == [{"field": "contract", "kind": "not_allowed"}]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1", 'plan: must be one of 3, 1, 2, got string "1"'),
        (1.0, "plan: must be one of 3, 1, 2, got number 1.0"),
        (True, "plan: must be one of 3, 1, 2, got boolean true"),
        (4, "plan: 4 is not one of 3, 1, 2"),
    ],
)
def test_integer_categories_match_the_json_value_exactly(value: object, message: str) -> None:
    assert rejected(record(plan=value)).message == message
    # The batch path agrees and names the row.
    error = rejected({"instances": [record(), record(plan=value)]})
    assert error.message == f"instances[1].{message}"


def test_a_thousand_values_give_a_short_message() -> None:
    values = [f"segment-{index:04d}-{'x' * 50}" for index in range(1000)]
    schema = schema_from_artifact(
        [{"name": "segment", "dtype": "categorical", "allowed": {"values": values}}]
    )
    with pytest.raises(RequestError) as info:
        parse_instances({"segment": "y" * 10_000}, schema, max_batch_size=1)
    message = info.value.message
    assert "(or one of 990 more values)" in message
    assert len(message) < 600 < MESSAGE_MAX_CHARS
    ok = parse_instances({"segment": values[999]}, schema, max_batch_size=1)
    assert ok.X.tolist() == [[999.0]]


@pytest.mark.parametrize(
    ("allowed", "fragment"),
    [
        (None, "needs allowed.values"),
        ({"values": []}, "needs allowed.values"),
        ({"values": "monthly"}, "needs allowed.values"),
        ({"values": list(range(1001))}, "1 to 1000"),
        ({"values": ["a", True]}, "allowed value true (boolean)"),
        ({"values": ["a", 1.5]}, "allowed value 1.5 (number)"),
        ({"values": ["a", None]}, "allowed value null"),
        ({"values": ["a", "b", "a"]}, 'repeats the allowed value "a"'),
    ],
)
def test_a_malformed_categorical_entry_is_refused_by_name(allowed: object, fragment: str) -> None:
    entry = {"name": "contract", "dtype": "categorical", "allowed": allowed}
    with pytest.raises(ValueError, match="entry 1 \\(contract\\)") as info:
        schema_from_artifact([FEATURES[0], entry])
    assert fragment in str(info.value)


def test_integer_and_string_spellings_of_one_value_are_two_values() -> None:
    schema = schema_from_artifact(
        [{"name": "code", "dtype": "categorical", "allowed": {"values": [1, "1"]}}]
    )
    assert parse_instances({"code": "1"}, schema, max_batch_size=1).X.tolist() == [[1.0]]
    assert parse_instances({"code": 1}, schema, max_batch_size=1).X.tolist() == [[0.0]]


edge_values = st.one_of(
    st.sampled_from(["monthly", "yearly", "weekly", "", "1", 1, 2, 3, 4, 0, 1.0, True, False]),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.text(max_size=3),
    st.lists(st.sampled_from(["monthly", 1]), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def record_strategy() -> st.SearchStrategy[Any]:
    fields = st.dictionaries(st.sampled_from([*NAMES, "extra"]), edge_values, max_size=5)
    full = st.fixed_dictionaries({name: edge_values for name in NAMES})
    return st.one_of(full, full, fields, st.none())


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(record_strategy(), min_size=1, max_size=5), st.sampled_from([SCHEMA, OPEN]))
def test_fast_path_accepts_exactly_what_the_slow_path_accepts(
    records: list[Any], schema: Any
) -> None:
    assert_fast_path_agrees(records, schema)


def test_a_null_category_is_refused_saying_the_feature_is_not_nullable() -> None:
    error = rejected(record(contract=None))
    assert error.message == (
        'contract: must be one of "monthly", "yearly", got null (the feature is not nullable)'
    )
    assert error.log_details == [{"field": "contract", "kind": "not_nullable"}]


@pytest.mark.parametrize("batch", [False, True])
def test_a_passed_unknown_is_coded_minus_one_with_its_value_kept(batch: bool) -> None:
    rows = [record(), record(contract="weekly", plan=7, tenure_months=None), record(contract=None)]
    payload: Any = {"instances": rows} if batch else rows[1]
    instances = parse_instances(payload, OPEN, max_batch_size=10)
    row = 1 if batch else 0
    x = instances.X[row].tolist()
    assert math.isnan(x[0]) and x[1:] == [UNKNOWN_CODE, 50.5, UNKNOWN_CODE]
    assert instances.unknown == {(row, 1): "weekly", (row, 3): 7}
    if batch:
        assert math.isnan(instances.X[2, 1]) and instances.X[0].tolist() == [12, 1, 50.5, 1]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # The JSON type of the listed values only: an integer is not a string category,
        # a string not an integer one, and a bool or a float never a category.
        ("contract", 4, 'contract: must be one of "monthly", "yearly", got number 4'),
        ("plan", "4", 'plan: must be one of 3, 1, 2, got string "4"'),
        ("plan", True, "plan: must be one of 3, 1, 2, got boolean true"),
        ("plan", 4.0, "plan: must be one of 3, 1, 2, got number 4.0"),
        ("plan", None, "plan: must be one of 3, 1, 2, got null (the feature is not nullable)"),
    ],
)
def test_a_passed_feature_still_refuses_the_wrong_json_type(
    name: str, value: object, message: str
) -> None:
    for payload in (record(**{name: value}), {"instances": [record(), record(**{name: value})]}):
        with pytest.raises(RequestError) as info:
            parse_instances(payload, OPEN, max_batch_size=10)
        assert info.value.message.replace("instances[1].", "") == message


CODES = {"contract": ["monthly", "yearly"], "plan": [3, 1, 2]}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["contract", "plan"]), edge_values)
def test_any_value_is_accepted_exactly_when_listed_and_coded_by_position(
    name: str, value: object
) -> None:
    allowed = CODES[name]
    listed = [index for index, v in enumerate(allowed) if type(v) is type(value) and v == value]
    try:
        X = parse_instances(record(**{name: value}), SCHEMA, max_batch_size=1).X
    except RequestError as error:
        assert not listed
        assert error.message.startswith(f"{name}: ")
    else:
        assert listed
        assert X[0, NAMES.index(name)] == float(listed[0])
        assert not np.isnan(X).any()

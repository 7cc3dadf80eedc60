"""Categorical features: the artifact's allowed values, exact JSON matching, codes in the matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.errors import RequestError
from inference.limits import MESSAGE_MAX_CHARS
from inference.validation import parse_instances, schema_from_artifact
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
        (None, 'contract: must be one of "monthly", "yearly", got null'),
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


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(record_strategy(), min_size=1, max_size=5))
def test_fast_path_accepts_exactly_what_the_slow_path_accepts(records: list[Any]) -> None:
    assert_fast_path_agrees(records, SCHEMA)


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

"""Validation against the artifact's feature schema: each rule, single and batch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.errors import RequestError
from inference.validation import (
    MAX_REPORTED_PROBLEMS,
    Feature,
    parse_instances,
    schema_from_artifact,
)
from tests.handler.conftest import manifest, valid_record
from training.schema import FEATURE_NAMES

SCHEMA = schema_from_artifact(manifest("v1")["features"])
NAMES = [feature.name for feature in SCHEMA]


def parse(payload: object, max_batch_size: int = 10) -> Any:
    return parse_instances(payload, SCHEMA, max_batch_size=max_batch_size)


def rejected(payload: object, max_batch_size: int = 10) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse(payload, max_batch_size)
    return info.value


def with_value(name: str, value: object) -> dict[str, Any]:
    record = valid_record()
    record[name] = value
    return record


def test_schema_comes_from_the_artifact_in_model_input_order() -> None:
    assert list(FEATURE_NAMES) == NAMES
    assert SCHEMA[0] == Feature("tenure_months", True, 0.0, 240.0)
    assert SCHEMA[1] == Feature("monthly_charges", False, 0.0, 1000.0)


def test_single_record_becomes_one_row_in_schema_order() -> None:
    record = valid_record()
    shuffled = dict(reversed(list(record.items())))
    instances = parse(shuffled)
    assert not instances.batch
    assert instances.X.dtype == np.float64
    assert instances.X.tolist() == [[float(record[name]) for name in NAMES]]


def test_batch_keeps_input_order() -> None:
    records = [with_value("tenure_months", months) for months in (5, 0, 240, 17)]
    instances = parse({"instances": records})
    assert instances.batch
    assert instances.X[:, 0].tolist() == [5.0, 0.0, 240.0, 17.0]


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("tenure_months", "12", 'must be a number, got string "12"'),
        ("tenure_months", None, "must be a number, got null (the feature is not nullable)"),
        ("tenure_months", [1], "must be a number, got array [1]"),
        ("tenure_months", {"v": 1}, 'must be a number, got object {"v": 1}'),
        ("has_tech_support", True, "must be a number, got boolean true"),
        ("has_tech_support", False, "must be a number, got boolean false"),
        ("monthly_charges", math.nan, "must be a finite number, got NaN"),
        ("monthly_charges", math.inf, "must be a finite number, got Infinity"),
        ("monthly_charges", -math.inf, "must be a finite number, got -Infinity"),
        ("tenure_months", 12.5, "must be a whole number, got 12.5"),
        ("tenure_months", 241, "must be between 0 and 240, got 241"),
        ("tenure_months", -1, "must be between 0 and 240, got -1"),
        ("monthly_charges", 1000.01, "must be between 0.0 and 1000.0, got 1000.01"),
        ("num_products", 0, "must be between 1 and 20, got 0"),
        (
            "tenure_months",
            10**400,
            "must be between 0 and 240, got 1000000000000000000000000000000000000...",
        ),
    ],
)
def test_bad_values_are_rejected_naming_the_field(name: str, value: object, fragment: str) -> None:
    error = rejected(with_value(name, value))
    assert error.status == 400
    assert error.message == f"{name}: {fragment}"
    assert error.details == [{"field": name, "message": error.message}]


def test_integral_float_is_accepted_for_an_integer_feature() -> None:
    assert parse(with_value("tenure_months", 12.0)).X[0, 0] == 12.0


@pytest.mark.parametrize("name", ["tenure_months", "monthly_charges"])
def test_bounds_are_inclusive(name: str) -> None:
    feature = SCHEMA[NAMES.index(name)]
    for bound in (feature.minimum, feature.maximum):
        value = int(bound) if feature.integer else bound
        assert parse(with_value(name, value)).X[0, NAMES.index(name)] == bound


def test_missing_field_is_named() -> None:
    record = valid_record()
    del record["total_charges"]
    error = rejected(record)
    assert error.message == "total_charges: required field is missing"


def test_unknown_field_is_named() -> None:
    error = rejected({**valid_record(), "customer_id": 42})
    assert error.message.startswith("customer_id: unknown field (expected: tenure_months, ")


def test_every_problem_is_reported_with_a_count() -> None:
    record = valid_record()
    del record["num_products"]
    record["tenure_months"] = -5
    error = rejected(record)
    assert error.message.endswith("(and 1 more problem)")
    assert {d["field"] for d in error.details} == {"num_products", "tenure_months"}


@pytest.mark.parametrize("payload", [[valid_record()], "text", 3, None, True])
def test_body_must_be_an_object(payload: object) -> None:
    error = rejected(payload)
    assert error.status == 400
    assert error.message.startswith("request body must be a JSON object")


def test_batch_errors_name_the_row_and_field() -> None:
    records = [valid_record(), valid_record(), with_value("contract_type_encoded", 3)]
    error = rejected({"instances": records})
    assert error.status == 400
    assert error.message == "instances[2].contract_type_encoded: must be between 0 and 2, got 3"
    assert error.details[0]["row"] == 2


def test_batch_row_that_is_not_an_object_is_named() -> None:
    error = rejected({"instances": [valid_record(), 7]})
    assert error.message == "instances[1] must be a JSON object, got number"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"instances": []}, "'instances' is empty"),
        ({"instances": valid_record()}, "'instances' must be an array of records, got object"),
        ({"instances": [valid_record()], "extra": 1}, "unknown field 'extra' next to 'instances'"),
    ],
)
def test_malformed_batches_are_rejected(payload: object, fragment: str) -> None:
    error = rejected(payload)
    assert error.status == 400
    assert fragment in error.message


def test_batch_over_the_limit_is_413_and_at_the_limit_is_accepted() -> None:
    assert parse({"instances": [valid_record()] * 3}, max_batch_size=3).X.shape == (3, 7)
    error = rejected({"instances": [valid_record()] * 4}, max_batch_size=3)
    assert error.status == 413
    assert "batch of 4 instances exceeds MAX_BATCH_SIZE=3" in error.message


def test_reported_problems_are_capped() -> None:
    error = rejected({"instances": [{}] * 10})
    assert len(error.details) == MAX_REPORTED_PROBLEMS
    assert error.message.endswith(f"(and {10 * 7 - 1} more problems)")


@pytest.mark.parametrize(
    ("features", "fragment"),
    [
        ([], "non-empty list"),
        ([{"name": "a", "dtype": "string", "allowed": {"min": 0, "max": 1}}], "dtype 'string'"),
        ([{"name": "a", "dtype": "number", "allowed": {"min": 0}}], "allowed.max"),
        ([{"name": "a", "dtype": "number", "allowed": {"min": 2, "max": 1}}], "allowed.min 2.0 >"),
        ([{"name": "a", "dtype": "number", "allowed": {"min": 0, "max": 1}}] * 2, "repeats"),
        ([{"name": "instances", "dtype": "number", "allowed": {"min": 0, "max": 1}}], "reserved"),
    ],
)
def test_malformed_artifact_schema_is_refused(features: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        schema_from_artifact(features)


def _in_range(feature: Feature) -> st.SearchStrategy[float | int]:
    if feature.integer:
        return st.integers(int(feature.minimum), int(feature.maximum))
    return st.floats(feature.minimum, feature.maximum, allow_nan=False)


VALID_RECORDS = st.fixed_dictionaries({f.name: _in_range(f) for f in SCHEMA})
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None)
@given(VALID_RECORDS)
def test_any_in_range_record_is_accepted_unchanged(record: dict[str, Any]) -> None:
    assert parse(record).X.tolist() == [[float(record[name]) for name in NAMES]]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NAMES), JSON_VALUES)
def test_any_json_value_is_accepted_or_rejected_by_name(name: str, value: object) -> None:
    feature = SCHEMA[NAMES.index(name)]
    acceptable = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (not feature.integer or float(value).is_integer())
        and feature.minimum <= value <= feature.maximum
    )
    try:
        instances = parse(with_value(name, value))
    except RequestError as error:
        assert not acceptable
        assert error.status == 400
        assert error.message.startswith(f"{name}: ")
    else:
        assert acceptable
        assert instances.X[0, NAMES.index(name)] == float(value)  # type: ignore[arg-type]


def counting_problems(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many problems validation builds (each carries a message): counted, not timed."""
    from inference import validation

    built = [0]
    real = validation.Problem

    def counted(*args: Any, **kwargs: Any) -> Any:
        built[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(validation, "Problem", counted)
    return built


@pytest.mark.parametrize("batch", [False, True])
def test_a_record_with_many_unknown_fields_builds_only_the_reported_problems(
    monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    # 110,000 unknown keys (about 1 MB): a message each took ~1.1 s of CPU for 20 shown.
    unknown = 110_000
    record = {**valid_record(), **{f"x{i:06d}": 0 for i in range(unknown)}}
    built = counting_problems(monkeypatch)
    error = rejected({"instances": [record, record]} if batch else record)
    found = unknown * (2 if batch else 1)
    assert len(error.details) == MAX_REPORTED_PROBLEMS
    assert error.omitted == found - MAX_REPORTED_PROBLEMS
    assert f"(and {found - 1} more problems)" in error.message
    # The first in name order, as before.
    assert [d["field"] for d in error.details[:3]] == ["x000000", "x000001", "x000002"]
    assert built[0] <= 2 * MAX_REPORTED_PROBLEMS + 2

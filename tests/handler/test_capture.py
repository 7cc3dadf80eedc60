"""Capture records: sampling, bounds, format, and the subscription filter that selects them."""

from __future__ import annotations

import ast
import json
import math
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import capture
from tests.handler import cloudwatch_filter
from tests.handler.conftest import ROOT, load_event, manifest

FEATURES = [entry["name"] for entry in manifest("v1")["features"]]
WHEN = datetime(2026, 11, 25, 17, 4, 5, 123000, tzinfo=UTC)
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def build(count: int, **overrides: Any) -> list[dict[str, Any]]:
    rows = count
    values = [[float(i), 50.5, 100.0, 1.0, 0.0, 1.0, 2.0] for i in range(rows)]
    arguments: dict[str, Any] = {
        "request_id": "req-1",
        "timestamp": WHEN,
        "model_name": "churn",
        "model_version": "v1",
        "lambda_version": "7",
        "feature_names": FEATURES,
        "rows": values,
        "probabilities": [i / max(rows, 1) for i in range(rows)],
        "predictions": [int(i / max(rows, 1) >= 0.5) for i in range(rows)],
        **overrides,
    }
    return capture.records(**arguments)


# ---------------------------------------------------------------- record format


def test_a_record_holds_identity_features_and_answer() -> None:
    (record,) = build(1)
    assert record == {
        "capture": 1,
        "format": "capture/1",
        "request_id": "req-1",
        "row": 0,
        "rows_in_request": 1,
        "rows_captured": 1,
        "timestamp": "2026-11-25T17:04:05.123Z",
        "date": "2026-11-25",
        "model_name": "churn",
        "model_version": "v1",
        "lambda_version": "7",
        "features": dict(zip(FEATURES, [0, 50.5, 100, 1, 0, 1, 2], strict=True)),
        "probability": 0.0,
        "prediction": 0,
    }


def test_timestamps_are_utc_and_naive_ones_are_refused() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=-5)))
    (record,) = build(1, timestamp=local)
    assert record["timestamp"] == "2026-11-25T17:04:05.123Z"
    with pytest.raises(ValueError, match=r"timezone-aware, got 2026-11-25T17:04:05\.123000"):
        build(1, timestamp=WHEN.replace(tzinfo=None))


def test_mismatched_lengths_are_refused_with_the_counts() -> None:
    with pytest.raises(ValueError, match=r"rows \(2\), probabilities \(1\)"):
        build(2, probabilities=[0.5])
    with pytest.raises(ValueError, match="row 0 has 2 values for 7 features"):
        build(1, rows=[[1.0, 2.0]])


def test_a_batch_is_captured_per_row_up_to_the_bound_spread_over_the_batch() -> None:
    records = build(1000, max_rows=10)
    assert [r["row"] for r in records] == list(range(0, 1000, 100))
    assert {(r["rows_in_request"], r["rows_captured"]) for r in records} == {(1000, 10)}
    assert all(r["features"]["tenure_months"] == r["row"] for r in records)
    assert len(build(3, max_rows=10)) == 3


@PROPERTY
@given(st.integers(0, 5000), st.integers(1, 300))
def test_captured_rows_are_distinct_in_range_and_bounded(total: int, max_rows: int) -> None:
    rows = capture.captured_rows(total, max_rows)
    assert len(rows) == min(total, max_rows)
    assert rows == sorted(set(rows)) and all(0 <= r < total for r in rows)


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows must be a positive integer, got 0"):
        capture.captured_rows(5, 0)


def test_a_record_too_large_for_a_log_line_drops_only_its_features() -> None:
    names = [f"feature_{i:05d}" for i in range(8000)]
    (record,) = build(1, feature_names=names, rows=[[0.123456789] * 8000])
    assert record["features"] is None
    assert record["features_omitted_bytes"] > capture.MAX_RECORD_BYTES
    assert record["probability"] == 0.0 and record["request_id"] == "req-1"
    assert len(capture.encode(record)) < capture.MAX_RECORD_BYTES
    (normal,) = build(1)
    assert "features_omitted_bytes" not in normal


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 3000), st.integers(1, 5))
def test_every_line_stays_under_the_log_line_bound(features: int, rows: int) -> None:
    names = [f"f{i}" for i in range(features)]
    out = build(rows, feature_names=names, rows=[[1.5e300] * features] * rows)
    assert all(len(capture.encode(r)) < capture.MAX_RECORD_BYTES for r in out)


def test_the_module_needs_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "serving" / "capture.py").read_text())
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


# ---------------------------------------------------------------- sampling


def ids(count: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"request/{i}")) for i in range(count)]


def test_rate_zero_captures_nothing_and_rate_one_everything() -> None:
    assert not any(capture.is_sampled(i, 0) for i in ids(2000))
    assert all(capture.is_sampled(i, 1) for i in ids(2000))


def test_a_rate_captures_about_that_share() -> None:
    share = sum(capture.is_sampled(i, 0.3) for i in ids(10_000)) / 10_000
    # Binomial standard deviation at n = 10,000: 0.0046; 4 of them.
    assert abs(share - 0.3) < 0.02


@PROPERTY
@given(st.text(min_size=1, max_size=60), st.floats(0, 1), st.floats(0, 1))
def test_sampling_is_deterministic_and_monotone_in_the_rate(
    request_id: str, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    assert capture.is_sampled(request_id, low) == capture.is_sampled(request_id, low)
    if capture.is_sampled(request_id, low):
        assert capture.is_sampled(request_id, high)


@pytest.mark.parametrize("rate", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_a_bad_rate_is_refused_naming_it(rate: Any) -> None:
    with pytest.raises(ValueError, match=f"in \\[0, 1\\], got {rate!r}"):
        capture.is_sampled("req", rate)


@pytest.mark.parametrize(
    ("text", "rate"), [("0", 0.0), (" 0.05 ", 0.05), ("1", 1.0), ("1e-3", 0.001)]
)
def test_a_rate_from_configuration_text(text: str, rate: float) -> None:
    assert capture.parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "5%", "-0.01", "1.01", "nan", "inf", "0,5"])
def test_a_bad_rate_setting_is_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match=f"CAPTURE_SAMPLING_RATE must be .*got {text!r}"):
        capture.parse_rate(text)


# ---------------------------------------------------------------- the subscription filter


@pytest.fixture(scope="module")
def capture_filter() -> cloudwatch_filter.NumericJsonFilter:
    return cloudwatch_filter.parse(capture.FILTER_PATTERN)


def test_every_capture_line_matches_the_filter_pattern(
    capture_filter: cloudwatch_filter.NumericJsonFilter,
) -> None:
    lines = [capture.encode(r) for r in build(250)]
    assert lines and all(capture_filter.matches(line) for line in lines)


@pytest.mark.parametrize(
    "line",
    [
        '{"capture":0}',
        '{"capture":"1"}',
        '{"capture":true}',
        '{"capture":null}',
        '{"record":{"capture":1}}',
        '{"message":"capture = 1"}',
        "capture 1",
        "[1]",
        # Lambda's own lines in the same stream: plain text.
        "START RequestId: 8f0c2a1e-0000-4000-8000-000000000000 Version: 7",
        "REPORT RequestId: 8f0c2a1e-0000-4000-8000-000000000000\tDuration: 3.21 ms",
        "",
    ],
)
def test_lines_that_only_look_like_capture_do_not_match(
    capture_filter: cloudwatch_filter.NumericJsonFilter, line: str
) -> None:
    assert not capture_filter.matches(line)


def test_the_evaluator_follows_numeric_comparison_rules() -> None:
    assert cloudwatch_filter.parse("{ $.capture = 1 }").matches('{"capture":1.0}')
    assert cloudwatch_filter.parse("{$.a.b>=2}").matches('{"a":{"b":3}}')
    assert not cloudwatch_filter.parse("{ $.a.b >= 2 }").matches('{"a":{"b":1}}')
    with pytest.raises(ValueError, match="not a numeric JSON filter pattern"):
        cloudwatch_filter.parse('{ $.capture = "1" }')


def test_the_handlers_ordinary_lines_do_not_match(
    serving: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    capture_filter: cloudwatch_filter.NumericJsonFilter,
) -> None:
    capsys.readouterr()
    serving(load_event("direct_single.json"))
    serving(load_event("direct_batch.json"))
    serving(load_event("function_url_v2.json"))
    serving(load_event("warmup.json"))
    serving({"tenure_months": "not a number"})
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    messages = {json.loads(line).get("message") for line in lines}
    assert {"prediction", "warm-up", "request rejected"} <= messages
    assert any('"_aws"' in line for line in lines)  # metric documents too
    assert not [line for line in lines if capture_filter.matches(line)]
    assert not [line for line in lines if "capture" in json.loads(line)]

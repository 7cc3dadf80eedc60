"""Capture records written by the handler: sampling, bounds, and the subscription filter."""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from inference import handler as handler_module
from inference import model_loader
from serving import capture
from stacks.constructs.capture_delivery import CAPTURE_FILTER_PATTERN
from tests.handler import cloudwatch_filter
from tests.handler.conftest import (
    FakeLambdaContext,
    capture_lines,
    load_event,
    local_env,
    log_lines,
    manifest,
    valid_record,
)

Configure = Callable[[dict[str, str]], Any]
FEATURES = [entry["name"] for entry in manifest("v1")["features"]]


def batch(rows: int) -> dict[str, Any]:
    return {"instances": [{**valid_record(), "tenure_months": i % 72} for i in range(rows)]}


def run(events: list[Any]) -> list[dict[str, Any]]:
    return [handler_module.handler(event, FakeLambdaContext()) for event in events]


@pytest.fixture
def capture_all(fresh_environment: Configure) -> None:
    """A new execution environment serving v1 that captures every request."""
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1"))


def test_the_filter_pattern_is_the_one_the_stack_subscribes_with() -> None:
    assert capture.FILTER_PATTERN == CAPTURE_FILTER_PATTERN


@pytest.mark.parametrize("rate", ["", "0"])
def test_rate_0_or_unset_writes_no_capture_line(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str], rate: str
) -> None:
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE=rate))
    responses = run([load_event("direct_single.json"), batch(20)])
    assert [r["statusCode"] for r in responses] == [200, 200]
    assert capture_lines(capsys.readouterr().out) == []


def test_rate_1_writes_one_line_per_row_up_to_max_rows(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="5"))
    context = FakeLambdaContext()
    answer = handler_module.handler(batch(3), context)
    lines = capture_lines(capsys.readouterr().out)
    assert [line["row"] for line in lines] == [0, 1, 2]
    for line, predicted, record in zip(
        lines, answer["predictions"], batch(3)["instances"], strict=True
    ):
        assert line["request_id"] == context.aws_request_id
        assert (line["model_name"], line["model_version"], line["lambda_version"]) == (
            "churn",
            "v1",
            "7",
        )
        assert line["features"] == {name: record[name] for name in FEATURES}
        assert line["probability"] == predicted["probability"]
        assert line["prediction"] == predicted["prediction"]
        assert (line["rows_in_request"], line["rows_captured"]) == (3, 3)
    run([batch(40)])
    lines = capture_lines(capsys.readouterr().out)
    assert [line["row"] for line in lines] == [0, 8, 16, 24, 32]
    assert {line["rows_in_request"] for line in lines} == {40}


def test_sampling_follows_the_request_id(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="0.5"))
    contexts = [FakeLambdaContext(aws_request_id=f"req-{i}") for i in range(40)]
    for context in contexts:
        handler_module.handler(load_event("direct_single.json"), context)
    captured = {line["request_id"] for line in capture_lines(capsys.readouterr().out)}
    expected = {c.aws_request_id for c in contexts if capture.is_sampled(c.aws_request_id, 0.5)}
    assert captured == expected
    assert 0 < len(captured) < 40


def test_warm_ups_rejections_and_failures_capture_nothing(
    capture_all: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    responses = run([{"_warmup": True}, {"tenure_months": 3.5}, {"instances": []}])
    state = handler_module.current_state()
    assert isinstance(state, handler_module.Ready)
    # A runtime answering a non-probability is a bug: a 500, after the model ran.
    model = types.SimpleNamespace(
        model_name="churn",
        model_version="v1",
        outputs=lambda X, unknown=None: np.full(len(X), 1.5),
        task="binary",
        classes=(0, 1),
    )
    loaded = model_loader.LoadedModel(**{**state.loaded.__dict__, "model": model})
    monkeypatch.setattr(handler_module, "_state", handler_module.Ready(state.settings, loaded))
    responses += run([load_event("direct_single.json")])
    assert [r["statusCode"] for r in responses] == [200, 400, 400, 500]
    assert capture_lines(capsys.readouterr().out) == []


def test_only_capture_lines_match_the_subscription_filter(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern = cloudwatch_filter.parse(CAPTURE_FILTER_PATTERN)
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="1000"))
    run([load_event("direct_single.json"), batch(1000), {"tenure_months": 3.5}, {"_warmup": True}])
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", MODEL_SHA256="0" * 64))
    run([load_event("direct_single.json")])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    matched = [line for line in lines if pattern.matches(line)]
    assert len(matched) == 1 + 1000
    assert all(json.loads(line).get("capture") == 1 for line in matched)
    others = [line for line in lines if not pattern.matches(line)]
    # Every other kind of line the handler writes went by, and none matched.
    assert {"prediction", "request rejected", "warm-up", "model loaded", "model unavailable"} <= {
        line["message"] for line in log_lines("\n".join(others))
    }
    assert any('"_aws"' in line for line in others)
    assert max(len(line.encode()) for line in lines) < capture.MAX_RECORD_BYTES


def test_capture_time_is_not_in_the_reported_latency(
    capture_all: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_records = capture.records

    def slow_records(**arguments: Any) -> list[dict[str, Any]]:
        time.sleep(0.3)
        return real_records(**arguments)

    monkeypatch.setattr(capture, "records", slow_records)
    run([load_event("direct_single.json")])
    out = capsys.readouterr().out
    [line] = log_lines(out, "prediction")
    assert len(capture_lines(out)) == 1
    assert line["latency_ms"] < 300


def test_a_capture_bug_keeps_the_answer_and_logs_the_failure(
    capture_all: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    def broken(**arguments: Any) -> list[dict[str, Any]]:
        raise ValueError("capture bug")

    monkeypatch.setattr(capture, "records", broken)
    context = FakeLambdaContext()
    [response] = [handler_module.handler(load_event("direct_single.json"), context)]
    assert response["statusCode"] == 200 and "probability" in response
    out = capsys.readouterr().out
    [failed] = log_lines(out, "capture failed")
    assert failed["level"] == "ERROR" and failed["request_id"] == context.aws_request_id
    assert "ValueError: capture bug" in failed["exception"]
    assert len(log_lines(out, "prediction")) == 1 and capture_lines(out) == []

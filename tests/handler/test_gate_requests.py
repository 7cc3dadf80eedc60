"""The traffic gate's requests (``serving.reserved.GATE_KEY``): answered as any request,
kept out of prediction logs, metrics and capture, and accepted only on a direct invocation.

The warmer's pings are the other traffic the function sends itself; test_handler.py and
test_capture_in_handler.py hold that they write no prediction line, metric or capture.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import Any

import pytest

from inference import handler as handler_module
from inference import model_loader
from inference.events import Shape, detect_shape, is_gate_request
from serving.reserved import GATE_KEY, RESERVED_FEATURE_NAMES
from tests.handler.conftest import (
    FakeLambdaContext,
    capture_lines,
    emf_lines,
    http_body,
    json_lines,
    load_event,
    local_env,
    log_lines,
    valid_record,
)

Configure = Callable[[dict[str, str]], Any]

# What a "gate request" line may hold: who, when, how long, how many rows; never a value.
GATE_LINE_FIELDS = {
    "timestamp", "level", "message", "request_id", "event_shape", "status", "model_name",
    "model_version", "lambda_version", "latency_ms", "predict_ms", "rows",
}  # fmt: skip


def records(rows: int) -> list[dict[str, Any]]:
    return [{**valid_record(), "tenure_months": (7 * i) % 72} for i in range(rows)]


FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference"
# The traffic gate invokes a published version by its qualified ARN; callers, the alias.
VERSION_ARN = f"{FUNCTION}:7"


def call(event: Any, request_id: str, invoked: str = VERSION_ARN) -> dict[str, Any]:
    context = FakeLambdaContext(aws_request_id=request_id, invoked_function_arn=invoked)
    return handler_module.handler(event, context)


def without_request_id(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "request_id"}


@pytest.fixture
def capture_all(fresh_environment: Configure) -> None:
    """A warm environment serving v1 that captures every row of every request, as dev does."""
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="1000"))
    handler_module.handler({"_warmup": True}, FakeLambdaContext())


def test_the_mark_is_reserved_so_no_feature_can_be_named_by_it() -> None:
    assert GATE_KEY == "_gate"
    assert "traffic gate" in RESERVED_FEATURE_NAMES[GATE_KEY]


def test_a_marked_request_is_answered_as_any_other_and_leaves_no_trace(
    capture_all: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = records(25)
    capsys.readouterr()
    marked = call({"instances": rows, GATE_KEY: True}, "gate-1")
    out = capsys.readouterr().out
    ordinary = call({"instances": rows}, "caller-1")
    ordinary_out = capsys.readouterr().out

    assert marked["statusCode"] == 200 and marked["request_id"] == "gate-1"
    assert len(marked["predictions"]) == 25
    assert without_request_id(marked) == without_request_id(ordinary)
    # Nothing a dashboard, alarm, comparison or monitor reads ...
    assert capture_lines(out) == []
    assert emf_lines(out) == []
    assert log_lines(out, "prediction") == []
    # ... and one line saying the gate asked, with no value of the request or the answer.
    [line] = json_lines(out)
    assert line["message"] == "gate request" and line["level"] == "INFO"
    assert set(line) <= GATE_LINE_FIELDS
    assert (line["request_id"], line["rows"], line["status"]) == ("gate-1", 25, 200)
    assert (line["event_shape"], line["model_version"]) == ("direct", "v1")
    # The same rows unmarked are counted and captured: the environment does capture.
    assert len(capture_lines(ordinary_out)) == 25
    assert len(log_lines(ordinary_out, "prediction")) == 1
    assert {m for d in emf_lines(ordinary_out) for m in d} >= {"Predictions", "InferenceLatency"}


def test_a_marked_single_record_is_answered_as_the_record(
    capture_all: None, capsys: pytest.CaptureFixture[str]
) -> None:
    marked = call({**valid_record(), GATE_KEY: True}, "gate-2")
    ordinary = call(valid_record(), "caller-2")
    assert marked["statusCode"] == 200
    assert without_request_id(marked) == without_request_id(ordinary)
    assert "prediction" in marked and "predictions" not in marked
    captured = capture_lines(capsys.readouterr().out)
    assert [line["request_id"] for line in captured] == ["caller-2"]


def test_a_marked_request_is_validated_as_any_other(
    capture_all: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = records(3)
    bad[1]["tenure_months"] = -5
    marked = call({"instances": bad, GATE_KEY: True}, "gate-3")
    ordinary = call({"instances": bad}, "caller-3")
    assert marked["statusCode"] == 400
    assert marked["error"] == ordinary["error"]
    out = capsys.readouterr().out
    assert capture_lines(out) == [] and emf_lines(out) == []
    assert [line["request_id"] for line in log_lines(out, "request rejected")] == [
        "gate-3",
        "caller-3",
    ]


def test_a_cold_start_answered_to_the_gate_is_not_reported(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    # The gate is the first caller of a new version: its cold start is not a caller's.
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1"))
    capsys.readouterr()
    assert call({"instances": records(2), GATE_KEY: True}, "gate-4")["statusCode"] == 200
    call(valid_record(), "caller-4")
    out = capsys.readouterr().out
    assert not [d for d in emf_lines(out) if "ColdStart" in d]
    [prediction] = log_lines(out, "prediction")
    assert prediction["cold_start"] is False


def test_a_marked_request_that_fails_still_counts_as_a_server_error(
    capture_all: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A version that fails the gate is broken: the errors alarm should see it.
    state = handler_module.current_state()
    assert isinstance(state, handler_module.Ready)

    def broken(X: Any, unknown: Any = None) -> Any:
        raise RuntimeError("model bug")

    model = types.SimpleNamespace(task="binary", classes=(0, 1), outputs=broken)
    loaded = model_loader.LoadedModel(**{**state.loaded.__dict__, "model": model})
    monkeypatch.setattr(handler_module, "_state", handler_module.Ready(state.settings, loaded))
    capsys.readouterr()
    response = call({"instances": records(2), GATE_KEY: True}, "gate-7")
    assert response["statusCode"] == 500
    out = capsys.readouterr().out
    [document] = emf_lines(out)
    assert document["ServerErrors"] == 1 and document["request_id"] == "gate-7"
    assert capture_lines(out) == [] and log_lines(out, "gate request") == []
    [failed] = log_lines(out, "request failed")
    assert failed["request_id"] == "gate-7" and "RuntimeError: model bug" in failed["exception"]


@pytest.mark.parametrize(
    ("mark", "shown"),
    [(False, "false"), ("true", '"true"'), (1, "1"), (None, "null"), ({"a": 1}, '{"a": 1}')],
)
def test_a_mark_other_than_true_is_a_400_naming_it(
    capture_all: None, capsys: pytest.CaptureFixture[str], mark: Any, shown: str
) -> None:
    response = call({"instances": records(2), GATE_KEY: mark}, "gate-5")
    assert response["statusCode"] == 400
    assert response["error"]["code"] == "invalid_request"
    assert response["error"]["message"] == (
        f"'{GATE_KEY}' must be true (the traffic gate's mark), got {shown}"
    )
    out = capsys.readouterr().out
    assert capture_lines(out) == [] and log_lines(out, "prediction") == []


@pytest.mark.parametrize("event_file", ["function_url_v2.json", "rest_api_v1.json"])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("mark", [True, False])
def test_the_mark_over_http_is_a_400_naming_it(
    capture_all: None,
    capsys: pytest.CaptureFixture[str],
    event_file: str,
    batch: bool,
    mark: bool,
) -> None:
    # An HTTP caller must not be able to hide its traffic from metrics and capture.
    event = load_event(event_file)
    body = {"instances": records(2)} if batch else valid_record()
    event["body"] = json.dumps({**body, GATE_KEY: mark})
    event["isBase64Encoded"] = False
    response = call(event, "http-1")
    assert response["statusCode"] == 400
    error = http_body(response)["error"]
    assert error["code"] == "invalid_request"
    over = "a Function URL or HTTP API" if event_file == "function_url_v2.json" else "API Gateway"
    assert error["message"] == (
        f"'{GATE_KEY}' is reserved for the traffic gate's direct invocations and is not "
        f"accepted over {over}: remove it from the request body"
    )
    out = capsys.readouterr().out
    assert log_lines(out, "gate request") == []
    [rejected] = log_lines(out, "request rejected")
    assert rejected["status"] == 400
    # The same body without the mark is answered over the same route.
    event["body"] = json.dumps(body)
    assert call(event, "http-2")["statusCode"] == 200


@pytest.mark.parametrize(
    ("invoked", "named"),
    [
        (f"{FUNCTION}:production", "the qualifier 'production'"),
        (f"{FUNCTION}:$LATEST", "the qualifier '$LATEST'"),
        (FUNCTION, "no qualifier"),
        (f"{FUNCTION}:\u0667", "the qualifier '\u0667'"),
    ],
)
def test_the_mark_on_an_invocation_of_the_alias_or_latest_is_a_400_naming_it(
    capture_all: None, capsys: pytest.CaptureFixture[str], invoked: str, named: str
) -> None:
    # Callers hold lambda:InvokeFunction on the alias (a Function URL needs it too): only
    # the gate's grant on function:NAME:VERSION can invoke a version by its number.
    response = call({"instances": records(2), GATE_KEY: True}, "alias-1", invoked)
    assert response["statusCode"] == 400
    assert response["error"]["message"] == (
        f"'{GATE_KEY}' is accepted only on an invocation of a published version by its "
        "qualified ARN (function:NAME:VERSION), as the traffic gate invokes; this "
        f"invocation had {named}: remove '{GATE_KEY}' from the request"
    )
    out = capsys.readouterr().out
    assert log_lines(out, "gate request") == [] and log_lines(out, "prediction") == []
    # The same request unmarked, on the same alias, is answered and counted.
    assert call({"instances": records(2)}, "alias-2", invoked)["statusCode"] == 200
    assert len(capture_lines(capsys.readouterr().out)) == 2


@pytest.mark.parametrize(
    ("invoked", "accepted"),
    [
        ("churn-inference:12", True),
        ("123456789012:function:churn-inference:12", True),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:churn-inference:3", True),
        ("churn-inference:production", False),
        ("123456789012:function:churn-inference", False),
        ("123456789012:function:churn-inference:live", False),
        ("arn:aws:lambda:eu-west-1:123456789012:function:123", False),  # a name, no version
        ("churn-inference", False),
    ],
)
def test_the_invoked_version_is_read_from_full_and_partial_arns(
    capture_all: None, invoked: str, accepted: bool
) -> None:
    response = call({"instances": records(1), GATE_KEY: True}, "arn-1", invoked)
    assert response["statusCode"] == (200 if accepted else 400), response


def test_without_a_context_the_mark_is_refused(capture_all: None) -> None:
    response = handler_module.handler({"instances": records(1), GATE_KEY: True}, None)
    assert response["statusCode"] == 400
    assert "this invocation had no qualifier" in response["error"]["message"]


def test_only_a_direct_invocation_is_a_gate_request() -> None:
    direct = {"instances": records(1), GATE_KEY: True}
    assert is_gate_request(Shape.DIRECT, direct)
    assert not is_gate_request(Shape.DIRECT, {"instances": records(1)})
    assert not is_gate_request(Shape.DIRECT, [direct])
    http = load_event("function_url_v2.json")
    http[GATE_KEY] = True  # even on the event itself, outside the body
    http["body"] = json.dumps(direct)
    assert not is_gate_request(detect_shape(http), http)


def test_a_warm_up_ping_carrying_the_mark_is_refused(
    capture_all: None, capsys: pytest.CaptureFixture[str]
) -> None:
    response = call({"_warmup": True, GATE_KEY: True}, "gate-6")
    assert response["statusCode"] == 400
    assert response["error"]["message"].startswith("'_warmup' is allowed only alone")

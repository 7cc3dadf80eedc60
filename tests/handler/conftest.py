"""Shared set-up for the handler tests: ``lambda_src`` on the path, the v1 artifact, events."""

from __future__ import annotations

import copy
import importlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_SRC = ROOT / "lambda_src"
EVENTS = ROOT / "tests" / "events"
ARTIFACTS = ROOT / "model_artifacts" / "churn"


from inference import handler as handler_module  # noqa: E402
from inference import state as state_module  # noqa: E402
from inference.validation import valid_batch, validate_record  # noqa: E402


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object the handler reads (and a few it may)."""

    function_name: str = "churn-inference"
    function_version: str = "7"
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference:live"
    )
    memory_limit_in_mb: int = 2048
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/churn-inference"
    log_stream_name: str = "2026/11/25/[7]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def manifest(version: str = "v1") -> dict[str, Any]:
    result: dict[str, Any] = json.loads((ARTIFACTS / version / "manifest.json").read_text())
    return result


def local_env(version: str = "v1", **overrides: str) -> dict[str, str]:
    """The environment the stack would set, with the artifact read from model_artifacts/."""
    env = {
        "MODEL_NAME": "churn",
        "MODEL_VERSION": version,
        "MODEL_PATH": str(ARTIFACTS / version / "model.joblib"),
        # The joblib file: most handler tests read the pipeline with joblib themselves.
        "MODEL_SHA256": manifest(version)["artifacts"]["sklearn-joblib"]["sha256"],
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


def load_event(name: str) -> Any:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def valid_record() -> dict[str, Any]:
    record: dict[str, Any] = load_event("direct_single.json")
    return record


@pytest.fixture(autouse=True)
def retry_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No backoff between failed loads: most tests check that the *next* call retries.

    tests/handler/test_backoff.py checks the backoff itself, with its own clock.
    """
    monkeypatch.setattr(state_module, "BACKOFF_BASE_S", 0.0)


class Deserialized(list[int]):
    """The size of each artifact handed to a runtime's ``load``; with ``failure`` set, each
    load raises it (after being counted) instead of loading."""

    failure: Exception | None = None


@pytest.fixture
def deserialized(monkeypatch: pytest.MonkeyPatch) -> Deserialized:
    """Both runtimes' ``load``, spied: the real load runs unless a test sets ``failure``."""
    seen = Deserialized()
    for runtime in ("sklearn", "compiled"):
        module = importlib.import_module(f"inference.{runtime}_model")
        real = module.load

        def spy(data: bytes, load: Callable[[bytes], Any] = real) -> Any:
            seen.append(len(data))
            if seen.failure is not None:
                raise seen.failure
            return load(data)

        monkeypatch.setattr(module, "load", spy)
    return seen


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """Where a test puts the artifact its MODEL_PATH names: nothing there until it writes one."""
    return tmp_path / "model.joblib"


@pytest.fixture(scope="session")
def ready_v1() -> handler_module.State:
    state = handler_module.init_state(local_env("v1"))
    assert isinstance(state, handler_module.Ready), state
    return state


@pytest.fixture
def serving(
    ready_v1: handler_module.State, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., dict[str, Any]]]:
    """The handler with v1 loaded in a warm environment; call it like Lambda does."""
    monkeypatch.setattr(handler_module, "_state", ready_v1)
    monkeypatch.setattr(handler_module, "_env", local_env("v1"))
    monkeypatch.setattr(handler_module, "_cold", False)

    def invoke(event: Any, context: Any = None) -> dict[str, Any]:
        return handler_module.handler(event, context or FakeLambdaContext())

    yield invoke


@pytest.fixture
def fresh_environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Any]:
    """Run init as a new execution environment with ``env``; restored after the test."""
    monkeypatch.setattr(handler_module, "_state", handler_module._state)
    monkeypatch.setattr(handler_module, "_env", handler_module._env)
    monkeypatch.setattr(handler_module, "_cold", handler_module._cold)
    return handler_module.configure


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def log_lines(text: str, message: str | None = None) -> list[dict[str, Any]]:
    """The ordinary log lines: neither EMF documents nor capture records."""
    lines = [line for line in json_lines(text) if "_aws" not in line and "capture" not in line]
    return [line for line in lines if message is None or line.get("message") == message]


def capture_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if "capture" in line]


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if "_aws" in line]


def http_body(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["content-type"] == "application/json"
    body: dict[str, Any] = json.loads(response["body"])
    return body


GENERIC_503 = "the model is not available; retry later"


def unavailable_reason(response: dict[str, Any], out: str) -> str:
    """Check that a 503 tells the caller nothing internal; return the reason it logged."""
    assert response["statusCode"] == 503, response
    body = http_body(response) if "headers" in response else response
    assert body["error"] == {"code": "model_unavailable", "message": GENERIC_503}, body
    assert body["retry_after_seconds"] >= 1
    if "headers" in response:
        assert response["headers"]["retry-after"] == str(body["retry_after_seconds"])
    reasons = [line["reason"] for line in log_lines(out, "model unavailable") if "reason" in line]
    assert reasons, "a 503 without a logged reason"
    reason: str = reasons[-1]
    text = json.dumps(response)
    # The reason names buckets, keys, paths and checksums: none of it reaches the caller.
    assert reason not in text
    return reason


def assert_fast_path_agrees(records: list[Any], schema: Any) -> None:
    """The whole-array check of a batch accepts it exactly when record-by-record validation
    finds no problem, and then gives the same matrix."""
    slow_rows, slow_problems = [], []
    unknown: dict[tuple[int, int], Any] = {}
    for index, record in enumerate(records):
        row, problems = validate_record(record, schema, row=index, unknown=unknown)
        slow_rows.append(row)
        slow_problems += problems
    fast = valid_batch(records, schema)
    if slow_problems:
        assert fast is None
    else:
        assert fast is not None
        # A null is NaN on both paths, a passed unknown UNKNOWN_CODE with its value kept.
        assert np.array_equal(fast[0], np.array(slow_rows, dtype=np.float64), equal_nan=True)
        assert fast[1] == unknown
        assert all(type(fast[1][key]) is type(value) for key, value in unknown.items())

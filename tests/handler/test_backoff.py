"""After a failed load: back off between attempts, never retry pinned bytes that failed,
and import quietly when nothing is configured (``inference.state``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inference import handler as handler_module
from inference import model_loader
from inference import state as state_module
from tests.handler.conftest import (
    ARTIFACTS,
    LAMBDA_SRC,
    Deserialized,
    FakeLambdaContext,
    emf_lines,
    load_event,
    local_env,
    log_lines,
    unavailable_reason,
    valid_record,
)

Configure = Callable[[dict[str, str]], Any]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(state_module, "clock", fake)
    monkeypatch.setattr(state_module, "BACKOFF_BASE_S", 1.0)
    monkeypatch.setattr(state_module, "BACKOFF_CAP_S", 10.0)
    # The top of each jitter range: the longest wait the policy allows.
    monkeypatch.setattr(state_module, "jitter", lambda low, high: high)
    return fake


def test_failed_loads_back_off_exponentially_to_a_cap_and_recover_after(
    fresh_environment: Configure,
    clock: Clock,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fresh_environment(local_env("v1", MODEL_PATH=str(model_file)))  # failure 1: wait 1 s
    waits = []
    for _ in range(6):
        # Requests inside the wait are answered at once, without touching the artifact.
        response = handler_module.handler(valid_record(), FakeLambdaContext())
        state = handler_module.current_state()
        assert isinstance(state, handler_module.Unavailable)
        waits.append(state.retry_at - clock.now)
        assert response["retry_after_seconds"] == max(1, round(waits[-1]))
        clock.now = state.retry_at  # due: the next request tries again
    # Each failure doubles the wait, up to the cap; the request at each due time retried.
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    out = capsys.readouterr().out
    attempts = [line["attempt"] for line in log_lines(out, "model load attempt")]
    assert attempts == [2, 3, 4, 5, 6]
    assert len([d for d in emf_lines(out) if "ModelLoadErrors" in d]) == 6
    model_file.write_bytes((ARTIFACTS / "v1" / "model.joblib").read_bytes())
    assert handler_module.handler(valid_record(), FakeLambdaContext())["statusCode"] == 200


def test_requests_inside_the_backoff_do_not_retry(
    fresh_environment: Configure,
    clock: Clock,
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh_environment(local_env("v1", MODEL_PATH=str(model_file)))
    reads: list[object] = []
    real_fetch = model_loader.fetch_bytes
    monkeypatch.setattr(
        model_loader, "fetch_bytes", lambda *a, **k: reads.append(a) or real_fetch(*a, **k)
    )
    for _ in range(20):
        handler_module.handler(valid_record(), FakeLambdaContext())
    assert reads == []
    clock.now += 1.0
    handler_module.handler(valid_record(), FakeLambdaContext())
    assert len(reads) == 1


def test_jitter_spreads_the_wait_over_its_upper_half(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "BACKOFF_BASE_S", 1.0)
    waits = {round(state_module.backoff_s(3), 6) for _ in range(200)}
    ceiling = min(state_module.BACKOFF_CAP_S, state_module.BACKOFF_BASE_S * 4)
    assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
    assert len(waits) > 100


def test_pinned_bytes_that_fail_to_load_are_not_loaded_again(
    fresh_environment: Configure, deserialized: Deserialized, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pickle that fails after running its code would run it again on every request.
    deserialized.failure = ValueError("ran the artifact's code, then failed")
    fresh_environment(local_env("v1"))
    for _ in range(5):
        response = handler_module.handler(valid_record(), FakeLambdaContext())
        assert "ran the artifact's code" in unavailable_reason(response, capsys.readouterr().out)
    assert len(deserialized) == 1
    state = handler_module.current_state()
    assert isinstance(state, handler_module.Unavailable) and state.final


def test_invalid_configuration_is_not_retried_on_every_request(
    fresh_environment: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[int] = []
    real = state_module.settings_from_env
    monkeypatch.setattr(
        state_module, "settings_from_env", lambda env: parsed.append(1) or real(env)
    )
    fresh_environment(local_env("v1", MODEL_RUNTIME="onnx"))
    for _ in range(3):
        assert handler_module.handler(valid_record(), FakeLambdaContext())["statusCode"] == 503
    assert parsed == [1]


def test_a_503_tells_the_caller_when_to_retry_and_nothing_internal(
    fresh_environment: Configure, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", MODEL_SHA256="0" * 64))
    context = FakeLambdaContext()
    response = handler_module.handler(load_event("function_url_v2.json"), context)
    reason = unavailable_reason(response, capsys.readouterr().out)
    assert "checksum mismatch" in reason
    body = response["body"]
    for internal in (str(ARTIFACTS), "0" * 64, "sha256", "MODEL_"):
        assert internal not in body
    assert context.aws_request_id in body
    # Bytes that fail the pin may be replaced by the right ones: retried after the backoff.
    assert response["headers"]["retry-after"] == "1"


def test_importing_the_handler_with_nothing_configured_logs_nothing() -> None:
    # Test runs and tools import the module before configure(): no "model unavailable"
    # at ERROR in every run. On Lambda (AWS_LAMBDA_FUNCTION_NAME set) it is reported.
    code = "import inference.handler as h; print(type(h.current_state()).__name__)"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LAMBDA_SRC)}
    quiet = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert quiet.stdout == "Unavailable\n"
    on_lambda = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "AWS_LAMBDA_FUNCTION_NAME": "churn"},
        capture_output=True,
        text=True,
        check=True,
    )
    [line] = [text for text in on_lambda.stdout.splitlines() if text.startswith("{")]
    assert '"level":"ERROR"' in line and "no model source" in line

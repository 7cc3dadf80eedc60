"""The model in memory is replaced whole or not at all.

A state is one frozen object (settings and the model loaded under them); a request
reads it once and finishes on it. Re-running init (``configure``, as a new execution
environment would) either serves the new model whole or answers 503 naming the new
configuration: never the old model under the new label, nor a mix of one model's
schema and another's trees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from inference import handler as handler_module
from inference import model_loader
from inference.validation import schema_from_artifact
from tests.handler.conftest import ARTIFACTS, FakeLambdaContext, valid_record
from tests.reliability.conftest import RUNTIME_FILES, runtime_env

Env = dict[str, str]


@pytest.fixture(params=sorted(RUNTIME_FILES))
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("_state", "_env", "_cold"):
        monkeypatch.setattr(handler_module, name, getattr(handler_module, name))
    return str(request.param)


def quietly(function: Callable[..., Any], *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def invoke() -> dict[str, Any]:
    response: dict[str, Any] = quietly(handler_module.handler, valid_record(), FakeLambdaContext())
    return response


def probability(runtime: str, version: str) -> float:
    state = quietly(handler_module.init_state, runtime_env(runtime, version))
    assert isinstance(state, handler_module.Ready)
    row = [[float(valid_record()[f.name]) for f in state.loaded.schema]]
    return float(state.loaded.model.outputs(np.array(row, dtype=np.float64))[0])


def assert_whole(state: handler_module.State, runtime: str, version: str) -> None:
    """Settings, model, schema and bytes of ``state`` all belong to ``version``."""
    assert isinstance(state, handler_module.Ready), state
    loaded = state.loaded
    assert state.settings.model_version == loaded.model_version == version
    assert state.settings.sha256 == loaded.sha256
    artifact = ARTIFACTS / version / RUNTIME_FILES[runtime]
    assert loaded.sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert loaded.schema == schema_from_artifact(loaded.model.features)


@dataclasses.dataclass(frozen=True)
class Paused:
    """A model whose outputs() waits until released: a request caught mid-flight."""

    inner: Any
    entered: threading.Event
    release: threading.Event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def outputs(self, X: NDArray[np.float64], unknown: Any = None) -> NDArray[np.float64]:
        self.entered.set()
        assert self.release.wait(30), "test never released the paused request"
        result: NDArray[np.float64] = self.inner.outputs(X, unknown)
        return result


@pytest.fixture
def in_flight(runtime: str) -> Iterator[Callable[[], dict[str, Any]]]:
    """v1 serving one request that is paused inside predict; call the result to finish it."""
    state = quietly(handler_module.configure, runtime_env(runtime, "v1"))
    assert isinstance(state, handler_module.Ready)
    entered, release = threading.Event(), threading.Event()
    paused = dataclasses.replace(state.loaded, model=Paused(state.loaded.model, entered, release))
    handler_module._state = dataclasses.replace(state, loaded=paused)
    answers: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: answers.append(invoke()), daemon=True)
    thread.start()
    assert entered.wait(30), "the request never reached the model"

    def finish() -> dict[str, Any]:
        release.set()
        thread.join(30)
        assert not thread.is_alive()
        return answers[0]

    yield finish
    release.set()


def test_a_reload_mid_flight_neither_disturbs_the_request_nor_mixes_models(
    runtime: str, in_flight: Callable[[], dict[str, Any]]
) -> None:
    new_state = quietly(handler_module.configure, runtime_env(runtime, "v2"))
    assert_whole(new_state, runtime, "v2")
    answered = in_flight()
    assert answered["statusCode"] == 200
    assert (answered["model_version"], answered["probability"]) == (
        "v1",
        probability(runtime, "v1"),
    )
    following = invoke()
    assert (following["model_version"], following["probability"]) == (
        "v2",
        probability(runtime, "v2"),
    )


def test_a_failed_reload_mid_flight_finishes_the_request_then_answers_503(
    runtime: str, in_flight: Callable[[], dict[str, Any]]
) -> None:
    failed = quietly(handler_module.configure, runtime_env(runtime, "v2", MODEL_SHA256="0" * 64))
    assert isinstance(failed, handler_module.Unavailable)
    answered = in_flight()
    assert (answered["statusCode"], answered["model_version"]) == (200, "v1")
    assert answered["probability"] == probability(runtime, "v1")
    following = invoke()
    assert (following["statusCode"], following["model_version"]) == (503, "v2")
    assert "probability" not in following


def _missing_file(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env["MODEL_PATH"] = str(tmp_path / "absent")


def _wrong_pin(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env["MODEL_SHA256"] = "0" * 64


def _corrupt_but_pinned(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bytes that pass the (re-pinned) checksum but do not deserialize.
    data = Path(env["MODEL_PATH"]).read_bytes()[:1000]
    path = tmp_path / "corrupt"
    path.write_bytes(data)
    env.update(MODEL_PATH=str(path), MODEL_SHA256=hashlib.sha256(data).hexdigest())


def _bad_schema(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(features: object) -> Any:
        raise ValueError("artifact feature schema entry 0 has no name")

    monkeypatch.setattr(model_loader, "schema_from_artifact", refuse)


def _wrong_label(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env["MODEL_VERSION"] = "v3"


def _unexpected_error(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> Any:
        raise MemoryError

    monkeypatch.setattr(model_loader, "verify_sha256", explode)


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (_missing_file, "cannot read MODEL_PATH"),
        (_wrong_pin, "checksum mismatch"),
        (_corrupt_but_pinned, "cannot load"),
        (_bad_schema, "has no name"),
        (_wrong_label, "MODEL_VERSION is 'v3'"),
        (_unexpected_error, "model load failed: MemoryError"),
    ],
    ids=["fetch", "checksum", "deserialize", "schema", "identity", "unexpected"],
)
def test_a_reload_that_fails_at_any_stage_leaves_no_half_state(
    runtime: str,
    break_it: Callable[[Env, Path, pytest.MonkeyPatch], None],
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = quietly(handler_module.configure, runtime_env(runtime, "v1"))
    assert_whole(old, runtime, "v1")
    env = runtime_env(runtime, "v2")
    with monkeypatch.context() as fault:
        break_it(env, tmp_path, fault)
        failed = quietly(handler_module.configure, env)
        assert isinstance(failed, handler_module.Unavailable)
        assert reason in failed.reason
        for _ in range(2):  # the retry on each invocation fails the same way
            response = invoke()
            assert (response["statusCode"], response["model_version"]) == (
                503,
                env.get("MODEL_VERSION"),
            )
            assert "probability" not in response
    assert_whole(old, runtime, "v1")  # the old state object was never touched
    healed = quietly(handler_module.configure, runtime_env(runtime, "v2"))
    assert_whole(healed, runtime, "v2")
    assert invoke()["probability"] == probability(runtime, "v2")


class Escape(BaseException):
    """Something init does not catch: a signal, an interpreter shutdown."""


def test_an_init_that_escapes_leaves_env_and_state_paired_as_they_were(
    runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_env = runtime_env(runtime, "v1")
    old_state = quietly(handler_module.configure, old_env)

    def escape(data: bytes) -> Any:
        raise Escape

    monkeypatch.setattr(model_loader, "runtime_loader", lambda runtime: escape)
    with pytest.raises(Escape):
        quietly(handler_module.configure, runtime_env(runtime, "v2"))
    assert handler_module.current_state() is old_state
    assert handler_module._env == old_env

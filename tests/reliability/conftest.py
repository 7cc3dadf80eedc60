"""Hypothesis profiles, the handler served with each runtime, and a count of fuzzed inputs.

``HYPOTHESIS_PROFILE=ci`` (the default, what ``make test`` runs) keeps the property tests
to seconds and derandomized, so a CI failure replays exactly; ``HYPOTHESIS_PROFILE=long``
(``make fuzz``) tries many more, random inputs. Either way the terminal summary says how
many inputs went through the handler.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from inference import handler as handler_module
from tests.handler.conftest import (
    ARTIFACTS,
    FakeLambdaContext,
    deserialized,
    manifest,
    retry_at_once,
    valid_record,
)
from tests.reliability.strategies import event_for

# retry_at_once: autouse here too, no backoff unless a test sets one.
__all__ = ["deserialized", "retry_at_once"]

_SLOW_INPUTS_ARE_THE_POINT = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SLOW_INPUTS_ARE_THE_POINT,
)
settings.register_profile(
    "long",
    max_examples=2500,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_SLOW_INPUTS_ARE_THE_POINT,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

# What each runtime deploys: the sklearn runtime's pickle-free skops file.
RUNTIME_FILES = {"sklearn": "model.skops", "compiled": "model.compiled.npz"}
# Small limits make oversized batches and bodies cheap to generate; the checks are the
# same code whatever the limit (a default-limit case is tested by example).
MAX_BATCH_SIZE = 16
MAX_BODY_BYTES = 16_384

_inputs_tried = {"count": 0}
# Examples per fuzzer of the other entry points (schema files, CSVs, exports, local server).
_fuzzed: dict[str, int] = {}


def count_input() -> None:
    _inputs_tried["count"] += 1


def count_fuzzed(fuzzer: str) -> None:
    """One generated input fed to ``fuzzer`` (a name in the terminal summary)."""
    _fuzzed[fuzzer] = _fuzzed.get(fuzzer, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _inputs_tried["count"]:
        terminalreporter.write_sep(
            "-",
            f"fuzz: {_inputs_tried['count']:,} generated inputs went through the handler "
            f"(hypothesis profile {PROFILE!r})",
        )
    for fuzzer, count in sorted(_fuzzed.items()):
        terminalreporter.write_sep(
            "-",
            f"fuzz: {count:,} generated inputs fed to {fuzzer} (hypothesis profile {PROFILE!r})",
        )


def runtime_env(runtime: str, version: str = "v1", **overrides: str) -> dict[str, str]:
    file = RUNTIME_FILES[runtime]
    env = {
        "MODEL_NAME": "churn",
        "MODEL_VERSION": version,
        "MODEL_RUNTIME": runtime,
        "MODEL_PATH": str(ARTIFACTS / version / file),
        "MODEL_SHA256": manifest(version)["artifacts"][runtime]["sha256"],
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
        **overrides,
    }
    return {k: v for k, v in env.items() if v}


@dataclass(frozen=True)
class Served:
    """The handler in a warm environment with one runtime's model loaded."""

    runtime: str
    state: handler_module.Ready
    valid_probability: float

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints fixtures with each falsifying example; the model is noise there.
        printer.text(f"Served({self.runtime!r})")

    def invoke(self, event: Any) -> tuple[dict[str, Any], str]:
        """The handler's answer to ``event`` and what it logged."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            response = handler_module.handler(event, FakeLambdaContext())
        return response, out.getvalue()

    def probability(self, record: dict[str, Any]) -> float:
        """What the loaded model itself says for ``record`` (no handler in between)."""
        import numpy as np

        row = [[float(record[f.name]) for f in self.state.loaded.schema]]
        return float(self.state.loaded.model.outputs(np.array(row, dtype=np.float64))[0])


def valid_http_event(body: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = event_for("http-v2", body)
    return event


@contextlib.contextmanager
def serving(runtime: str, **limits: str) -> Iterator[Served]:
    """The handler warm with ``runtime``'s v1 and ``limits`` (MAX_BATCH_SIZE, ...)."""
    env = runtime_env(runtime, **limits)
    with contextlib.redirect_stdout(io.StringIO()):
        state = handler_module.init_state(env)
    assert isinstance(state, handler_module.Ready), state
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handler_module, "_state", state)
        patch.setattr(handler_module, "_env", env)
        patch.setattr(handler_module, "_cold", False)
        probe = Served(runtime, state, valid_probability=float("nan"))
        expected = probe.probability(valid_record())
        response, _ = probe.invoke(valid_http_event(valid_record()))
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"])["probability"] == expected
        yield Served(runtime, state, valid_probability=expected)


def served_by_each_runtime(name: str, *, max_batch_size: int, max_body_bytes: int) -> Any:
    """A module-scoped fixture ``name``: the handler warm with these limits, once per runtime."""

    @pytest.fixture(name=name, scope="module", params=sorted(RUNTIME_FILES))
    def each_runtime(request: pytest.FixtureRequest) -> Iterator[Served]:
        limits = {"MAX_BATCH_SIZE": str(max_batch_size), "MAX_BODY_BYTES": str(max_body_bytes)}
        with serving(request.param, **limits) as warm:
            yield warm

    return each_runtime


served = served_by_each_runtime(
    "served", max_batch_size=MAX_BATCH_SIZE, max_body_bytes=MAX_BODY_BYTES
)

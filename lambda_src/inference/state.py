"""The model in one execution environment: loaded, or unavailable and when to try again.

A state is one frozen object; the handler swaps it whole. The clocks that bound a load:

* init (module scope) runs in Lambda's init phase, limited to 10 s: the whole load, every
  attempt included, ends within ``INIT_LOAD_DEADLINE_S``;
* a reload after a failed load runs inside a request and shares the function timeout
  with it: it ends ``RELOAD_MARGIN_S`` before ``context.get_remaining_time_in_millis()``
  runs out (and within ``RELOAD_MAX_S``), so the 503 always arrives in time;
* between failed loads the environment backs off (exponential, capped, with jitter), so
  a broken artifact or a sick S3 is not hammered by every request, while a healthy S3
  is back within ``BACKOFF_CAP_S``. A load that failed on the pinned bytes themselves
  (they do not deserialize, or hold another model) is not tried again at all: it would
  fail the same way, after running the artifact's code again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from inference import logs, metrics
from inference.config import ConfigError, Settings, settings_from_env
from inference.limits import clip
from inference.model_loader import S3_RELOAD_ATTEMPTS, LoadedModel, ModelLoadError, load_model

INIT_LOAD_DEADLINE_S = 8.0
RELOAD_MAX_S = 8.0
RELOAD_MARGIN_S = 1.5
# With less time than this left in the request, a reload is not started.
RELOAD_MIN_S = 0.5
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 10.0
# A reason in a log line is cut here: it can quote S3 error text.
REASON_MAX_CHARS = 2048

# Monotonic clock and jitter source; tests replace them.
clock: Callable[[], float] = time.monotonic
jitter: Callable[[float, float], float] = random.uniform


@dataclass(frozen=True)
class Ready:
    settings: Settings
    loaded: LoadedModel


@dataclass(frozen=True)
class Unavailable:
    reason: str
    settings: Settings | None
    # Failed loads so far in this environment, and when (``clock()``) the next may start.
    failures: int = 0
    retry_at: float = 0.0
    # No further attempt in this environment (invalid settings, or the pinned bytes fail).
    final: bool = False

    def retry_after_s(self, now: float) -> float:
        """What a 503 tells the caller to wait."""
        if self.final:
            return BACKOFF_CAP_S
        return max(1.0, self.retry_at - now)


State = Ready | Unavailable


def backoff_s(failures: int) -> float:
    """The wait after the ``failures``-th failed load: capped exponential, jittered."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** max(0, failures - 1))
    # Half fixed, half random: environments that failed together do not retry together.
    return jitter(ceiling / 2, ceiling)


def init_state(
    env: Mapping[str, str],
    *,
    s3_max_attempts: int | None = None,
    deadline: float | None = None,
    failures: int = 0,
) -> State:
    """Read settings and load the model; never raises (a failure becomes ``Unavailable``).

    ``deadline`` (a ``clock()`` instant) bounds the load; default: ``INIT_LOAD_DEADLINE_S``
    from now. ``failures`` counts the failed loads before this one (for the backoff).
    """
    started = clock()
    end = started + INIT_LOAD_DEADLINE_S if deadline is None else deadline
    attempt = failures + 1
    try:
        settings = settings_from_env(env)
    except ConfigError as exc:
        reason = f"invalid configuration: {exc}"
        logs.error("model unavailable", reason=clip(reason, REASON_MAX_CHARS), attempt=attempt)
        return Unavailable(reason, None, attempt, final=True)
    if failures:
        logs.info(
            "model load attempt",
            attempt=attempt,
            source=str(settings.source),
            budget_s=round(end - started, 3),
        )
    try:
        loaded = load_model(settings, env=env, max_attempts=s3_max_attempts, deadline=end)
    except ModelLoadError as exc:
        return _load_failed(settings, str(exc), attempt, final=exc.deterministic)
    except Exception as exc:
        logs.exception("model load failed unexpectedly", source=str(settings.source))
        return _load_failed(settings, f"model load failed: {type(exc).__name__}", attempt)
    if not loaded.verified:
        logs.warning(
            "UNSAFE_ALLOW_UNVERIFIED_MODEL is set and MODEL_SHA256 is not: serving a local "
            "file without checksum verification",
            source=loaded.source,
            sha256=loaded.sha256,
        )
    logs.info(
        "model loaded",
        model_name=loaded.model_name,
        model_version=loaded.model_version,
        runtime=settings.runtime,
        source=loaded.source,
        sha256=loaded.sha256,
        size_bytes=loaded.size_bytes,
        load_ms=round(loaded.load_ms, 3),
        lambda_version=settings.lambda_version,
        attempt=attempt,
    )
    metrics.emit(
        settings.metrics_namespace,
        loaded.model_version,
        [metrics.Metric("ModelLoadTime", metrics.MILLISECONDS, loaded.load_ms)],
        properties={"lambda_version": settings.lambda_version, "runtime": settings.runtime},
    )
    return Ready(settings, loaded)


def _load_failed(settings: Settings, reason: str, attempt: int, *, final: bool = False) -> State:
    wait = backoff_s(attempt)
    logs.error(
        "model unavailable",
        reason=clip(reason, REASON_MAX_CHARS),
        source=str(settings.source),
        attempt=attempt,
        retry_in_s=None if final else round(wait, 3),
        final=final,
    )
    metrics.emit(
        settings.metrics_namespace,
        settings.model_version or "unknown",
        [metrics.Metric("ModelLoadErrors", metrics.COUNT, 1)],
        properties={"lambda_version": settings.lambda_version, "attempt": attempt},
    )
    return Unavailable(reason, settings, attempt, clock() + wait, final=final)


def reload_if_due(state: State, env: Mapping[str, str], *, remaining_ms: int | None) -> State:
    """On the request path: try the load again if the backoff allows and time is left."""
    if isinstance(state, Ready) or state.final:
        return state
    now = clock()
    if now < state.retry_at:
        return state
    budget = RELOAD_MAX_S
    if remaining_ms is not None:
        budget = min(budget, remaining_ms / 1000 - RELOAD_MARGIN_S)
    if budget < RELOAD_MIN_S:
        return state
    return init_state(
        env,
        s3_max_attempts=S3_RELOAD_ATTEMPTS,
        deadline=now + budget,
        failures=state.failures,
    )


def unconfigured(reason: str) -> Unavailable:
    """The state before any load was tried (tests and tools import the handler bare)."""
    return Unavailable(reason, None)

"""Lambda entry point: ``inference.handler.handler``.

Module scope loads the model once per execution environment, so provisioned concurrency
and warm-up pings pre-load it. A failed load is kept only as a reason for 503 answers:
the next invocation tries again, so a transient S3 fault heals without a redeploy.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference import logs, metrics, model_store
from inference.config import DEFAULT_METRICS_NAMESPACE, ConfigError, Settings, settings_from_env
from inference.errors import RequestError
from inference.events import Shape, detect_shape, http_request_id, is_warmup, read_payload
from inference.model_store import LoadedModel, ModelLoadError, load_model
from inference.responses import error_body, render
from inference.validation import parse_instances

THRESHOLD = 0.5


@dataclass(frozen=True)
class Ready:
    settings: Settings
    loaded: LoadedModel


@dataclass(frozen=True)
class Unavailable:
    reason: str
    settings: Settings | None


State = Ready | Unavailable


def init_state(env: Mapping[str, str], *, s3_max_attempts: int | None = None) -> State:
    """Read settings and load the model; never raises (a failure becomes ``Unavailable``).

    ``s3_max_attempts`` bounds the S3 requests (default: ``model_store.S3_MAX_ATTEMPTS``,
    for init); a reload on the request path passes ``model_store.S3_RELOAD_ATTEMPTS``.
    """
    try:
        settings = settings_from_env(env)
    except ConfigError as exc:
        reason = f"invalid configuration: {exc}"
        logs.error("model unavailable", reason=reason)
        return Unavailable(reason, None)
    try:
        loaded = load_model(settings, env=env, max_attempts=s3_max_attempts)
    except ModelLoadError as exc:
        return _load_failed(settings, str(exc))
    except Exception as exc:
        logs.exception("model load failed unexpectedly", source=str(settings.source))
        return _load_failed(settings, f"model load failed: {type(exc).__name__}")
    if not loaded.verified:
        logs.warning(
            "MODEL_SHA256 is not set: serving a local file without checksum verification",
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
    )
    metrics.emit(
        settings.metrics_namespace,
        loaded.model_version,
        [metrics.Metric("ModelLoadTime", metrics.MILLISECONDS, loaded.load_ms)],
        properties={"lambda_version": settings.lambda_version, "runtime": settings.runtime},
    )
    return Ready(settings, loaded)


def _load_failed(settings: Settings, reason: str) -> Unavailable:
    logs.error("model unavailable", reason=reason, source=str(settings.source))
    metrics.emit(
        settings.metrics_namespace,
        settings.model_version or "unknown",
        [metrics.Metric("ModelLoadErrors", metrics.COUNT, 1)],
        properties={"lambda_version": settings.lambda_version},
    )
    return Unavailable(reason, settings)


_env: Mapping[str, str] = os.environ
_state: State = init_state(_env)
_cold = True


def configure(env: Mapping[str, str] | None = None) -> State:
    """Re-run init as a new execution environment with ``env`` (default: ``os.environ``).

    For tests and ``tools.serve``; retries after a failed load also use this ``env``.
    The compiled runtime's S3 client reads region, endpoint and credentials from ``env``;
    the sklearn runtime's boto3 reads them from the process environment (``os.environ``).
    """
    global _env, _state, _cold
    new_env = dict(env) if env is not None else os.environ
    # Built whole before anything is swapped: an init that escapes (a BaseException)
    # leaves the environment and the model it was loaded from together, as they were.
    new_state = init_state(new_env)
    _env, _state, _cold = new_env, new_state, True
    return _state


def current_state() -> State:
    return _state


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _state, _cold
    started = time.perf_counter()
    cold, _cold = _cold, False
    shape = detect_shape(event)
    if isinstance(_state, Unavailable):
        # On the request path: one S3 attempt, so a 503 comes back well within the
        # function timeout; the next invocation tries again.
        _state = init_state(_env, s3_max_attempts=model_store.S3_RELOAD_ATTEMPTS)
    state = _state
    request_id = _request_id(shape, event, context)
    if is_warmup(shape, event):
        return _warmup(state, request_id)
    if isinstance(state, Unavailable):
        return _unavailable(shape, state, request_id, started)
    try:
        return _predict(shape, event, state, request_id, started, cold)
    except RequestError as exc:
        return _rejected(shape, state, request_id, started, exc)
    except Exception:
        # A bug: the caller learns only that it happened and where to look.
        logs.exception(
            "request failed",
            request_id=request_id,
            event_shape=shape.value,
            status=500,
            **_identity(state),
        )
        _server_error(state, request_id, 500)
        body = error_body("internal_error", f"internal error; request id {request_id}")
        return render(shape, 500, {**body, **_identity(state), "request_id": request_id})


def _predict(
    shape: Shape,
    event: Any,
    state: Ready,
    request_id: str,
    started: float,
    cold: bool,
) -> dict[str, Any]:
    settings, loaded = state.settings, state.loaded
    payload = read_payload(shape, event, max_body_bytes=settings.max_body_bytes)
    instances = parse_instances(payload, loaded.schema, max_batch_size=settings.max_batch_size)
    predict_started = time.perf_counter()
    probabilities = _probabilities(loaded, instances.X)
    predict_ms = (time.perf_counter() - predict_started) * 1000
    labels = [int(p >= THRESHOLD) for p in probabilities]
    identity = _identity(state)
    if instances.batch:
        body: dict[str, Any] = {
            "predictions": [
                {"prediction": label, "probability": p}
                for label, p in zip(labels, probabilities, strict=True)
            ],
        }
    else:
        body = {"prediction": labels[0], "probability": probabilities[0]}
    response = render(shape, 200, {**body, **identity, "request_id": request_id})
    latency_ms = (time.perf_counter() - started) * 1000
    logs.info(
        "prediction",
        request_id=request_id,
        event_shape=shape.value,
        status=200,
        **identity,
        latency_ms=round(latency_ms, 3),
        predict_ms=round(predict_ms, 3),
        rows=len(labels),
        probabilities=probabilities,
        predictions=labels,
        cold_start=cold and not settings.provisioned,
    )
    emitted = [
        metrics.Metric("InferenceLatency", metrics.MILLISECONDS, latency_ms),
        metrics.Metric("Predictions", metrics.COUNT, len(labels)),
        metrics.Metric("PredictionProbability", metrics.NONE, probabilities),
    ]
    if cold and not settings.provisioned:
        emitted.append(metrics.Metric("ColdStart", metrics.COUNT, 1))
    metrics.emit(
        settings.metrics_namespace,
        loaded.model_version,
        emitted,
        properties={"request_id": request_id, "lambda_version": settings.lambda_version},
    )
    return response


def _probabilities(loaded: LoadedModel, X: NDArray[np.float64]) -> list[float]:
    proba = np.asarray(loaded.model.predict_proba(X), dtype=np.float64)
    # A runtime that answers with the wrong shape or a non-probability is a bug, not data.
    if proba.shape != (X.shape[0],) or not np.all((proba >= 0.0) & (proba <= 1.0)):
        raise RuntimeError(
            f"runtime returned probabilities of shape {proba.shape} for {X.shape[0]} rows, "
            f"min {np.nanmin(proba) if proba.size else None}"
        )
    return [float(p) for p in proba]


def _rejected(
    shape: Shape, state: Ready, request_id: str, started: float, exc: RequestError
) -> dict[str, Any]:
    identity = _identity(state)
    logs.info(
        "request rejected",
        request_id=request_id,
        event_shape=shape.value,
        status=exc.status,
        **identity,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        error=exc.message,
    )
    headers = {"allow": "POST"} if exc.status == 405 else None
    body = error_body(exc.code, exc.message, details=exc.details)
    return render(
        shape, exc.status, {**body, **identity, "request_id": request_id}, headers=headers
    )


def _unavailable(
    shape: Shape, state: Unavailable, request_id: str, started: float
) -> dict[str, Any]:
    identity = _identity(state)
    logs.error(
        "model unavailable",
        request_id=request_id,
        event_shape=shape.value,
        status=503,
        **identity,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        reason=state.reason,
    )
    _server_error(state, request_id, 503)
    body = error_body("model_unavailable", f"model unavailable: {state.reason}")
    return render(shape, 503, {**body, **identity, "request_id": request_id})


def _warmup(state: State, request_id: str) -> dict[str, Any]:
    # No prediction metrics: warm-up traffic must not skew the canary's numbers.
    loaded = isinstance(state, Ready)
    logs.info("warm-up", request_id=request_id, model_loaded=loaded, **_identity(state))
    body: dict[str, Any] = {"warmup": True, "model_loaded": loaded, **_identity(state)}
    if isinstance(state, Unavailable):
        # Still a 5xx answer: a version that cannot load must trip the error alarm even
        # when only warm-up pings reach it.
        _server_error(state, request_id, 503)
        body.update(error_body("model_unavailable", f"model unavailable: {state.reason}"))
    return {"statusCode": 200 if loaded else 503, **body}


def _server_error(state: State, request_id: str, status: int) -> None:
    """Count a 5xx answer: Lambda's ``Errors`` metric never sees a returned 503 or 500."""
    if isinstance(state, Ready):
        settings = state.settings
        namespace = settings.metrics_namespace
        model_version = settings.model_version or state.loaded.model_version
        lambda_version = settings.lambda_version
    elif state.settings is not None:
        namespace = state.settings.metrics_namespace
        model_version = state.settings.model_version or "unknown"
        lambda_version = state.settings.lambda_version
    else:
        # Invalid configuration: nothing was parsed, so read what the alarm needs directly.
        namespace = _env.get("METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE
        # The stack's alarm watches the configured model version by name.
        model_version = (_env.get("MODEL_VERSION") or "").strip() or "unknown"
        lambda_version = _env.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST"
    metrics.emit(
        namespace,
        model_version,
        [metrics.Metric("ServerErrors", metrics.COUNT, 1)],
        properties={"request_id": request_id, "lambda_version": lambda_version, "status": status},
        # Also per function: the errors alarm counts every version behind the alias.
        function_name=_env.get("AWS_LAMBDA_FUNCTION_NAME") or None,
    )


def _identity(state: State) -> dict[str, Any]:
    if isinstance(state, Ready):
        return {
            "model_name": state.loaded.model_name,
            "model_version": state.loaded.model_version,
            "lambda_version": state.settings.lambda_version,
        }
    settings = state.settings
    return {
        "model_name": settings.model_name if settings else None,
        "model_version": settings.model_version if settings else None,
        "lambda_version": settings.lambda_version
        if settings
        else _env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    }


def _request_id(shape: Shape, event: Any, context: Any) -> str:
    request_id = getattr(context, "aws_request_id", None)
    if isinstance(request_id, str) and request_id:
        return request_id
    return http_request_id(shape, event) or f"local-{uuid.uuid4()}"

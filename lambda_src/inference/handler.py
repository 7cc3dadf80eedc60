"""Lambda entry point: ``inference.handler.handler``.

Module scope loads the model once per execution environment, so provisioned concurrency
and warm-up pings pre-load it. What happens after a failed load (deadlines, backoff,
when not to retry) is ``inference.state``'s; this module parses, predicts and answers.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from inference import allocator, answers, explanations, item_batches, logs, metrics
from inference import state as state_module
from inference.config import DEFAULT_METRICS_NAMESPACE
from inference.errors import ErrorCode, RequestError, too_large
from inference.events import (
    Shape,
    check_gate_invocation,
    detect_shape,
    http_request_id,
    is_gate_request,
    is_warmup,
)
from inference.limits import clip
from inference.request import read_request
from inference.responses import error_answer, render
from inference.state import Ready, State, Unavailable, init_state
from inference.validation import Instances
from serving import capture

__all__ = [
    "Ready",
    "State",
    "Unavailable",
    "configure",
    "current_state",
    "handler",
    "identity",
    "init_state",
]

# Set by Lambda in every execution environment.
_LAMBDA_MARKER = "AWS_LAMBDA_FUNCTION_NAME"
_SOURCE_VARIABLES = ("MODEL_PATH", "MODEL_BUCKET", "MODEL_KEY")


def _initial_state(env: Mapping[str, str]) -> State:
    # Importing the module outside Lambda with no model configured (tests, tools that
    # call configure() next) is not an outage: no ERROR line, and the first invocation
    # still tries the load. On Lambda a missing setting is reported at once.
    if _LAMBDA_MARKER not in env and not any(env.get(name) for name in _SOURCE_VARIABLES):
        return state_module.unconfigured("no model configured: set MODEL_PATH or MODEL_BUCKET")
    return init_state(env)


# Before the model loads, so its memory and every request's temporaries follow the setting.
allocator.keep_freed_memory()
_env: Mapping[str, str] = os.environ
_state: State = _initial_state(_env)
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


def identity() -> dict[str, Any]:
    """The model and Lambda version every answer names (for the local server's errors)."""
    return _identity(_state)


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _state, _cold
    started = time.perf_counter()
    cold, _cold = _cold, False
    shape = detect_shape(event)
    if isinstance(_state, Unavailable):
        _state = state_module.reload_if_due(_state, _env, remaining_ms=_remaining_ms(context))
    state = _state
    request_id = _request_id(shape, event, context)
    if is_warmup(shape, event):
        return _warmup(state, request_id)
    if isinstance(state, Unavailable):
        return _unavailable(shape, state, request_id, started)
    try:
        if is_gate_request(shape, event):
            check_gate_invocation(getattr(context, "invoked_function_arn", None))
            return _gate(shape, event, state, request_id, started)
        if item_batches.is_item_batch(shape, event):
            # Step Functions' batch scoring: answered per row, kept out of the online numbers.
            item_batches.check_invocation(getattr(context, "invoked_function_arn", None))
            return item_batches.answer(event, state, _identity(state), request_id, started)
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
        return error_answer(
            shape, ErrorCode.INTERNAL_ERROR, request_id=request_id, identity=_identity(state)
        )


def _remaining_ms(context: Any) -> int | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    value = remaining()
    return value if isinstance(value, int) else None


class _Answered(NamedTuple):
    instances: Instances
    answered: answers.Answers
    response: dict[str, Any]
    predict_ms: float


def _answer(shape: Shape, event: Any, state: Ready, request_id: str) -> _Answered:
    """Validate, predict and render: the same for every request, the gate's included."""
    settings, loaded = state.settings, state.loaded
    instances, explain = read_request(
        shape,
        event,
        loaded.schema,
        max_body_bytes=settings.max_body_bytes,
        max_batch_size=settings.max_batch_size,
    )
    model = loaded.model
    rows = instances.X.shape[0]
    classes = tuple(model.classes) if model.classes is not None else None
    envelope = {**_identity(state), "request_id": request_id}
    names = [feature.name for feature in loaded.schema]
    explainer = explanations.explainer(state, rows) if explain else None
    explained = explanations.answer_fields(explainer, names) if explainer else None
    most = answers.max_answer_rows(model.task, classes, shape, envelope, explained)
    if rows > most:
        raise too_large(
            f"batch of {rows} instances could get an answer over Lambda's "
            f"{answers.ANSWER_LIMIT_BYTES:,}-byte (6 MB) response limit from this model "
            f"({model.task}, {len(classes or ())} classes"
            f"{f', explanations of {len(names)} features' if explained else ''}): "
            f"send at most {most} instances per request"
        )
    predict_started = time.perf_counter()
    outputs = model.outputs(instances.X, unknown=instances.unknown)
    predict_ms = (time.perf_counter() - predict_started) * 1000
    answered = answers.answers(model.task, classes, outputs, rows=rows, batch=instances.batch)
    if explainer is not None:
        answered = explanations.add(
            answered, explainer, instances.X, names, model.task, classes, batch=instances.batch
        )
    # The only encode of every output: the log line and EMF carry bounded summaries.
    response = render(shape, 200, {**answered.body, **envelope})
    return _Answered(instances, answered, response, predict_ms)


def _gate(
    shape: Shape, event: Any, state: Ready, request_id: str, started: float
) -> dict[str, Any]:
    """The traffic gate's golden rows (``serving.reserved.GATE_KEY``): the answer any caller
    gets, and one line without values. No prediction line, no EMF and no capture record:
    the rows would otherwise reach the dashboards, the canary evaluator, the drift monitor
    and every comparison as if callers had sent them."""
    done = _answer(shape, event, state, request_id)
    logs.info(
        "gate request",
        **_request_fields(shape, state, request_id, 200, started),
        predict_ms=round(done.predict_ms, 3),
        rows=done.answered.rows,
    )
    return done.response


def _request_fields(
    shape: Shape, state: State, request_id: str, status: int, started: float
) -> dict[str, Any]:
    """The fields every line about one answered request starts with."""
    return {
        "request_id": request_id,
        "event_shape": shape.value,
        "status": status,
        **_identity(state),
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _predict(
    shape: Shape,
    event: Any,
    state: Ready,
    request_id: str,
    started: float,
    cold: bool,
) -> dict[str, Any]:
    settings, loaded = state.settings, state.loaded
    instances, answered, response, predict_ms = _answer(shape, event, state, request_id)
    identity = _identity(state)
    latency_ms = (time.perf_counter() - started) * 1000
    line = logs.entry(
        "INFO",
        "prediction",
        request_id=request_id,
        event_shape=shape.value,
        status=200,
        **identity,
        latency_ms=round(latency_ms, 3),
        predict_ms=round(predict_ms, 3),
        rows=answered.rows,
        **answered.log_fields,
        cold_start=cold and not settings.provisioned,
    )
    emitted = [
        metrics.Metric("InferenceLatency", metrics.MILLISECONDS, latency_ms),
        metrics.Metric("Predictions", metrics.COUNT, answered.rows),
        answered.metric,
    ]
    if cold and not settings.provisioned:
        emitted.append(metrics.Metric("ColdStart", metrics.COUNT, 1))
    documents = metrics.documents(
        settings.metrics_namespace,
        loaded.model_version,
        emitted,
        properties={"request_id": request_id, "lambda_version": settings.lambda_version},
    )
    logs.write_lines([line, *documents])
    # After the latency figures were taken: capture is not the model's time.
    if settings.capture_sample_rate and capture.is_sampled(
        request_id, settings.capture_sample_rate
    ):
        try:
            _capture(state, request_id, instances, answered)
        except Exception:
            # The caller's answer is ready and right: a capture bug costs the record only.
            logs.exception("capture failed", request_id=request_id, **identity)
    return response


def _capture(
    state: Ready, request_id: str, instances: Instances, answered: answers.Answers
) -> None:
    loaded, settings = state.loaded, state.settings
    records = capture.records(
        request_id=request_id,
        timestamp=datetime.now(UTC),
        model_name=loaded.model_name,
        model_version=loaded.model_version,
        lambda_version=settings.lambda_version,
        feature_names=[feature.name for feature in loaded.schema],
        rows=instances.X.tolist(),
        row_fields=answered.row_fields,
        categories=[feature.values for feature in loaded.schema],
        max_rows=settings.capture_max_rows,
        unknown=instances.unknown,
    )
    logs.write_lines(records)


def _rejected(
    shape: Shape, state: Ready, request_id: str, started: float, exc: RequestError
) -> dict[str, Any]:
    identity = _identity(state)
    # Never the request's values: the error's log form names fields (truncated) and kinds.
    logs.info(
        "request rejected",
        **_request_fields(shape, state, request_id, exc.status, started),
        error_code=exc.code.value,
        error=clip(exc.log_message),
        **({"problems": exc.log_details} if exc.log_details else {}),
        **({"problems_not_logged": exc.omitted} if exc.omitted else {}),
    )
    return error_answer(
        shape,
        exc.code,
        request_id=request_id,
        identity=identity,
        message=exc.message,
        details=exc.details,
        omitted=exc.omitted,
    )


def _unavailable(
    shape: Shape, state: Unavailable, request_id: str, started: float
) -> dict[str, Any]:
    identity = _identity(state)
    # The reason (bucket, key, checksums, S3's error) is for the operator, never the caller.
    logs.error(
        "model unavailable",
        **_request_fields(shape, state, request_id, 503, started),
        reason=clip(state.reason, state_module.REASON_MAX_CHARS),
    )
    _server_error(state, request_id, 503)
    return error_answer(
        shape,
        ErrorCode.MODEL_UNAVAILABLE,
        request_id=request_id,
        identity=identity,
        retry_after_s=state.retry_after_s(state_module.clock()),
    )


def _warmup(state: State, request_id: str) -> dict[str, Any]:
    # No prediction metrics: warm-up traffic must not skew the canary's numbers.
    loaded = isinstance(state, Ready)
    logs.info("warm-up", request_id=request_id, model_loaded=loaded, **_identity(state))
    if isinstance(state, Unavailable):
        # Still a 5xx answer: a version that cannot load must trip the error alarm even
        # when only warm-up pings reach it.
        _server_error(state, request_id, 503)
        answer = error_answer(
            Shape.DIRECT,
            ErrorCode.MODEL_UNAVAILABLE,
            request_id=request_id,
            identity=_identity(state),
            retry_after_s=state.retry_after_s(state_module.clock()),
        )
        return {**answer, "warmup": True, "model_loaded": False}
    return {"statusCode": 200, "warmup": True, "model_loaded": True, **_identity(state)}


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

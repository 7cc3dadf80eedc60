"""Every error answer's code, status and (for 5xx) message: the caller-facing contract.

Codes are stable: callers and dashboards match on them. A 5xx answer carries only its
code, a generic message and the request id; the reason goes to the logs and metrics.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_INPUT = "invalid_input"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"  # the local server only: a body that never arrived
    MODEL_UNAVAILABLE = "model_unavailable"
    INTERNAL_ERROR = "internal_error"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.MODEL_UNAVAILABLE: 503,
}

# What a 5xx says to the caller: nothing about buckets, keys, paths, checksums or settings.
GENERIC_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.MODEL_UNAVAILABLE: "the model is not available; retry later",
    ErrorCode.INTERNAL_ERROR: "internal error",
}


class RequestError(Exception):
    """A request the handler refuses; ``status`` and ``message`` go back to the caller.

    ``log_message`` is what the log line says instead of ``message`` when the message
    echoes request values (a rejected value could be an e-mail address); ``log_details``
    likewise replaces ``details`` in the log.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        log_message: str | None = None,
        log_details: list[dict[str, Any]] | None = None,
        omitted: int = 0,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = STATUS[code]
        self.message = message
        self.details = details or []
        self.log_message = message if log_message is None else log_message
        self.log_details = self.details if log_details is None else log_details
        # Problems found but not listed in ``details``.
        self.omitted = omitted


def bad_request(message: str, *, log_message: str | None = None) -> RequestError:
    return RequestError(ErrorCode.INVALID_REQUEST, message, log_message=log_message)


def too_large(message: str) -> RequestError:
    return RequestError(ErrorCode.PAYLOAD_TOO_LARGE, message)

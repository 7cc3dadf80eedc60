"""Errors that become HTTP answers: the caller's fault (4xx) or a missing model (503)."""

from __future__ import annotations

from typing import Any


class RequestError(Exception):
    """A request the handler refuses; ``status`` and ``message`` go back to the caller."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def bad_request(message: str, *, details: list[dict[str, Any]] | None = None) -> RequestError:
    return RequestError(400, "invalid_request", message, details=details)


def too_large(message: str) -> RequestError:
    return RequestError(413, "payload_too_large", message)

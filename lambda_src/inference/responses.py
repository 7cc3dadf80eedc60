"""Shape answers for the event that asked: HTTP proxy responses, or a plain dict."""

from __future__ import annotations

import json
from typing import Any

from inference.events import Shape

JSON_HEADERS = {"content-type": "application/json"}


def render(
    shape: Shape, status: int, body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    if shape is Shape.DIRECT:
        # A direct caller reads statusCode from the same object as the answer.
        return {"statusCode": status, **body}
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        # allow_nan=False: a NaN that slipped through would be invalid JSON for the caller.
        "body": json.dumps(body, allow_nan=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_body(
    code: str, message: str, *, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}

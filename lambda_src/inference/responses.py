"""Shape answers for the event that asked: HTTP proxy responses, or a plain dict.

``error_answer`` renders every error answer the function (and the local server) gives, so
the envelope and its size bounds live in one place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from inference import json_codec
from inference.errors import GENERIC_MESSAGES, STATUS, ErrorCode
from inference.events import Shape
from inference.limits import DETAILS_MAX_BYTES, MAX_REPORTED_PROBLEMS, capped, clip

JSON_HEADERS = {"content-type": "application/json"}


def render(
    shape: Shape,
    status: int,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    encode: Callable[[object], str] | None = None,
) -> dict[str, Any]:
    """The handler's return value. ``encode`` replaces the body's encoder (for size bounds:
    ``json_codec.encoders()``)."""
    if shape is Shape.DIRECT:
        # A direct caller reads statusCode from the same object as the answer.
        return {"statusCode": status, **body}
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        # allow_nan=False: a NaN that slipped through would be invalid JSON for the caller.
        "body": json_codec.dumps(body, allow_nan=False) if encode is None else encode(body),
        "isBase64Encoded": False,
    }


def payload_bytes(response: object) -> int:
    """Bytes of a handler's return value as Lambda's runtime client sends it, or more.

    awslambdaric encodes it with simplejson's defaults (separators ``", "`` and ``": "``,
    floats by ``repr``) and, on the python3.12+ runtimes, ``ensure_ascii=False`` (UTF-8).
    The standard library with the same defaults writes the same text with every non-ASCII
    character escaped: six bytes for one of at most four in UTF-8, so never fewer bytes.
    """
    return len(json.dumps(response))


def error_body(
    code: ErrorCode,
    message: str | None = None,
    *,
    details: list[dict[str, Any]] | None = None,
    omitted: int = 0,
) -> dict[str, Any]:
    """The ``error`` object: code, message (generic for a 5xx), capped details.

    ``omitted`` counts problems the caller of this function already left out; those cut
    here for size are added to it.
    """
    generic = GENERIC_MESSAGES.get(code)
    text = generic if generic is not None else clip(message or code.value)
    error: dict[str, Any] = {"code": code.value, "message": text}
    if details:
        kept, cut = capped(details, max_items=MAX_REPORTED_PROBLEMS, max_bytes=DETAILS_MAX_BYTES)
        error["details"] = kept
        omitted += cut
    if omitted:
        error["omitted_details"] = omitted
    return {"error": error}


def error_answer(
    shape: Shape,
    code: ErrorCode,
    *,
    request_id: str,
    identity: Mapping[str, Any],
    message: str | None = None,
    details: list[dict[str, Any]] | None = None,
    omitted: int = 0,
    retry_after_s: float | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every error answer: ``{"error": {...}, <identity>, "request_id"}`` with its status."""
    body = {
        **error_body(code, message, details=details, omitted=omitted),
        **identity,
        "request_id": request_id,
    }
    all_headers = dict(headers or {})
    if code is ErrorCode.METHOD_NOT_ALLOWED:
        all_headers["allow"] = "POST"
    if retry_after_s is not None:
        seconds = max(1, math.ceil(retry_after_s))
        all_headers["retry-after"] = str(seconds)
        # A direct invocation has no headers: the same hint goes into the body.
        body["retry_after_seconds"] = seconds
    return render(shape, STATUS[code], body, headers=all_headers or None)

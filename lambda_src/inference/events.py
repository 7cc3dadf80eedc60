"""Event shapes the function is invoked with, reduced to one JSON payload.

* Function URL / HTTP API payload 2.0: ``version == "2.0"`` and ``requestContext.http``.
* API Gateway REST (and HTTP API payload 1.0): ``httpMethod`` and ``requestContext``.
* Direct invocation (SDK, console, EventBridge): the event *is* the payload.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from typing import Any

from inference import json_codec
from inference.errors import ErrorCode, RequestError, bad_request, too_large
from inference.limits import ECHO_MAX_CHARS, echo
from serving.reserved import GATE_KEY as GATE_KEY
from serving.reserved import WARMUP_KEY as WARMUP_KEY


class Shape(enum.Enum):
    HTTP_V2 = "http-v2"
    REST_V1 = "rest-v1"
    DIRECT = "direct"


def detect_shape(event: object) -> Shape:
    if isinstance(event, Mapping):
        context = event.get("requestContext")
        if isinstance(context, Mapping):
            if event.get("version") == "2.0" and isinstance(context.get("http"), Mapping):
                return Shape.HTTP_V2
            if "httpMethod" in event:
                return Shape.REST_V1
    return Shape.DIRECT


def is_warmup(shape: Shape, event: object) -> bool:
    # Only a direct invocation can be a warm-up: an HTTP caller must not be able to skip
    # prediction (and its metrics) by posting this body. Only the exact ping is one: a
    # record that also carries the flag is refused (read_payload), not silently dropped.
    return (
        shape is Shape.DIRECT
        and isinstance(event, Mapping)
        and len(event) == 1
        and event.get(WARMUP_KEY) is True
    )


def is_gate_request(shape: Shape, event: object) -> bool:
    """Whether the event is the traffic gate's (``serving.reserved.GATE_KEY``): answered as
    any request, kept out of logs, metrics and capture. Only a direct invocation can be one;
    ``read_payload`` refuses the key with any value but ``true``, and on any HTTP shape, and
    ``check_gate_invocation`` unless a version was invoked by number (the invoked ARN,
    Lambda's ``Lambda-Runtime-Invoked-Function-Arn``, names the qualifier the caller used)."""
    return shape is Shape.DIRECT and isinstance(event, Mapping) and GATE_KEY in event


def check_gate_invocation(invoked_arn: object) -> None:
    """Refuse the gate's mark unless the function was invoked as the traffic gate invokes
    it: a published version by its qualified ARN (``function:NAME:VERSION``).

    Callers are granted the alias (docs/calling.md), whose name is the qualifier of their
    invocations; invoking a version by its number needs ``lambda:InvokeFunction`` on
    ``function:NAME:VERSION``, which the gate's role has. So a caller holding the alias's
    ``lambda:InvokeFunction`` (a Function URL needs it too) still cannot mark its traffic.
    """
    check_version_invocation(
        invoked_arn, repr(GATE_KEY), "the traffic gate", f": remove {GATE_KEY!r} from the request"
    )


def check_version_invocation(
    invoked_arn: object, marked: str, invoker: str, remedy: str = ""
) -> None:
    """Refuse a request ``marked`` to stay out of the online numbers unless a published
    version was invoked by its number, as ``invoker`` does (the traffic gate, the
    batch-scoring state machine): a caller granted the alias cannot mark its traffic."""
    qualifier = _qualifier(invoked_arn) if isinstance(invoked_arn, str) else None
    if qualifier is not None and qualifier.isascii() and qualifier.isdigit():
        return
    named = "no qualifier" if qualifier is None else f"the qualifier {echo(qualifier)}"
    raise bad_request(
        f"{marked} is accepted only on an invocation of a published version by its "
        f"qualified ARN (function:NAME:VERSION), as {invoker} invokes; this "
        f"invocation had {named}{remedy}"
    )


def _qualifier(invoked: str) -> str | None:
    """The version or alias an invocation named, or None when it named neither."""
    parts = invoked.split(":")
    if parts[0] == "arn":  # arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        return parts[7] if len(parts) == 8 else None
    # Lambda passes the full ARN; the partial forms NAME:Q and ACCOUNT:function:NAME:Q
    # are read too, so that a runtime passing them on still serves the gate.
    if len(parts) == 2:
        return parts[1]
    return parts[3] if len(parts) == 4 and parts[1] == "function" else None


def http_request_id(shape: Shape, event: object) -> str | None:
    if shape is Shape.DIRECT or not isinstance(event, Mapping):
        return None
    request_id = event["requestContext"].get("requestId")
    return request_id if isinstance(request_id, str) else None


def read_payload(
    shape: Shape, event: object, *, max_body_bytes: int, exact: bool = False
) -> object:
    """The request's JSON value; raises ``RequestError`` for anything a caller got wrong.

    A body is parsed by orjson where it can give ``json.loads``'s value (``parse_json_fast``);
    ``exact`` parses with the standard library alone (see ``inference.request``).
    """
    if shape is Shape.DIRECT:
        if isinstance(event, Mapping) and WARMUP_KEY in event and len(event) > 1:
            raise bad_request(
                f"{WARMUP_KEY!r} is allowed only alone: a warm-up ping is exactly "
                f'{{"{WARMUP_KEY}": true}}; remove it from a prediction request'
            )
        if isinstance(event, Mapping) and GATE_KEY in event:
            return _unmarked(event)
        return event
    assert isinstance(event, Mapping)
    method = _method(shape, event)
    if method != "POST":
        raise RequestError(
            ErrorCode.METHOD_NOT_ALLOWED, f"method {_plain(method)} is not allowed: use POST"
        )
    _check_content_type(_headers(event))
    raw = _body_bytes(event, max_body_bytes)
    value = parse_json(raw) if exact else parse_json_fast(raw)
    if isinstance(value, Mapping) and GATE_KEY in value:
        # Only the gate may keep its traffic out of the numbers, and it invokes directly
        # (IAM): an HTTP caller must not be able to hide requests from metrics and capture.
        raise bad_request(
            f"{GATE_KEY!r} is reserved for the traffic gate's direct invocations and is not "
            f"accepted over {_over(shape)}: remove it from the request body"
        )
    return value


def _unmarked(event: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's request without its mark, once the mark is exactly ``true``."""
    mark = event[GATE_KEY]
    if mark is not True:
        raise bad_request(
            f"{GATE_KEY!r} must be true (the traffic gate's mark), got "
            f"{_plain(json.dumps(mark, default=str))}"
        )
    return {key: value for key, value in event.items() if key != GATE_KEY}


def _over(shape: Shape) -> str:
    return "a Function URL or HTTP API" if shape is Shape.HTTP_V2 else "API Gateway"


def parse_json_fast(raw: bytes) -> object:
    """``parse_json(raw)``'s value or error, parsed by orjson when that is provably the same.

    orjson refuses everything the standard library refuses, and more (NaN literals, lone
    surrogates, numbers beyond a float): each of those, and a body that may repeat a key,
    goes to ``parse_json``, whose messages are the API's. Integers beyond 64 bits, which
    orjson reads as floats, are the caller's to check (``json_codec.MAX_EXACT_MAGNITUDE``).
    """
    value = json_codec.loads(raw)
    if value is None or _may_hold_duplicates(raw, value):
        return parse_json(raw)
    return value


def parse_json(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"request body is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    if not text.strip():
        raise bad_request("request body is empty: send a JSON object")
    try:
        value = json.loads(text)
        if _may_hold_duplicates(raw, value):
            # Rare (a duplicate, or a ':' or '{' inside a string): the exact, slower parse.
            value = json.loads(text, object_pairs_hook=_object_without_duplicates)
        return value
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise bad_request("request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        # e.g. an integer literal with more digits than Python converts (int_max_str_digits).
        raise bad_request(f"request body is not valid JSON: {exc}") from None


def _may_hold_duplicates(raw: bytes, value: object) -> bool:
    """False only when ``raw`` provably repeats no key in any object (cheap, no hook).

    json.loads keeps the last of two equal keys, so a parsed object holds fewer keys than
    the text wrote. Every object of the text has its own ``{`` and every key its own
    ``:``, so objects(text) <= count("{") and keys(text) <= count(":"). The objects found
    on the first two levels of ``value`` (a record, or ``{"instances": [records]}``) are
    some of the text's objects: when their number equals count("{"), they are all of
    them, and when their keys then equal count(":"), no key of the text was dropped.
    Anything else (deeper nesting, a brace or colon in a string, a duplicate) says True
    and the caller parses again with the per-object check that names the key. The count
    runs on the UTF-8 bytes: no byte of a multi-byte character is ASCII, so each ``{`` and
    ``:`` byte is that character of the text.
    """
    if type(value) is not dict:
        return b"{" in raw
    objects, keys = 1, len(value)
    for member in value.values():
        if type(member) is dict:
            objects += 1
            keys += len(member)
        elif type(member) is list:
            inner = [item for item in member if type(item) is dict]
            objects += len(inner)
            keys += sum(map(len, inner))
    return objects != raw.count(b"{") or keys != raw.count(b":")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last duplicate silently; a caller sending two values for one
    # feature has a bug we should show, not a prediction on a value it may not expect.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise bad_request(f"duplicate field {echo(key)} in a JSON object")
        obj[key] = value
    return obj


def _plain(text: str) -> str:
    # Caller text shown unquoted (an HTTP method), cut like every echo.
    if len(text) <= ECHO_MAX_CHARS:
        return text
    return f"{text[:ECHO_MAX_CHARS]}... ({len(text) - ECHO_MAX_CHARS} more characters)"


def _method(shape: Shape, event: Mapping[str, Any]) -> str:
    if shape is Shape.HTTP_V2:
        method = event["requestContext"]["http"].get("method")
    else:
        method = event.get("httpMethod")
    return str(method).upper()


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    # Payload 2.0 lower-cases header names; REST v1 passes them as the client sent them.
    headers = event.get("headers") or {}
    if not isinstance(headers, Mapping):
        return {}
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _check_content_type(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type")
    if content_type is None:
        # Callers that send no content type at all get the benefit of the doubt.
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    raise bad_request(f"content-type {echo(content_type)} is not supported: send application/json")


def _body_bytes(event: Mapping[str, Any], max_body_bytes: int) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise bad_request("request body is empty: send a JSON object")
    if not isinstance(body, str):
        raise bad_request(f"request body has type {type(body).__name__}, expected text")
    if event.get("isBase64Encoded") is True:
        # Checked before decoding so that a huge body costs no decode work.
        if len(body) > 4 * ((max_body_bytes + 2) // 3):
            size = len(body) * 3 // 4
            raise too_large(
                f"request body of about {size} bytes exceeds MAX_BODY_BYTES={max_body_bytes}"
            )
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("request body is marked isBase64Encoded but is not base64") from None
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_body_bytes:
        raise too_large(f"request body of {len(raw)} bytes exceeds MAX_BODY_BYTES={max_body_bytes}")
    return raw

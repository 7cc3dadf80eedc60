"""Event shapes and HTTP bodies: everything a caller can get wrong before validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from inference.errors import RequestError
from inference.events import Shape, detect_shape, is_warmup, parse_json, read_payload
from tests.handler.conftest import load_event, valid_record

LIMIT = 1024


def read(event: Any, limit: int = LIMIT) -> object:
    return read_payload(detect_shape(event), event, max_body_bytes=limit)


def rejected(event: Any, limit: int = LIMIT) -> RequestError:
    with pytest.raises(RequestError) as info:
        read(event, limit)
    return info.value


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("function_url_v2.json", Shape.HTTP_V2),
        ("function_url_v2_base64_batch.json", Shape.HTTP_V2),
        ("rest_api_v1.json", Shape.REST_V1),
        ("direct_single.json", Shape.DIRECT),
        ("direct_batch.json", Shape.DIRECT),
        ("warmup.json", Shape.DIRECT),
    ],
)
def test_each_sample_event_is_recognised(name: str, shape: Shape) -> None:
    assert detect_shape(load_event(name)) is shape


def test_non_object_events_are_direct_invocations() -> None:
    assert detect_shape([1, 2]) is Shape.DIRECT
    assert detect_shape("text") is Shape.DIRECT
    assert detect_shape(None) is Shape.DIRECT


def test_payloads_are_the_same_record_whatever_the_shape() -> None:
    record = valid_record()
    assert read(load_event("function_url_v2.json")) == record
    assert read(load_event("rest_api_v1.json")) == record
    assert read(load_event("direct_single.json")) == record
    batch = read(load_event("function_url_v2_base64_batch.json"))
    assert batch == load_event("direct_batch.json")


def test_warmup_only_from_a_direct_invocation() -> None:
    assert is_warmup(Shape.DIRECT, {"_warmup": True})
    assert not is_warmup(Shape.DIRECT, {"_warmup": "yes"})
    assert not is_warmup(Shape.DIRECT, valid_record())
    http = load_event("function_url_v2.json")
    http["body"] = json.dumps({"_warmup": True})
    assert not is_warmup(detect_shape(http), http)


@pytest.mark.parametrize("name", ["function_url_v2.json", "rest_api_v1.json"])
def test_only_post_is_allowed(name: str) -> None:
    event = load_event(name)
    if "httpMethod" in event:
        event["httpMethod"] = "GET"
    else:
        event["requestContext"]["http"]["method"] = "GET"
    error = rejected(event)
    assert error.status == 405
    assert "GET" in error.message


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", "application/x+json"]
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    event = load_event("function_url_v2.json")
    event["headers"]["content-type"] = content_type
    assert read(event) == valid_record()


def test_missing_content_type_is_accepted() -> None:
    event = load_event("function_url_v2.json")
    del event["headers"]["content-type"]
    assert read(event) == valid_record()


@pytest.mark.parametrize("name", ["function_url_v2.json", "rest_api_v1.json"])
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_other_content_types_are_rejected(name: str, content_type: str) -> None:
    event = load_event(name)
    headers = event["headers"]
    headers["Content-Type" if "Content-Type" in headers else "content-type"] = content_type
    error = rejected(event)
    assert error.status == 400
    assert content_type in error.message


@pytest.mark.parametrize("body", [None, "", "   \n"])
def test_empty_body_is_rejected(body: str | None) -> None:
    event = load_event("function_url_v2.json")
    event["body"] = body
    error = rejected(event)
    assert (error.status, error.message) == (400, "request body is empty: send a JSON object")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"tenure_months": 3,', "not valid JSON"),
        ("{'tenure_months': 3}", "not valid JSON"),
        ('{"a": 1} trailing', "Extra data"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"tenure_months": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"a": 1, "a": 2}', "duplicate field 'a'"),
    ],
)
def test_malformed_json_is_a_400_not_a_crash(body: str, fragment: str) -> None:
    event = load_event("function_url_v2.json")
    event["body"] = body
    error = rejected(event, limit=1 << 20)
    assert error.status == 400
    assert fragment in error.message


def test_bytes_that_are_not_utf8_are_rejected() -> None:
    event = load_event("function_url_v2.json")
    event["body"] = base64.b64encode(b'{"a": "\xff"}').decode()
    event["isBase64Encoded"] = True
    error = rejected(event)
    assert error.status == 400
    assert "not UTF-8" in error.message


def test_invalid_base64_is_rejected() -> None:
    event = load_event("function_url_v2.json")
    event["isBase64Encoded"] = True
    event["body"] = "this is not base64!"
    error = rejected(event)
    assert error.status == 400
    assert "base64" in error.message


def test_body_over_the_limit_is_413() -> None:
    event = load_event("function_url_v2.json")
    event["body"] = json.dumps({"pad": "x" * LIMIT})
    error = rejected(event)
    assert error.status == 413
    assert f"MAX_BODY_BYTES={LIMIT}" in error.message


def test_body_at_the_limit_is_read() -> None:
    text = json.dumps({"pad": ""})
    text = json.dumps({"pad": "x" * (LIMIT - len(text))})
    assert len(text) == LIMIT
    event = load_event("function_url_v2.json")
    event["body"] = text
    assert read(event) == json.loads(text)


def test_base64_body_over_the_limit_is_413_before_decoding() -> None:
    event = load_event("function_url_v2.json")
    event["isBase64Encoded"] = True
    # Not valid base64 either: the size check must come first and answer 413.
    event["body"] = "!" * (2 * LIMIT)
    error = rejected(event)
    assert error.status == 413


def test_rest_v1_headers_are_case_insensitive() -> None:
    event = load_event("rest_api_v1.json")
    event["headers"] = {"CONTENT-TYPE": "text/csv"}
    assert rejected(event).status == 400


def test_parse_json_keeps_nan_for_validation_to_name_the_field() -> None:
    # NaN/Infinity are accepted by Python's parser; validation rejects them per field.
    parsed = parse_json(b'{"x": NaN, "y": -Infinity}')
    assert isinstance(parsed, dict)
    assert parsed["x"] != parsed["x"]
    assert parsed["y"] == float("-inf")

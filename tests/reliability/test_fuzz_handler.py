"""Property-based tests: whatever arrives, in every event shape, with both runtimes.

Every answer is JSON with a status; bad input is a 4xx whose message names the problem
(never a 500, never a 503 while the model is loaded, never a prediction); and the next
valid request gets the same probability as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from inference import handler as handler_module
from tests.handler.conftest import valid_record
from tests.reliability.conftest import (
    MAX_BATCH_SIZE,
    MAX_BODY_BYTES,
    Served,
    count_input,
    valid_http_event,
)
from tests.reliability.strategies import (
    ALL_SHAPES,
    FEATURES,
    HTTP_SHAPES,
    NAMES,
    NUMERIC_LOOKING,
    dumps,
    event_for,
    http_event,
    json_values,
    number_literals,
    one_bad_field,
    valid_records,
)

ERROR_CODES = {
    400: {"invalid_request", "invalid_input"},
    405: {"method_not_allowed"},
    413: {"payload_too_large"},
}


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"answer body holds the non-JSON constant {name}")


def answer(served: Served, event: Any) -> tuple[int, dict[str, Any]]:
    """Invoke, check the contract every answer keeps, and check the next request recovers."""
    count_input()
    response, logged = served.invoke(event)
    status = response["statusCode"]
    assert isinstance(status, int)
    if "headers" in response:
        assert response["headers"]["content-type"] == "application/json"
        assert response["isBase64Encoded"] is False
        body = json.loads(response["body"], parse_constant=_refuse_constant)
    else:
        # A direct caller gets the dict itself; Lambda must be able to send it as JSON.
        body = {k: v for k, v in response.items() if k != "statusCode"}
        json.dumps(response, allow_nan=False)
    assert isinstance(body, dict)
    assert status in (200, *ERROR_CODES), (status, body)
    assert (body["model_name"], body["model_version"]) == ("churn", "v1")
    if status != 200:
        error = body["error"]
        assert error["code"] in ERROR_CODES[status], body
        assert isinstance(error["message"], str) and error["message"].strip()
        assert '"message":"prediction"' not in logged
    _assert_still_serving(served)
    return status, body


def _assert_still_serving(served: Served) -> None:
    assert handler_module.current_state() is served.state
    response, _ = served.invoke(valid_http_event(valid_record()))
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["probability"] == served.valid_probability


def _assert_predicted(served: Served, body: dict[str, Any], records: list[dict[str, Any]]) -> None:
    got = (
        [p["probability"] for p in body["predictions"]]
        if "predictions" in body
        else [body["probability"]]
    )
    assert got == [served.probability(record) for record in records]


@given(shape=st.sampled_from(ALL_SHAPES), payload=json_values)
def test_any_json_payload_gets_an_answer(served: Served, shape: str, payload: Any) -> None:
    status, body = answer(served, event_for(shape, payload))
    if status == 200:
        if shape == "direct" and isinstance(payload, dict) and payload.get("_warmup") is True:
            assert body["warmup"] is True and body["model_loaded"] is True
        else:
            # Only a well-formed record could have passed; the answer is the model's.
            records = payload.get("instances", [payload])
            _assert_predicted(served, body, records)


@given(shape=st.sampled_from(ALL_SHAPES), record=valid_records)
def test_a_valid_record_gets_the_models_probability(
    served: Served, shape: str, record: dict[str, Any]
) -> None:
    status, body = answer(served, event_for(shape, record))
    assert status == 200
    _assert_predicted(served, body, [record])


@given(shape=st.sampled_from(ALL_SHAPES), case=one_bad_field())
def test_one_bad_field_is_a_400_naming_it(
    served: Served, shape: str, case: tuple[dict[str, Any], str, str]
) -> None:
    record, field, problem = case
    status, body = answer(served, event_for(shape, record))
    assert status == 400, body
    assert body["error"]["code"] == "invalid_input"
    assert body["error"]["message"].startswith(f"{field}: {problem}")
    assert [d["field"] for d in body["error"]["details"]] == [field]


@given(
    shape=st.sampled_from(ALL_SHAPES),
    records=st.lists(valid_records, min_size=1, max_size=MAX_BATCH_SIZE),
    case=one_bad_field(),
    data=st.data(),
)
def test_one_bad_record_in_a_batch_is_named_by_row_and_field(
    served: Served,
    shape: str,
    records: list[dict[str, Any]],
    case: tuple[dict[str, Any], str, str],
    data: st.DataObject,
) -> None:
    bad, field, problem = case
    row = data.draw(st.integers(0, len(records) - 1), label="row")
    records[row] = bad
    status, body = answer(served, event_for(shape, {"instances": records}))
    assert status == 400, body
    assert body["error"]["message"].startswith(f"instances[{row}].{field}: {problem}")
    assert [(d["row"], d["field"]) for d in body["error"]["details"]] == [(row, field)]


@given(
    shape=st.sampled_from(ALL_SHAPES),
    size=st.integers(0, MAX_BATCH_SIZE * 3),
    record=valid_records,
)
def test_batch_size_is_checked(
    served: Served, shape: str, size: int, record: dict[str, Any]
) -> None:
    status, body = answer(served, event_for(shape, {"instances": [record] * size}))
    if size == 0:
        assert status == 400 and "'instances' is empty" in body["error"]["message"]
    elif size > MAX_BATCH_SIZE:
        assert status == 413
        assert body["error"]["message"].startswith(
            f"batch of {size} instances exceeds MAX_BATCH_SIZE={MAX_BATCH_SIZE}"
        )
    else:
        assert status == 200
        assert [p["probability"] for p in body["predictions"]] == [
            served.probability(record)
        ] * size


@given(
    shape=st.sampled_from(ALL_SHAPES),
    instances=json_values.filter(lambda value: not isinstance(value, list)),
    extra=st.dictionaries(st.text(max_size=8).filter(lambda k: k != "instances"), json_values),
)
def test_a_malformed_batch_is_a_400_naming_instances(
    served: Served, shape: str, instances: Any, extra: dict[str, Any]
) -> None:
    status, body = answer(served, event_for(shape, {"instances": instances, **extra}))
    assert status == 400
    message = body["error"]["message"]
    if shape == "direct" and "_warmup" in extra:
        # Found by `make fuzz`: the warm-up rule speaks first for a direct event.
        assert message.startswith("'_warmup' is allowed only alone")
    elif extra:
        assert message.startswith(f"unknown field {min(extra)!r} next to 'instances'")
    else:
        assert message.startswith("'instances' must be an array of records")


@given(
    shape=st.sampled_from(HTTP_SHAPES),
    record=valid_records,
    feature=st.sampled_from(FEATURES),
    literal=number_literals(),
)
def test_number_literals_are_judged_like_numbers(
    served: Served, shape: str, record: dict[str, Any], feature: dict[str, Any], literal: str
) -> None:
    name = feature["name"]
    record = {k: v for k, v in record.items() if k != name}
    text = dumps(record)[:-1] + (", " if record else "") + f'"{name}": {literal}}}'
    status, body = answer(served, http_event(shape, text))
    try:
        value = json.loads(literal)
    except ValueError:
        # More digits than Python converts (sys.get_int_max_str_digits): not a number here.
        assert status == 400 and body["error"]["message"].startswith(
            "request body is not valid JSON"
        )
        return
    low, high = feature["allowed"]["min"], feature["allowed"]["max"]
    acceptable = (
        not (isinstance(value, float) and not math.isfinite(value))
        and (feature["dtype"] != "integer" or isinstance(value, int) or value.is_integer())
        and low <= value <= high
    )
    if acceptable:
        assert status == 200
        _assert_predicted(served, body, [{**record, name: value}])
    else:
        assert status == 400 and body["error"]["message"].startswith(f"{name}: must be")


@given(
    shape=st.sampled_from(ALL_SHAPES),
    record=valid_records,
    name=st.sampled_from(NAMES),
    text=NUMERIC_LOOKING,
)
def test_strings_that_look_like_numbers_are_refused(
    served: Served, shape: str, record: dict[str, Any], name: str, text: str
) -> None:
    status, body = answer(served, event_for(shape, {**record, name: text}))
    assert status == 400
    assert body["error"]["message"].startswith(f"{name}: must be a number, got string")


@given(shape=st.sampled_from(HTTP_SHAPES), text=st.text(max_size=200))
def test_text_that_is_not_json_is_a_400(served: Served, shape: str, text: str) -> None:
    try:
        json.loads(text)
        assume(False)
    except ValueError:
        pass
    except RecursionError:
        pass
    status, body = answer(served, http_event(shape, text))
    assert status == 400
    message = body["error"]["message"]
    assert message.startswith(
        (
            "request body is not valid JSON",
            "request body is empty",
            "request body is not UTF-8 text",  # a lone surrogate cannot be encoded
        )
    ), message


@given(raw=st.binary(min_size=1, max_size=300))
def test_invalid_utf8_is_a_400_naming_the_byte(served: Served, raw: bytes) -> None:
    try:
        raw.decode("utf-8")
        assume(False)
    except UnicodeDecodeError as exc:
        position = exc.start
    status, body = answer(served, http_event("http-v2-base64", raw))
    assert status == 400
    assert body["error"]["message"].startswith("request body is not UTF-8 text")
    assert body["error"]["message"].endswith(f"at byte {position}")


@given(text=st.text(min_size=1, max_size=200))
def test_invalid_base64_is_a_400(served: Served, text: str) -> None:
    try:
        base64.b64decode(text, validate=True)
        assume(False)
    except (binascii.Error, ValueError):
        pass
    event = http_event("http-v2", text, extra={"isBase64Encoded": True})
    status, body = answer(served, event)
    assert status == 400
    assert body["error"]["message"] == "request body is marked isBase64Encoded but is not base64"


@given(
    shape=st.sampled_from(ALL_SHAPES),
    name=st.sampled_from(NAMES),
    depth=st.integers(1, 5000),
    record=valid_records,
)
def test_deeply_nested_values_are_a_400(
    served: Served, shape: str, name: str, depth: int, record: dict[str, Any]
) -> None:
    if shape == "direct":
        nested: Any = []
        for _ in range(depth):
            nested = [nested]
        event: Any = {**record, name: nested}
    else:
        text = dumps({k: v for k, v in record.items() if k != name})[:-1]
        event = http_event(shape, f'{text}, "{name}": {"[" * depth}{"]" * depth}}}')
    status, body = answer(served, event)
    assert status == 400
    message = body["error"]["message"]
    assert message.startswith(f"{name}: must be a number, got array") or (
        shape != "direct" and message == "request body is not valid JSON: nested too deeply"
    ), message


@given(
    shape=st.sampled_from(HTTP_SHAPES),
    record=valid_records,
    padding=st.integers(0, 3 * MAX_BODY_BYTES),
)
def test_body_size_is_checked_before_parsing(
    served: Served, shape: str, record: dict[str, Any], padding: int
) -> None:
    text = " " * padding + dumps(record)
    size = len(text.encode())
    status, body = answer(served, http_event(shape, text))
    if size > MAX_BODY_BYTES:
        assert status == 413
        assert body["error"]["message"].endswith(f"exceeds MAX_BODY_BYTES={MAX_BODY_BYTES}")
    else:
        assert status == 200
        _assert_predicted(served, body, [record])


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
) | st.text(max_size=20)


@given(
    shape=st.sampled_from(HTTP_SHAPES),
    method=st.sampled_from(["POST", "post", "Post", "GET", "PUT", "DELETE", "OPTIONS", ""])
    | st.none()
    | st.integers()
    | st.text(max_size=8),
    header_name=st.sampled_from(["content-type", "Content-Type", "CONTENT-TYPE", None]),
    content_type=CONTENT_TYPES,
    other_headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    body=st.none() | st.just("") | valid_records.map(dumps) | json_values.map(dumps),
    extra=st.dictionaries(
        st.sampled_from(["cookies", "rawQueryString", "stageVariables"]), json_values
    ),
)
def test_http_envelopes_method_and_content_type(
    served: Served,
    shape: str,
    method: object,
    header_name: str | None,
    content_type: str,
    other_headers: dict[str, str],
    body: str | None,
    extra: dict[str, Any],
) -> None:
    headers = {k: v for k, v in other_headers.items() if k.lower() != "content-type"}
    if header_name:
        headers[header_name] = content_type
    event = http_event(shape, body, method=method, headers=headers, extra=extra)
    status, answer_body = answer(served, event)
    message = answer_body.get("error", {}).get("message", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    json_type = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if str(method).upper() != "POST":
        assert status == 405
        assert message == f"method {str(method).upper()} is not allowed: use POST"
    elif header_name and not json_type:
        assert status == 400
        assert message.startswith(f"content-type {content_type!r} is not supported")
    elif body in (None, ""):
        assert status == 400 and message == "request body is empty: send a JSON object"


@given(
    shape=st.sampled_from(HTTP_SHAPES),
    body=st.integers()
    | st.floats()
    | st.booleans()
    | st.lists(json_values, max_size=3)
    | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_a_body_that_is_not_text_is_a_400(served: Served, shape: str, body: Any) -> None:
    event = http_event("http-v2" if shape == "http-v2-base64" else shape, None)
    event["body"] = body
    if shape == "http-v2-base64":
        event["isBase64Encoded"] = True
    status, answer_body = answer(served, event)
    assert status == 400
    message = answer_body["error"]["message"]
    if body in (None, ""):
        assert message == "request body is empty: send a JSON object"
    else:
        assert message.endswith(", expected text") or message.startswith("request body is empty")


@given(
    extra=st.dictionaries(st.text(max_size=10).filter(lambda k: k != "_warmup"), json_values),
    flag=st.just(True) | json_values.filter(lambda value: value is not True),
    over_http=st.sampled_from((None, *HTTP_SHAPES)),
)
def test_only_a_direct_true_warmup_flag_skips_prediction(
    served: Served, extra: dict[str, Any], flag: Any, over_http: str | None
) -> None:
    payload = {**extra, "_warmup": flag}
    event = event_for(over_http or "direct", payload)
    status, body = answer(served, event)
    if flag is True and over_http is None and not extra:
        assert status == 200 and body["warmup"] is True and body["model_loaded"] is True
    elif over_http is None and extra:
        # Mixed with anything else it is refused, never a warm-up that drops a prediction.
        assert status == 400
        assert body["error"]["message"].startswith("'_warmup' is allowed only alone")
    else:
        assert status == 400
        if "instances" not in payload:
            assert "_warmup" in [d["field"] for d in body["error"]["details"]]

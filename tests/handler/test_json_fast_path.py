"""orjson on the request path: the same values, answers and 400 messages as the standard library.

``inference.json_codec`` parses bodies and encodes answers and log lines with orjson where
it gives the standard library's result, and hands everything else to ``json``; these tests
hold each difference it claims to route around, and the path without orjson installed.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import json_codec, logs
from inference.errors import RequestError
from inference.events import Shape, parse_json, parse_json_fast
from inference.request import read_instances
from inference.responses import render
from inference.validation import Feature, parse_instances
from tests.handler import json_texts
from tests.handler.conftest import http_body, load_event, log_lines, valid_record

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)
# orjson keeps integers in this range exact and reads any other as the nearest float.
EXACT_INTS = range(-(2**63), 2**64)


@pytest.fixture(params=["orjson", "stdlib"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test that takes this runs with orjson, and as on an image without it."""
    if request.param == "stdlib":
        monkeypatch.setattr(json_codec, "enabled", False)
    yield request.param


def outcome(call: Callable[[bytes], object], raw: bytes) -> tuple[str, object]:
    try:
        return "ok", call(raw)
    except RequestError as exc:
        return "refused", (exc.status, exc.message)


def same_value(fast: object, exact: object) -> bool:
    """Equal, but for what orjson reads its own way: an integer beyond 64 bits is a float."""
    if type(exact) is int and exact not in EXACT_INTS and type(fast) is float:
        return fast == float(exact)
    if type(exact) is float and math.isnan(exact):
        return type(fast) is float and math.isnan(fast)
    if type(fast) is not type(exact):
        return False
    if isinstance(exact, dict):
        assert isinstance(fast, dict)
        return list(fast) == list(exact) and all(same_value(fast[k], exact[k]) for k in exact)
    if isinstance(exact, list):
        assert isinstance(fast, list)
        return len(fast) == len(exact) and all(map(same_value, fast, exact))
    if isinstance(exact, float):
        # -0.0 == 0.0: compare the bits.
        return struct.pack("<d", fast) == struct.pack("<d", exact)
    return fast == exact


def assert_parsed_alike(raw: bytes) -> None:
    fast, exact = outcome(parse_json_fast, raw), outcome(parse_json, raw)
    assert fast[0] == exact[0], (raw[:80], fast, exact)
    if fast[0] == "refused":
        assert fast == exact
    else:
        assert same_value(fast[1], exact[1]), (raw[:80], fast, exact)


# --- parsing ---------------------------------------------------------------------------

MALFORMED = [
    b"",
    b"   \n\t",
    b'{"tenure_months": 3,',
    b"{'tenure_months': 3}",
    b'{"a": 1} trailing',
    b'{"a": 1,}',
    b"[1, 2,]",
    b"[01]",
    b"[.5]",
    b"[1.]",
    b"[+1]",
    b'{"a" 1}',
    b"tru",
    b"nul",
    b'"unterminated',
    b'"tab\there"',
    b'"\\x41"',
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b'{"a": "\xff"}',  # not UTF-8
    b'{"a": "\xed\xa0\x80"}',  # an encoded surrogate: not UTF-8 either
    b"[" * 100_000 + b"]" * 100_000,
    b'{"tenure_months": ' + b"9" * 5000 + b"}",
    b'{"a": 1, "a": 2}',
    b'{"instances": [{"a": 1}, {"a": 1, "a": 2}]}',
    b"/* comment */ {}",
]

ACCEPTED_BY_THE_STDLIB_ONLY = [
    b'{"x": NaN}',
    b'{"x": Infinity, "y": -Infinity}',
    b'{"x": 1e400}',
    b'{"x": "\\ud800"}',  # a lone surrogate, escaped
    b'{"x": ' + b"1" * 400 + b"}",  # more digits than a float holds, fewer than the limit
]


@pytest.mark.parametrize("raw", MALFORMED, ids=lambda raw: repr(raw[:30]))
def test_a_malformed_body_gets_the_standard_librarys_message(codec: str, raw: bytes) -> None:
    fast = outcome(parse_json_fast, raw)
    assert fast[0] == "refused"
    assert fast == outcome(parse_json, raw)


@pytest.mark.parametrize("raw", ACCEPTED_BY_THE_STDLIB_ONLY, ids=lambda raw: repr(raw[:30]))
def test_what_orjson_refuses_is_parsed_by_the_standard_library(raw: bytes) -> None:
    assert json_codec.loads(raw) is None
    assert_parsed_alike(raw)


@pytest.mark.parametrize("depth", [1, 900, 1023, 1024, 1025, 1500, 5000])
def test_deep_nesting_is_refused_or_parsed_as_the_standard_library_does(depth: int) -> None:
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        # Compared by ==, which (unlike same_value) does not recurse in Python.
        assert outcome(parse_json_fast, raw) == outcome(parse_json, raw)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": 1, "a": 2}', "a"),
        ('{"note": "a:b", "x": 1, "x": 2}', "x"),
        ('{"a": 1, "\\u0061": 2}', "a"),
        ('{"instances": [{"a": {"b": 1, "b": 2}}]}', "b"),
        ('{"instances": [{"a": 1}, {"b": 1, "c": 2, "b": 3}]}', "b"),
        ('[{"k": 1, "k": 2}]', "k"),
        ('{"\u00e9": 1, "\u00e9": 2}', "\u00e9"),
    ],
)
def test_a_duplicate_key_is_refused_naming_it(codec: str, text: str, key: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_json_fast(text.encode())
    assert info.value.message == f"duplicate field {key!r} in a JSON object"


def test_a_clean_batch_is_parsed_by_orjson_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the standard library parsed a clean batch")

    body = {"instances": [valid_record() for _ in range(100)]}
    raw = json.dumps(body).encode()
    monkeypatch.setattr(json, "loads", refuse)
    assert parse_json_fast(raw) == body


# Hand-written JSON texts: objects may repeat keys, numbers may be huge or special.
keys = st.sampled_from(["a", "b", "\\u0061", "a:b", "{", "instances", "\u00e9", "\\ud83d\\ude00"])
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        ["-0", "-0.0", "1e400", "-1e400", "1e-400", "1E5", "0.1e1", "NaN", "-Infinity", "01"]
    ),
    st.sampled_from(["18446744073709551615", "18446744073709551616", "-9223372036854775809"]),
)
strings = st.text(max_size=5).map(lambda s: json.dumps(s, ensure_ascii=False))
scalars = st.one_of(numbers, strings, st.sampled_from(["true", "false", "null", '"\\ud800"']))
documents = json_texts.documents(keys, scalars)


@PROPERTY
@given(documents)
def test_any_document_parses_to_the_standard_librarys_value_or_error(text: str) -> None:
    assert_parsed_alike(text.encode("utf-8", errors="surrogatepass"))


@PROPERTY
@given(st.binary(max_size=40) | documents.map(lambda t: t.encode()[:-1]))
def test_any_bytes_parse_or_fail_as_with_the_standard_library(raw: bytes) -> None:
    assert_parsed_alike(raw)


# --- from an event to the matrix: bounds decided on the exact value --------------------

WIDE = (Feature("x", integer=True, minimum=0.0, maximum=2.0**64),)


def http_event(body: str) -> dict[str, Any]:
    event: dict[str, Any] = load_event("function_url_v2.json")
    event["body"] = body
    return event


def instances_or_error(body: str) -> tuple[str, object]:
    event = http_event(body)
    try:
        got = read_instances(Shape.HTTP_V2, event, WIDE, max_body_bytes=1 << 20, max_batch_size=10)
    except RequestError as exc:
        return "refused", exc.message
    return "ok", got.X.tolist()


def exact_outcome(body: str) -> tuple[str, object]:
    """The standard library's parse, then validation: what the handler always answered."""
    try:
        got = parse_instances(parse_json(body.encode()), WIDE, max_batch_size=10)
    except RequestError as exc:
        return "refused", exc.message
    return "ok", got.X.tolist()


@pytest.mark.parametrize("batch", [False, True])
def test_an_integer_beyond_64_bits_is_judged_on_its_exact_value(codec: str, batch: bool) -> None:
    # 2**64 + 1 is above the bound; orjson reads it as 2.0**64, which is not.
    record = '{"x": 18446744073709551617}'
    body = f'{{"instances": [{record}]}}' if batch else record
    assert instances_or_error(body) == exact_outcome(body)
    if not batch:
        assert instances_or_error(body) == (
            "refused",
            "x: must be between 0 and 18446744073709551616, got 18446744073709551617",
        )


def test_an_integer_beyond_64_bits_in_range_gives_the_same_matrix(codec: str) -> None:
    assert instances_or_error('{"x": 18446744073709551615}') == ("ok", [[2.0**64]])
    assert instances_or_error('{"x": 18446744073709551616}') == ("ok", [[2.0**64]])


@pytest.mark.parametrize(
    "body",
    [
        '{"x": 111111111111111111111111111111}',
        '{"instances": [{"x": 1}, {"x": -111111111111111111111111111111}]}',
        '{"x": NaN}',
        '{"x": 1e400}',
        '{"x": true}',
        '{"x": "\u00e9"}',
        '{"\u00e9": 1}',
        '{"x": [[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]}',
    ],
)
def test_a_refused_request_gets_the_standard_librarys_message(codec: str, body: str) -> None:
    got = instances_or_error(body)
    assert got[0] == "refused"
    assert got == exact_outcome(body)


# --- encoding --------------------------------------------------------------------------


@PROPERTY
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_reads_back_as_the_same_float64(value: float) -> None:
    text = json_codec.dumps({"probability": value})
    back = json.loads(text)["probability"]
    assert struct.pack("<d", back) == struct.pack("<d", value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTY
@given(json_values)
def test_an_encoded_value_reads_back_as_the_standard_librarys(value: object) -> None:
    text = json_codec.dumps(value)
    assert text.isascii()
    assert same_value(json.loads(text), json.loads(json.dumps(value)))


@PROPERTY
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=4), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_without_floats_the_text_is_the_standard_librarys(value: object) -> None:
    assert json_codec.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_an_answer_holding_nan_is_still_refused(codec: str, bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        render(Shape.HTTP_V2, 200, {"probability": bad, "model_name": "churn"})


def test_an_answer_holding_none_is_written_as_before(codec: str) -> None:
    body = {"error": {"field": None, "message": "caf\u00e9"}, "n": 1}
    assert render(Shape.HTTP_V2, 400, body)["body"] == json.dumps(body, separators=(",", ":"))


@dataclasses.dataclass
class Point:
    x: int


class Kind(enum.StrEnum):
    A = "a"


@pytest.mark.parametrize(
    "value",
    [
        np.float64(0.25),
        np.int64(3),
        datetime.datetime(2026, 11, 25, 20, 0, tzinfo=datetime.UTC),
        datetime.date(2026, 11, 25),
        Point(1),
        Kind.A,
        2**70,
        "caf\u00e9",
        "\ud800",
        math.nan,
        {1: "an int key"},
        (1, 2.5),
    ],
    ids=repr,
)
def test_log_lines_keep_the_standard_librarys_text_for_other_types(
    codec: str, value: object
) -> None:
    record = {"message": "prediction", "value": value}
    assert logs._encode(record) == json.dumps(record, default=str, separators=(",", ":"))


# --- through the handler ----------------------------------------------------------------


def test_a_batch_answers_alike_with_and_without_orjson(
    serving: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = [valid_record() for _ in range(50)]
    for index, record in enumerate(records):
        record["monthly_charges"] = 20.0 + index * 1.37
    event = http_event(json.dumps({"instances": records}))
    fast = serving(event)
    monkeypatch.setattr(json_codec, "enabled", False)
    exact = serving(event)
    assert fast["statusCode"] == exact["statusCode"] == 200
    fast_body, exact_body = http_body(fast), http_body(exact)
    fast_body.pop("request_id"), exact_body.pop("request_id")
    assert same_value(fast_body, exact_body)
    lines = log_lines(capsys.readouterr().out, "prediction")
    assert [line["probabilities"] for line in lines[-2:]] == [
        [p["probability"] for p in exact_body["predictions"][:10]]
    ] * 2


def test_a_malformed_body_answers_alike_with_and_without_orjson(
    serving: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = []
    for hidden in (False, True):
        if hidden:
            monkeypatch.setattr(json_codec, "enabled", False)
        answers.append(
            [
                http_body(serving(http_event(body)))["error"]
                for body in ('{"tenure_months": 3,', '{"x": NaN}', '{"a": 1, "a": 2}')
            ]
        )
    assert answers[0] == answers[1]
    assert answers[0][0]["message"].startswith("request body is not valid JSON: Expecting")

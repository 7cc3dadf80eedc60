"""Answers and log lines stay small whatever arrives, and logs carry no request values.

Lambda refuses a response over 6 MB (the caller sees a 502 instead of our 400) and
CloudWatch Logs an event over 256 KB; the rule here is stricter: every error answer and
every log line under 64 KB (``inference.limits``) for any request Lambda accepts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference import limits
from serving import payload
from tests.handler.conftest import valid_record
from tests.reliability.conftest import Served, count_input, served_by_each_runtime, serving
from tests.reliability.strategies import ALL_SHAPES, NAMES, event_for, http_event, json_values

LIMIT = 64 * 1024
# What Lambda itself accepts: a 6 MB request. Bodies this big are parsed for real.
WIDE_BODY = payload.LAMBDA_PAYLOAD_LIMIT_BYTES
WIDE_BATCH = 1000


# The production defaults' batch size with the largest body Lambda lets through.
wide = served_by_each_runtime("wide", max_batch_size=WIDE_BATCH, max_body_bytes=WIDE_BODY)


def sizes(response: dict[str, Any], logged: str) -> tuple[int, list[int]]:
    """Bytes of the answer as Lambda sends it, and of each log line."""
    answer = len(json.dumps(response).encode())
    return answer, [len(line.encode()) for line in logged.splitlines()]


def assert_bounded(response: dict[str, Any], logged: str) -> None:
    answer, lines = sizes(response, logged)
    if response["statusCode"] != 200:
        assert answer < LIMIT, f"{response['statusCode']} answer of {answer} bytes"
    assert max(lines, default=0) < LIMIT, f"log line of {max(lines)} bytes"


# Long caller text, in the characters that JSON escaping multiplies most (\uXXXX, twice
# for an HTTP body): a few ASCII-looking ones, and non-ASCII ones.
long_text = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["a", '"', "\\", "\n", "é", "€", "\u2028", "😀"]) | st.characters(),
    st.integers(0, 300_000),
)
hostile_records = st.one_of(
    # one huge unknown key
    st.builds(lambda key, value: {**valid_record(), key: value}, long_text, json_values),
    # a huge value in a real field
    st.builds(
        lambda name, value: {**valid_record(), name: value}, st.sampled_from(NAMES), long_text
    ),
    # many unknown keys
    st.dictionaries(long_text, st.none(), max_size=30),
)
hostile_payloads = hostile_records | st.builds(
    lambda records: {"instances": records}, st.lists(hostile_records, min_size=1, max_size=40)
)


@given(shape=st.sampled_from(ALL_SHAPES), payload=hostile_payloads)
def test_answers_and_log_lines_stay_under_64_kb_whatever_the_input(
    wide: Served, shape: str, payload: Any
) -> None:
    count_input()
    event = event_for(shape, payload)
    if shape != "direct" and len(event["body"] or "") > WIDE_BODY:
        return  # Lambda refuses it before the handler runs
    response, logged = wide.invoke(event)
    assert_bounded(response, logged)


@given(
    content_type=long_text,
    method=long_text.filter(lambda text: text.upper() != "POST"),
    shape=st.sampled_from(["http-v2", "rest-v1"]),
)
def test_echoed_headers_and_methods_are_truncated(
    wide: Served, content_type: str, method: str, shape: str
) -> None:
    count_input()
    for event in (
        http_event(shape, "{}", headers={"content-type": content_type + "x"}),
        http_event(shape, "{}", method=method),
    ):
        response, logged = wide.invoke(event)
        assert response["statusCode"] in (400, 405)
        assert_bounded(response, logged)


def test_one_huge_non_ascii_unknown_key_is_a_small_400(wide: Served) -> None:
    # The audit's case: a ~1 MB request whose only fault is one unknown key of 300,000
    # non-ASCII characters got a 400 of 6-9 MB (the name echoed three times, escaped).
    key = "é" * 300_000
    for shape in ("http-v2", "direct"):
        response, logged = wide.invoke(event_for(shape, {**valid_record(), key: 1}))
        assert response["statusCode"] == 400
        assert_bounded(response, logged)
        body = json.loads(response["body"]) if shape != "direct" else response
        [detail] = body["error"]["details"]
        assert detail["field"].startswith("é" * limits.ECHO_MAX_CHARS)
        assert detail["field"].endswith(f"({300_000 - limits.ECHO_MAX_CHARS} more characters)")


def test_a_full_batch_of_bad_rows_is_capped_and_counts_what_it_left_out(wide: Served) -> None:
    key = "€" * 500  # 3 MB of escaped JSON in all: within Lambda's 6 MB
    rows = [{**valid_record(), key: 1, "tenure_months": "x"} for _ in range(WIDE_BATCH)]
    response, logged = wide.invoke(event_for("http-v2", {"instances": rows}))
    assert_bounded(response, logged)
    error = json.loads(response["body"])["error"]
    assert error["message"].endswith(f"(and {2 * WIDE_BATCH - 1} more problems)")
    assert len(error["details"]) <= limits.MAX_REPORTED_PROBLEMS
    assert len(error["details"]) + error["omitted_details"] == 2 * WIDE_BATCH


def test_logs_carry_kinds_and_truncated_names_never_rejected_values(wide: Served) -> None:
    secret = "jane.doe@example.com"
    long_name = "n" * 500
    record = {**valid_record(), "monthly_charges": secret, long_name: secret}
    response, logged = wide.invoke(event_for("http-v2", record))
    assert response["statusCode"] == 400
    assert secret in response["body"]  # the caller sees its own value, truncated
    assert secret not in logged
    assert long_name not in logged
    [line] = [json.loads(text) for text in logged.splitlines() if "request rejected" in text]
    assert {"field": "monthly_charges", "kind": "not_a_number"} in line["problems"]
    assert line["error_code"] == "invalid_input"


def test_a_large_batchs_prediction_log_line_stays_bounded() -> None:
    rows = [valid_record()] * 5000
    with serving("compiled", MAX_BATCH_SIZE="5000", MAX_BODY_BYTES=str(WIDE_BODY)) as warm:
        response, logged = warm.invoke(event_for("direct", {"instances": rows}))
    assert response["statusCode"] == 200 and len(response["predictions"]) == 5000
    assert_bounded(response, logged)
    [line] = [json.loads(text) for text in logged.splitlines() if '"prediction"' in text[:90]]
    assert len(line["probabilities"]) == limits.PREDICTION_LOG_MAX_ROWS
    assert line["rows_not_logged"] == 5000 - limits.PREDICTION_LOG_MAX_ROWS
    assert line["rows"] == 5000


def test_a_log_line_that_still_came_out_too_long_is_cut_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inference import logs

    logs.info("oversized", field="é" * 200_000, other=list(range(50_000)))
    [line] = capsys.readouterr().out.splitlines()
    assert len(line.encode()) < LIMIT
    record = json.loads(line)
    assert record["message"] == "oversized"
    assert record["log_truncated_from_bytes"] > LIMIT
    assert record["field"].endswith("more characters)")

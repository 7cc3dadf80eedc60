"""serving.insights.fetch pages past Logs Insights' 10,000-row limit by splitting the time
window, and says when rows were left out; under botocore's Stubber (the CloudWatch Logs
service model validates every call and answer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from serving.insights import MAX_ROWS, POLL_SECONDS, Window, fetch, query

GROUP = "/aws/lambda/fn"


@pytest.fixture
def logs() -> Iterator[tuple[Any, Stubber]]:
    session = boto3.Session(
        aws_access_key_id="t", aws_secret_access_key="t", region_name="eu-west-1"
    )
    client = session.client("logs")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def events(per_second: dict[int, int]) -> list[tuple[int, str]]:
    """(second, request id) of each capture record, one record per request."""
    return [(s, f"r{s}-{i}") for s, n in sorted(per_second.items()) for i in range(n)]


def result(request_id: str) -> list[dict[str, str]]:
    record = {"capture": 1, "request_id": request_id, "features": {"n": 1.0},
              "probability": 0.25}  # fmt: skip
    return [{"field": "@message", "value": json.dumps(record)}]


def expect(
    stubber: Stubber,
    log: list[tuple[int, str]],
    windows: list[tuple[int, int]],
    limit: int,
) -> None:
    """Each window's query, answered as the service does: the newest ``limit`` records."""
    for n, (start, end) in enumerate(windows):
        inside = sorted((e for e in log if start <= e[0] <= end), reverse=True)[:limit]
        stubber.add_response(
            "start_query", {"queryId": f"q{n}"},
            {"logGroupName": GROUP, "startTime": start, "endTime": end,
             "queryString": query("v1", limit), "limit": limit},
        )  # fmt: skip
        stubber.add_response(
            "get_query_results",
            {"status": "Complete", "results": [result(rid) for _, rid in inside]},
            {"queryId": f"q{n}"},
        )


def never() -> bool:
    return False


def test_a_window_over_the_limit_is_split_until_every_record_is_read(logs: Any) -> None:
    client, stubber = logs
    log = events({0: 1, 1: 1, 2: 2, 5: 3, 7: 2})  # 9 records, 4 per query
    # [0, 7] and [0, 3] return the limit and are halved; so is [4, 7] (5 records).
    windows = [(0, 7), (4, 7), (0, 3), (6, 7), (4, 5), (2, 3), (0, 1)]
    expect(stubber, log, windows, limit=4)
    rows = fetch(client, GROUP, "v1", Window(0, 7), expired=never, limit=4)
    assert sorted(rows.request_ids) == sorted(rid for _, rid in log)
    assert len(rows.request_ids) == 9 and rows.requests == 9
    assert not rows.truncated
    # Newest first, as a single query returns them.
    seconds = [int(rid[1:].split("-")[0]) for rid in rows.request_ids]
    assert seconds == sorted(seconds, reverse=True)


def test_a_window_under_the_limit_is_one_query(logs: Any) -> None:
    client, stubber = logs
    log = events({10: 3, 50: 3})
    expect(stubber, log, [(0, 59)], limit=MAX_ROWS)
    rows = fetch(client, GROUP, "v1", Window(0, 59), expired=never)
    assert len(rows.predictions) == 6 and not rows.truncated


def test_one_second_over_the_limit_cannot_be_split_and_says_truncated(logs: Any) -> None:
    client, stubber = logs
    log = events({100: MAX_ROWS + 1})
    expect(stubber, log, [(100, 100)], limit=MAX_ROWS)
    rows = fetch(client, GROUP, "v1", Window(100, 100), expired=never)
    assert len(rows.predictions) == MAX_ROWS and rows.truncated


def test_the_query_budget_keeps_every_part_of_the_window_and_says_truncated(
    logs: Any,
) -> None:
    client, stubber = logs
    # 4 records in every second: no query under the limit of 4 per query.
    log = events(dict.fromkeys(range(8), 4))
    # With 3 queries: the whole window, then each half once, each keeping its newest 4.
    expect(stubber, log, [(0, 7), (4, 7), (0, 3)], limit=4)
    rows = fetch(client, GROUP, "v1", Window(0, 7), expired=never, limit=4, max_queries=3)
    assert rows.truncated and len(rows.request_ids) == 8
    # Both halves are represented: the older half is not dropped for the newer.
    seconds = {int(rid[1:].split("-")[0]) for rid in rows.request_ids}
    assert seconds == {3, 7}


def test_both_sides_of_a_canary_get_the_same_budget(logs: Any) -> None:
    client, stubber = logs
    # The stable side has nine times the candidate's records over the same window.
    stable = events(dict.fromkeys(range(4), 9))
    candidate = events(dict.fromkeys(range(4), 1))
    expect(stubber, stable, [(0, 3), (2, 3), (0, 1)], limit=20)
    expect(stubber, candidate, [(0, 3)], limit=20)
    read = [
        fetch(client, GROUP, "v1", Window(0, 3), expired=never, limit=20)
        for _ in ("stable", "candidate")
    ]
    assert [len(r.request_ids) for r in read] == [36, 4]
    assert not any(r.truncated for r in read)


def test_the_deadline_stops_a_running_query(logs: Any) -> None:
    client, stubber = logs
    log = events({0: 5, 1: 5})
    expect(stubber, log, [(0, 1)], limit=4)  # over the limit: split
    stubber.add_response(
        "start_query", {"queryId": "late"},
        {"logGroupName": GROUP, "startTime": 1, "endTime": 1,
         "queryString": query("v1", 4), "limit": 4},
    )  # fmt: skip
    for _ in range(2):
        stubber.add_response("get_query_results", {"status": "Running", "results": []},
                             {"queryId": "late"})  # fmt: skip
    stubber.add_response("stop_query", {"success": True}, {"queryId": "late"})
    looks = iter([False, True])
    slept: list[float] = []
    with pytest.raises(TimeoutError, match="query late still Running; stopped it"):
        fetch(client, GROUP, "v1", Window(0, 1), expired=lambda: next(looks),
              sleep=slept.append, limit=4)  # fmt: skip
    # It waited once while in time, and was stopped at its first look past the deadline.
    assert slept == [POLL_SECONDS]


def test_a_failed_query_is_an_error(logs: Any) -> None:
    client, stubber = logs
    stubber.add_response(
        "start_query", {"queryId": "q"},
        {"logGroupName": GROUP, "startTime": 0, "endTime": 9,
         "queryString": query("v1"), "limit": MAX_ROWS},
    )  # fmt: skip
    stubber.add_response("get_query_results", {"status": "Failed"}, {"queryId": "q"})
    with pytest.raises(RuntimeError, match="query q ended Failed"):
        fetch(client, GROUP, "v1", Window(0, 9), expired=never)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit 0 is not a Logs Insights row limit"),
        ({"limit": MAX_ROWS + 1}, "limit 10001 is not"),
        ({"max_queries": 0}, "max_queries 0 is not allowed"),
        ({"window": Window(9, 3)}, r"window ends \(3\) before it starts \(9\)"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    window = kwargs.pop("window", Window(0, 9))
    with pytest.raises(ValueError, match=message):
        fetch(object(), GROUP, "v1", window, expired=never, **kwargs)

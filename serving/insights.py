"""Captured rows of one model version from the function's log group, by Logs Insights.

Why Logs Insights and not Athena over the capture bucket: the capture records are already
in the function's log group (the subscription copies them to the bucket), a query over an
hour of them scans only that hour's log events ($0.005 per GB scanned), and it needs no
Glue table, no Athena workgroup and no result bucket.

The service's limits (CloudWatch Logs documentation): a query returns at most 10,000 log
events when it names no larger limit ("If you omit limit, the query will return as many as
10,000 log events", CWL_QuerySyntax-Limit.html), and one GetQueryResults call returns at
most 10,000 ("The maximum events returned in a single GetQueryResults API call is 10,000",
the StartQuery API reference; newer SDKs accept up to 100,000 with ``nextToken`` paging,
which the Lambda base image's boto3 need not know). ``startTime`` and ``endTime`` are epoch
seconds and both inclusive (StartQuery API reference). So a query keeps the newest 10,000
records of its window, and ``fetch`` pages beyond that by time: a window whose query
returns the limit is split in two halves of whole seconds, each queried again, breadth
first, up to ``MAX_QUERIES`` queries (at most ``MAX_QUERIES`` x 10,000 rows). A window of
one second cannot be split; a window the query budget leaves unsplit keeps its newest
10,000 rows. Either way rows were left out and ``CapturedRows.truncated`` says so. Every
side of a canary is read with the same budget, so neither is cut before the other.

Used by the scheduled drift monitor and canary evaluator (lambda_src/monitors) and by
``python -m tools.drift --env E``.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Logs Insights returns at most this many rows per query.
MAX_ROWS = 10_000
# Queries one fetch may run, splitting its window (so at most 160,000 rows per side): a
# query over an hour of capture records takes seconds, and a monitor run has minutes.
MAX_QUERIES = 16
POLL_SECONDS = 1.0
DONE = frozenset({"Complete", "Failed", "Cancelled", "Timeout", "Unknown"})


@dataclass(frozen=True)
class Window:
    start: int  # epoch seconds
    end: int


@dataclass
class CapturedRows:
    # Numbers as floats; a categorical feature's value as the request sent it.
    features: list[dict[str, float | str | None]] = field(default_factory=list)
    # What each record predicted, per task: binary the probability of the positive class,
    # multiclass the class label answered, regression the value.
    predictions: list[Any] = field(default_factory=list)
    # The records' task ("binary", "multiclass", "regression"); None: no record read.
    task: str | None = None
    # Records that could not be read (bad JSON, missing fields, another task than the
    # first record's): counted, not used.
    skipped: int = 0
    # The request each row came from (its capture record's request_id), one per row: rows
    # of one request are correlated, so statistics count requests, not rows.
    request_ids: list[str] = field(default_factory=list)
    # True when the window held more records than were read (a query's row limit).
    truncated: bool = False

    @property
    def requests(self) -> int:
        """How many distinct requests the rows came from."""
        return len(set(self.request_ids))


def prediction_of(record: Mapping[str, Any]) -> tuple[str, Any]:
    """(task, prediction) of a capture record: the record's fields say its task
    (docs/capture-and-drift.md); ``ValueError``/``KeyError``/``TypeError`` when unreadable."""
    if "probability" in record:
        probability = float(record["probability"])
        if not 0 <= probability <= 1:
            raise ValueError(f"probability {probability} is not in [0, 1]")
        return "binary", probability
    label = record["prediction"]
    if "probabilities" in record:
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise TypeError(f"class label {label!r} is not a string or an integer")
        return "multiclass", label
    if isinstance(label, bool):
        raise TypeError("a regression prediction is a number")
    value = float(label)
    if not math.isfinite(value):
        raise ValueError(f"prediction {value} is not finite")
    return "regression", value


def _feature_value(value: Any) -> float | str | None:
    # None: a null of a nullable feature (drift counts it), not an unreadable record.
    return value if isinstance(value, str) or value is None else float(value)


# The capture record fields a query may select on.
SELECTABLE = ("model_version", "lambda_version")


def setting(env: Mapping[str, str], name: str) -> str:
    """A required setting of the monitor functions' environment (the stack sets them all)."""
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set: the stack sets it")
    return value


def query(value: str, limit: int = MAX_ROWS, field: str = "model_version") -> str:
    """The Logs Insights query: the capture records whose ``field`` is ``value``, newest first.

    ``field`` is ``model_version`` (drift: one model version) or ``lambda_version`` (the
    canary evaluator: one side of the alias).
    """
    return f"fields @message | {selection(value, field)} | sort @timestamp desc | limit {limit}"


def selection(value: str, field: str) -> str:
    """The filter every capture query starts from: capture records whose ``field`` is
    ``value`` (a version name, checked, since it is written into the query text)."""
    if field not in SELECTABLE:
        raise ValueError(f"field {field!r} is not one of {', '.join(SELECTABLE)}")
    if not value.replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"{field} {value!r} is not a version name (e.g. v2 or 7)")
    return f'filter capture = 1 and {field} = "{value}"'


def parse(results: list[list[Mapping[str, str]]]) -> CapturedRows:
    rows = CapturedRows()
    for result in results:
        message = next((f["value"] for f in result if f.get("field") == "@message"), None)
        try:
            record = json.loads(message or "")
            if not isinstance(record, dict) or not isinstance(record.get("features"), dict):
                raise TypeError("not a capture record with features")
            task, prediction = prediction_of(record)
            values = {str(k): _feature_value(v) for k, v in record["features"].items()}
            if rows.task is not None and task != rows.task:
                raise TypeError(f"a {task} record among {rows.task} ones")
        except (ValueError, TypeError, KeyError):
            rows.skipped += 1
            continue
        rows.task = task
        rows.features.append(values)
        rows.predictions.append(prediction)
        rows.request_ids.append(str(record.get("request_id", "")))
    return rows


def fetch(
    logs: Any,
    log_group: str,
    model_version: str,
    window: Window,
    *,
    expired: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    limit: int = MAX_ROWS,
    field: str = "model_version",
    max_queries: int = MAX_QUERIES,
) -> CapturedRows:
    """The window's capture records, paged by splitting the window where a query returned
    ``limit`` rows (module docstring); ``truncated`` when rows were left out.

    ``TimeoutError`` (after stopping the running query) when ``expired`` says so while a
    query runs; ``RuntimeError`` when a query fails.
    """
    results, truncated = _paged(
        logs, log_group, query(model_version, limit, field), window,
        expired=expired, sleep=sleep, limit=limit, max_queries=max_queries,
    )  # fmt: skip
    rows = parse(results)
    rows.truncated = truncated
    return rows


def _paged(
    logs: Any,
    log_group: str,
    text: str,
    window: Window,
    *,
    expired: Callable[[], bool],
    sleep: Callable[[float], None],
    limit: int,
    max_queries: int,
) -> tuple[list[list[Mapping[str, str]]], bool]:
    """Every result of ``text`` over ``window``, newest window first, split where a query
    returned ``limit`` rows; and whether rows were left out."""
    if not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"limit {limit} is not a Logs Insights row limit (1 to {MAX_ROWS})")
    if max_queries < 1:
        raise ValueError(f"max_queries {max_queries} is not allowed: at least 1")
    if window.end < window.start:
        raise ValueError(f"window ends ({window.end}) before it starts ({window.start})")
    pending = deque([window])
    kept: list[tuple[Window, list[list[Mapping[str, str]]]]] = []
    queries = 0
    truncated = False
    while pending:
        part = pending.popleft()
        results = run_query(logs, log_group, text, part, limit, expired, sleep)
        queries += 1
        if len(results) < limit:
            kept.append((part, results))
            continue
        # Splitting costs two more queries, on top of those already waiting.
        if part.end > part.start and queries + len(pending) + 2 <= max_queries:
            middle = (part.start + part.end) // 2
            pending.append(Window(middle + 1, part.end))  # newer half first
            pending.append(Window(part.start, middle))
        else:
            kept.append((part, results))
            truncated = True
    # Newest first, as one query would have returned them.
    kept.sort(key=lambda item: item[0].start, reverse=True)
    return [result for _, results in kept for result in results], truncated


# One result row per request (binary and multiclass: per request and predicted label), so
# a canary's requests fit a query where its rows do not: the rows of one request share one
# log event's timestamp, so a window split never cuts a request in two.
_REQUEST_STATS = {
    "binary": "stats count(*) as rows, avg(probability) as mean_probability, "
    "min(probability) as lowest by request_id, prediction",
    # count(probability): binary records among them, which a side of another task cannot
    # mean (count of a field counts the records that have it).
    "multiclass": "stats count(*) as rows, count(probability) as binary_rows "
    "by request_id, prediction",
    "regression": "stats count(*) as rows, avg(prediction) as mean_value, "
    "count(probability) as binary_rows by request_id",
}


@dataclass
class RequestAggregates:
    """Per request: its captured rows, and per summary column the sum over those rows
    (binary: rows predicted positive and the probabilities; regression: the values;
    multiclass: rows per predicted class label, as text)."""

    task: str
    rows: dict[str, int] = field(default_factory=dict)
    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    truncated: bool = False
    skipped: int = 0

    @property
    def requests(self) -> int:
        return len(self.rows)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def request_query(value: str, task: str, field: str = "lambda_version") -> str:
    """The Logs Insights query of ``value``'s capture records aggregated per request."""
    if task not in _REQUEST_STATS:
        raise ValueError(f"task {task!r} is not one of {', '.join(_REQUEST_STATS)}")
    return f"{selection(value, field)} | {_REQUEST_STATS[task]}"


def fetch_requests(
    logs: Any,
    log_group: str,
    value: str,
    task: str,
    window: Window,
    *,
    expired: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    field: str = "lambda_version",
    max_queries: int = MAX_QUERIES,
) -> RequestAggregates:
    """``value``'s capture records of ``window``, aggregated per request by Logs Insights,
    paged as ``fetch`` pages (``truncated`` when requests were left out)."""
    results, truncated = _paged(
        logs, log_group, request_query(value, task, field), window,
        expired=expired, sleep=sleep, limit=MAX_ROWS, max_queries=max_queries,
    )  # fmt: skip
    aggregates = parse_requests(results, task)
    aggregates.truncated = truncated
    return aggregates


def parse_requests(
    results: list[list[Mapping[str, str]]], task: str, threshold: float = 0.5
) -> RequestAggregates:
    """The per-request query's results; a result that cannot be read is counted, not used.

    Binary: a group's rows all carry one predicted label, positive when the probability is
    at least ``threshold`` (the handler's rule), so the group is positive when its lowest
    probability is.
    """
    aggregates = RequestAggregates(task)
    for result in results:
        found = {str(f.get("field")): str(f.get("value", "")) for f in result}
        try:
            request, rows = found["request_id"], int(found["rows"])
            if not request or rows < 1:
                raise ValueError("no request id or no rows")
            if int(found.get("binary_rows") or 0):
                raise ValueError(f"binary records read as {task} ones")
            added: dict[str, float]
            if task == "binary":
                mean, lowest = float(found["mean_probability"]), float(found["lowest"])
                if not (0 <= lowest <= mean <= 1):
                    raise ValueError(f"probabilities {lowest}, {mean} are not in [0, 1]")
                added = {
                    "positive share": rows if lowest >= threshold else 0,
                    "mean probability": mean * rows,
                }
            elif task == "regression":
                value = float(found["mean_value"])
                if not math.isfinite(value):
                    raise ValueError(f"mean value {value} is not finite")
                added = {"mean value": value * rows}
            else:
                added = {found["prediction"]: rows}
        except (KeyError, ValueError):
            aggregates.skipped += 1
            continue
        sums = aggregates.sums.setdefault(request, {})
        for column, amount in added.items():
            sums[column] = sums.get(column, 0.0) + amount
        aggregates.rows[request] = aggregates.rows.get(request, 0) + rows
    return aggregates


def run_query(
    logs: Any,
    log_group: str,
    text: str,
    window: Window,
    limit: int,
    expired: Callable[[], bool],
    sleep: Callable[[float], None],
) -> list[list[Mapping[str, str]]]:
    """One query's results; ``TimeoutError`` (after stopping it) when out of time."""
    started = logs.start_query(
        logGroupName=log_group,
        startTime=window.start,
        endTime=window.end,
        queryString=text,
        limit=limit,
    )
    query_id = started["queryId"]
    while True:
        answer = logs.get_query_results(queryId=query_id)
        status = answer["status"]
        if status == "Complete":
            results: list[list[Mapping[str, str]]] = answer.get("results", [])
            return results
        if status in DONE:
            raise RuntimeError(f"Logs Insights query {query_id} ended {status}")
        if expired():
            logs.stop_query(queryId=query_id)
            raise TimeoutError(f"Logs Insights query {query_id} still {status}; stopped it")
        sleep(POLL_SECONDS)

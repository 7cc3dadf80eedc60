"""Captured rows of one model version from the function's log group, by Logs Insights.

Why Logs Insights and not Athena over the capture bucket: the capture records are already
in the function's log group (the subscription copies them to the bucket), a query over an
hour of them scans only that hour's log events ($0.005 per GB scanned), and it needs no
Glue table, no Athena workgroup and no result bucket. Its limit is 10,000 rows per query:
the monitor judges drift on at most that many captured rows per window (PSI over ten
deciles is stable long before that), and says how many it used.

Used by the scheduled drift monitor (lambda_src/monitors) and by
``python -m tools.drift --env E``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Logs Insights returns at most this many rows per query.
MAX_ROWS = 10_000
POLL_SECONDS = 1.0
DONE = frozenset({"Complete", "Failed", "Cancelled", "Timeout", "Unknown"})


@dataclass(frozen=True)
class Window:
    start: int  # epoch seconds
    end: int


@dataclass
class CapturedRows:
    # Numbers as floats; a categorical feature's value as the request sent it.
    features: list[dict[str, float | str]] = field(default_factory=list)
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


def _feature_value(value: Any) -> float | str:
    return value if isinstance(value, str) else float(value)


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
    if field not in SELECTABLE:
        raise ValueError(f"field {field!r} is not one of {', '.join(SELECTABLE)}")
    if not value.replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"{field} {value!r} is not a version name (e.g. v2 or 7)")
    return (
        f"fields @message | filter capture = 1 and {field} = "
        f'"{value}" | sort @timestamp desc | limit {limit}'
    )


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
) -> CapturedRows:
    """Run the query and wait for it; ``TimeoutError`` (after stopping it) when out of time."""
    started = logs.start_query(
        logGroupName=log_group,
        startTime=window.start,
        endTime=window.end,
        queryString=query(model_version, limit, field),
        limit=limit,
    )
    query_id = started["queryId"]
    while True:
        answer = logs.get_query_results(queryId=query_id)
        status = answer["status"]
        if status == "Complete":
            return parse(answer.get("results", []))
        if status in DONE:
            raise RuntimeError(f"Logs Insights query {query_id} ended {status}")
        if expired():
            logs.stop_query(queryId=query_id)
            raise TimeoutError(f"Logs Insights query {query_id} still {status}; stopped it")
        sleep(POLL_SECONDS)

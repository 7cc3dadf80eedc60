"""Capture records: what a model version saw and answered, one log line per captured row.

The handler writes these lines to its own log stream (no network call on the request
path); a CloudWatch Logs subscription filter with ``FILTER_PATTERN`` selects them for
delivery to the capture bucket. Every record carries ``"capture": 1`` at the top level and
no ordinary log line has a ``capture`` key, so the pattern selects exactly these lines,
and a Logs Insights query that reads the ordinary lines leaves them out with
``filter ispresent(capture) = 0``. The records hold customer data (the features of each
request): capture is switched per environment and sampled.

Pure functions, standard library only (the image ships no pandas): the handler decides
whether a request is sampled (``is_sampled``), then writes each of ``records(...)``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

CAPTURE_FIELD = "capture"
CAPTURE_MARKER = 1
# The subscription filter pattern (CloudWatch Logs JSON filter syntax); the stack passes
# it as FilterPattern.literal(FILTER_PATTERN), or builds the same string with
# FilterPattern.number_value("$.capture", "=", 1).
FILTER_PATTERN = "{ $.capture = 1 }"
RECORD_FORMAT = "capture/1"
# The handler's rule for any log line (CloudWatch Logs refuses events over 256 KB, and a
# huge line is useless to read): a capture line is smaller than this, measured as the
# handler writes it (compact JSON, non-ASCII escaped).
MAX_RECORD_BYTES = 64 * 1024
# Rows captured from one request at most: a 10,000-row batch must not write 10,000 lines.
DEFAULT_MAX_ROWS = 100
# One log line per captured row: the handler and the stack allow at most this many.
MAX_ROWS_PER_REQUEST = 1000


def check_rate(rate: float) -> float:
    """``rate`` itself when it is a sampling rate in [0, 1], else ``ValueError`` naming it."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ValueError(f"capture sampling rate must be a number in [0, 1], got {rate!r}")
    return float(rate)


def parse_rate(text: str, name: str = "CAPTURE_SAMPLING_RATE") -> float:
    """A rate from configuration text ("0", "0.05", "1"); ``ValueError`` names the setting."""
    try:
        rate = float(text.strip())
    except ValueError:
        rate = math.nan
    if not 0 <= rate <= 1:
        raise ValueError(f"{name} must be a number in [0, 1] (0 turns capture off), got {text!r}")
    return rate


def sampling_point(request_id: str) -> float:
    """A number in [0, 1) fixed by the request id (SHA-256): the same id, the same point."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_sampled(request_id: str, rate: float) -> bool:
    """Whether this request is captured; deterministic, so a retry and a replay agree.

    Rate 0 captures nothing, rate 1 everything; in between, a request is captured when its
    ``sampling_point`` is below the rate, so raising the rate keeps every request that was
    captured before.
    """
    return sampling_point(request_id) < check_rate(rate)


def captured_rows(total: int, max_rows: int) -> list[int]:
    """Indices of the rows to capture: all of them, or ``max_rows`` spread evenly.

    Evenly spread rather than the first ones: a batch sorted by some column (tenure, say)
    still yields rows from its whole range.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows}")
    if total <= max_rows:
        return list(range(total))
    return [index * total // max_rows for index in range(max_rows)]


def records(
    *,
    request_id: str,
    timestamp: datetime,
    model_name: str,
    model_version: str,
    lambda_version: str,
    feature_names: Sequence[str],
    rows: Sequence[Sequence[float]],
    probabilities: Sequence[float] | None = None,
    predictions: Sequence[Any] | None = None,
    row_fields: Callable[[int], Mapping[str, Any]] | None = None,
    categories: Sequence[Sequence[Any] | None] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    unknown: Mapping[tuple[int, int], Any] | None = None,
) -> list[dict[str, Any]]:
    """One capture record per captured row of a request (``rows``: validated features).

    A row's answer comes from ``row_fields(index)`` (the task's fields: ``prediction``,
    and ``probability`` or ``probabilities``), or for a binary model from
    ``probabilities`` and ``predictions``. ``categories`` lists, per feature, a categorical
    feature's values (None for a numeric one): the record holds the request's value, not
    the code the model read. A null (NaN) is recorded as null; a passed unknown category
    (a negative code) as the request's value, from ``unknown`` by (row, column)
    (``ValueError`` when it is not there: a record never names another category).

    Each record says how many rows the request had and how many were captured, so a
    consumer can tell a sampled-down batch from a small one. A record that would reach
    ``MAX_RECORD_BYTES`` (a model with thousands of features) keeps everything but its
    features, which become null with ``features_omitted_bytes`` saying how large they were.
    """
    if row_fields is None:
        if probabilities is None or predictions is None:
            raise ValueError("records() needs row_fields, or probabilities and predictions")
        if not len(rows) == len(probabilities) == len(predictions):
            raise ValueError(
                f"rows ({len(rows)}), probabilities ({len(probabilities)}) and predictions "
                f"({len(predictions)}) must have one entry per row"
            )
        binary_probabilities, binary_predictions = probabilities, predictions

        def row_fields(index: int) -> Mapping[str, Any]:
            return {
                "probability": float(binary_probabilities[index]),
                "prediction": int(binary_predictions[index]),
            }

    if categories is not None and len(categories) != len(feature_names):
        raise ValueError(
            f"categories has {len(categories)} entries for {len(feature_names)} features"
        )
    if timestamp.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got {timestamp.isoformat()}")
    when = timestamp.astimezone(UTC)
    indices = captured_rows(len(rows), max_rows)
    kinds = categories if categories is not None else [None] * len(feature_names)
    out = []
    for index in indices:
        values = rows[index]
        if len(values) != len(feature_names):
            raise ValueError(
                f"row {index} has {len(values)} values for {len(feature_names)} features"
            )
        record: dict[str, Any] = {
            CAPTURE_FIELD: CAPTURE_MARKER,
            "format": RECORD_FORMAT,
            "request_id": request_id,
            "row": index,
            "rows_in_request": len(rows),
            "rows_captured": len(indices),
            "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            # The delivery stream partitions by model, version and this date.
            "date": when.date().isoformat(),
            "model_name": model_name,
            "model_version": model_version,
            "lambda_version": lambda_version,
            "features": {
                name: _json_number(value)
                if allowed is None
                else _category(allowed, value, index, column, unknown, name)
                for column, (name, value, allowed) in enumerate(
                    zip(feature_names, values, kinds, strict=True)
                )
            },
            **row_fields(index),
        }
        out.append(_bounded(record))
    return out


def encode(record: dict[str, Any]) -> str:
    """The record as the handler's log writer puts it on one line."""
    return json.dumps(record, default=str, separators=(",", ":"))


def _bounded(record: dict[str, Any]) -> dict[str, Any]:
    size = len(encode(record))
    if size < MAX_RECORD_BYTES:
        return record
    features_size = len(encode(record["features"]))
    return {**record, "features": None, "features_omitted_bytes": features_size}


def _category(
    allowed: Sequence[Any],
    code: float,
    row: int,
    column: int,
    unknown: Mapping[tuple[int, int], Any] | None,
    name: str,
) -> Any:
    """The request's value of a categorical feature from its code in the model's matrix."""
    if math.isnan(code):
        return None  # a null of a nullable feature
    if code < 0:
        # A passed unknown category: its value is not in ``allowed`` (allowed[-1] would
        # silently name the last listed value instead).
        if unknown is None or (row, column) not in unknown:
            raise ValueError(f"row {row}, feature {name!r}: an unknown category without its value")
        return unknown[(row, column)]
    return allowed[int(code)]


def _json_number(value: float) -> float | int | None:
    number = float(value)
    if not math.isfinite(number):
        # Validation admits finite numbers only; a NaN here would make the line invalid JSON.
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else number

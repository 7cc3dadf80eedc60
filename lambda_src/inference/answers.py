"""A runtime's outputs in each form the handler writes, per task: the caller's answer, the
prediction log line's bounded fields, the EMF metric, and each captured row's fields.

The runtime's outputs are checked first: a wrong shape or an impossible value is a bug in
the runtime (a 500), never an answer.

* binary: ``{"prediction": classes[1] if p >= 0.5 else classes[0], "probability": p}``;
  churn's (classes 0 and 1) is the answer the first versions gave, byte for byte.
* multiclass: ``{"prediction": classes[argmax], "probabilities": {str(c): p, ...}}``,
  keys in class order, the first class on a tie.
* regression: ``{"prediction": value}``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference import metrics, summaries
from inference.limits import LAMBDA_PAYLOAD_LIMIT_BYTES, PREDICTION_LOG_MAX_ROWS
from inference.tasks import TASKS

THRESHOLD = 0.5
# A multiclass row's probabilities sum to 1 within this (the runtime protocol's promise).
ROW_SUM_TOLERANCE = 1e-6
# The multiclass log line counts at most this many predicted classes (the most frequent).
LOG_MAX_CLASSES = 20
# A 200 answer must fit Lambda's response limit, less room for the identity envelope.
ANSWER_LIMIT_BYTES = LAMBDA_PAYLOAD_LIMIT_BYTES - 4096
# The widest number an answer holds, as limits.PREDICTION_ANSWER_BYTES counts it for churn
# (a regression value may be wider: a bound for the usual cases, not a guarantee).
_WIDE_PROBABILITY = 1.2345678901234567e-05
_WIDE_VALUE = -1.2345678901234567e-05


@functools.lru_cache(maxsize=16)
def max_answer_rows(task: str, classes: tuple[Any, ...] | None) -> int:
    """The most rows whose answer fits ``ANSWER_LIMIT_BYTES`` as Lambda serializes an HTTP
    body (a JSON string: every quote escaped). The stack bounds MAX_BATCH_SIZE for churn's
    answer; a model with many or long class labels answers more bytes a row, and a batch
    over this bound would be Lambda's 502, not a 413 the caller can act on."""
    labels = list(classes) if classes else [0]
    widest = max(labels, key=lambda label: len(json.dumps(label)))
    row: dict[str, Any]
    if task == "multiclass":
        row = {"prediction": widest, "probabilities": {str(c): _WIDE_PROBABILITY for c in labels}}
    elif task == "regression":
        row = {"prediction": _WIDE_VALUE}
    else:
        row = {"prediction": widest, "probability": _WIDE_PROBABILITY}
    entry = json.dumps(row, separators=(",", ":")) + ","
    row_bytes = len(json.dumps(entry)) - 2
    return max(1, ANSWER_LIMIT_BYTES // row_bytes)


@dataclass(frozen=True)
class Answers:
    rows: int
    # The answer's prediction part: one record's fields, or {"predictions": [...]}.
    body: dict[str, Any]
    # Bounded whatever the batch size: aggregates over every row and the first rows.
    log_fields: dict[str, object]
    metric: metrics.Metric
    # The capture record's fields of one row, by index (called for captured rows only).
    row_fields: Callable[[int], dict[str, Any]]


def answers(
    task: str, classes: Sequence[Any] | None, outputs: object, *, rows: int, batch: bool
) -> Answers:
    """Check ``outputs`` (what the runtime returned for ``rows`` rows) and turn it into every
    form."""
    array = np.asarray(outputs, dtype=np.float64)
    if array.ndim == 0 or array.shape[0] != rows:
        raise RuntimeError(f"runtime returned outputs of shape {array.shape} for {rows} rows")
    if task == "binary":
        return _binary(tuple(classes) if classes is not None else (0, 1), array, batch)
    if task == "multiclass":
        if not classes:
            raise RuntimeError("a multiclass model without classes")
        return _multiclass(tuple(classes), array, batch)
    if task == "regression":
        return _regression(array, batch)
    raise RuntimeError(f"model task {task!r} is not one of {', '.join(TASKS)}")


def _wrap(rows: list[dict[str, Any]], batch: bool) -> dict[str, Any]:
    return {"predictions": rows} if batch else rows[0]


def _sample(rows: int) -> dict[str, object]:
    return (
        {"rows_not_logged": rows - PREDICTION_LOG_MAX_ROWS}
        if rows > PREDICTION_LOG_MAX_ROWS
        else {}
    )


def _binary(classes: tuple[Any, ...], proba: NDArray[np.float64], batch: bool) -> Answers:
    if len(classes) != 2:
        raise RuntimeError(f"a binary model with {len(classes)} classes")
    if proba.ndim != 1 or not np.all((proba >= 0.0) & (proba <= 1.0)):
        raise RuntimeError(
            f"runtime returned probabilities of shape {proba.shape}, "
            f"min {np.nanmin(proba) if proba.size else None}: expected (n,) in [0, 1]"
        )
    positive = proba >= THRESHOLD
    # tolist() converts in C: float and int objects for the answer and the log sample.
    probabilities: list[float] = proba.tolist()
    labels: list[Any]
    if all(type(c) is int for c in classes) and list(classes) == [0, 1]:
        labels = positive.astype(np.int8).tolist()
    else:
        negative_label, positive_label = classes
        labels = [positive_label if p else negative_label for p in positive.tolist()]
    if batch:
        body: dict[str, Any] = {
            "predictions": [
                {"prediction": label, "probability": p}
                for label, p in zip(labels, probabilities, strict=True)
            ],
        }
    else:
        body = {"prediction": labels[0], "probability": probabilities[0]}
    shown = PREDICTION_LOG_MAX_ROWS
    return Answers(
        rows=len(labels),
        body=body,
        log_fields={
            **summaries.log_fields(proba, positive),
            "probabilities": probabilities[:shown],
            "predictions": labels[:shown],
            **_sample(len(labels)),
        },
        metric=metrics.Metric(
            "PredictionProbability", metrics.NONE, summaries.metric_values(proba)
        ),
        row_fields=lambda i: {"probability": probabilities[i], "prediction": labels[i]},
    )


def _multiclass(classes: tuple[Any, ...], proba: NDArray[np.float64], batch: bool) -> Answers:
    k = len(classes)
    if proba.ndim != 2 or proba.shape[1] != k:
        raise RuntimeError(
            f"runtime returned probabilities of shape {proba.shape} for {k} classes: "
            f"expected (n, {k})"
        )
    in_range = np.all((proba >= 0.0) & (proba <= 1.0))
    if not in_range or not np.all(np.abs(proba.sum(axis=1) - 1.0) <= ROW_SUM_TOLERANCE):
        raise RuntimeError(
            "runtime returned probability rows outside [0, 1] or not summing to 1 "
            f"(row sums from {np.nanmin(proba.sum(axis=1))} to {np.nanmax(proba.sum(axis=1))})"
        )
    winners = proba.argmax(axis=1)  # the first column on a tie
    confidence = proba[np.arange(proba.shape[0]), winners]
    labels = [classes[index] for index in winners.tolist()]
    keys = [str(c) for c in classes]
    rows: list[list[float]] = proba.tolist()
    answer_rows = [
        {"prediction": label, "probabilities": dict(zip(keys, row, strict=True))}
        for label, row in zip(labels, rows, strict=True)
    ]
    counts = np.bincount(winners, minlength=k)
    predicted = np.flatnonzero(counts)
    # Most frequent first; a stable sort keeps class order among equal counts.
    kept = predicted[np.argsort(-counts[predicted], kind="stable")][:LOG_MAX_CLASSES]
    shown = PREDICTION_LOG_MAX_ROWS
    fields: dict[str, object] = {
        "class_counts": {keys[index]: int(counts[index]) for index in kept.tolist()},
        **(
            {"classes_not_logged": int(predicted.size - kept.size)}
            if predicted.size > kept.size
            else {}
        ),
        **summaries.spread(confidence, "confidence"),
        "confidences": confidence[:shown].tolist(),
        "predictions": labels[:shown],
        **_sample(len(labels)),
    }
    return Answers(
        rows=len(labels),
        body=_wrap(answer_rows, batch),
        log_fields=fields,
        metric=metrics.Metric(
            "PredictionConfidence", metrics.NONE, summaries.metric_values(confidence)
        ),
        row_fields=lambda i: {"prediction": labels[i], "probabilities": rows[i]},
    )


def _regression(predicted: NDArray[np.float64], batch: bool) -> Answers:
    if predicted.ndim != 1 or not np.all(np.isfinite(predicted)):
        raise RuntimeError(
            f"runtime returned values of shape {predicted.shape}"
            f"{'' if predicted.ndim != 1 else ' with a non-finite one'}: expected (n,) finite"
        )
    values: list[float] = predicted.tolist()
    shown = PREDICTION_LOG_MAX_ROWS
    return Answers(
        rows=len(values),
        body=_wrap([{"prediction": value} for value in values], batch),
        log_fields={
            **summaries.spread(predicted, "value", quantiles={"p50": 0.5}, digits=None),
            "predictions": values[:shown],
            **_sample(len(values)),
        },
        metric=metrics.Metric("PredictionValue", metrics.NONE, summaries.metric_values(predicted)),
        row_fields=lambda i: {"prediction": values[i]},
    )

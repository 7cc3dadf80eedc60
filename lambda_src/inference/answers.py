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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference import json_codec, metrics, summaries
from inference.events import Shape
from inference.limits import PREDICTION_LOG_MAX_ROWS
from inference.responses import payload_bytes, render
from serving.payload import LAMBDA_PAYLOAD_LIMIT_BYTES
from serving.tasks import TASKS

THRESHOLD = 0.5
# A multiclass row's probabilities sum to 1 within this (the runtime protocol's promise).
ROW_SUM_TOLERANCE = 1e-6
# The multiclass log line counts at most this many predicted classes (the most frequent).
LOG_MAX_CLASSES = 20
# A 200 answer, as Lambda's runtime client encodes the handler's return value (envelope
# included, counted per request by max_answer_rows), must fit Lambda's response limit.
ANSWER_LIMIT_BYTES = LAMBDA_PAYLOAD_LIMIT_BYTES
# The widest numbers an answer can hold, in both encoders (json_codec.encoders()): a float64
# has at most 17 significant digits and a 3-digit exponent, so "repr" writes at most 24
# characters, 23 without a sign; orjson's fixed notation ("0.000012345678901234568") is
# no wider. In [0.5, 1) doubles are 2**-53 apart, more than 1e-16, so 16 decimals always
# round-trip: 18 characters. tests/reliability/test_answer_size.py checks every exponent
# and sign, subnormals and hypothesis' floats against these.
WIDEST_PROBABILITY = 1.2345678901234567e-100  # 23 characters, the most in [0, 1]
WIDEST_POSITIVE = 0.5000000000000001  # 18 characters, the most in [0.5, 1]
WIDEST_VALUE = -1.2345678901234567e-100  # 24 characters, the most of any finite float


# A row's explanation when one is asked for: its space and the schema's feature names
# (inference.explanations.answer_fields).
Explained = tuple[str, tuple[str, ...]]


def max_answer_rows(
    task: str,
    classes: tuple[Any, ...] | None,
    shape: Shape,
    envelope: Mapping[str, Any],
    explained: Explained | None = None,
) -> int:
    """The most rows whose 200 answer fits ``ANSWER_LIMIT_BYTES`` whatever the model outputs
    (0: not even one). ``envelope`` holds the answer's fields besides the predictions (model
    identity and request id), in the handler's order; it is counted exactly, through the
    real response shaping, so the bound is exact up to the rows' widest values.
    ``explained``: each row also carries an explanation of that space and those features."""
    empty = payload_bytes(render(shape, 200, {"predictions": [], **envelope}))
    return max(0, (ANSWER_LIMIT_BYTES - empty) // row_bytes(task, classes, shape, explained))


@functools.lru_cache(maxsize=16)
def row_bytes(
    task: str, classes: tuple[Any, ...] | None, shape: Shape, explained: Explained | None = None
) -> int:
    """The most bytes one row (and its separator) adds to a batch's answer as Lambda sends
    it: worst-case rows (the widest label with the widest numbers it can come with),
    measured through the real response shaping and each body encoder, not counted by hand.

    An HTTP answer's body is a JSON string inside Lambda's response, so each quote and
    backslash in it is sent twice; a direct answer is encoded once, with ", " and ": ".
    Rows differ only in their label and numbers, each no wider than a worst row's, and a
    batch of n rows is its n rows and n - 1 separators: n times this bounds it.

    An explanation adds the same keys to every row (its space, each feature's name and,
    for a multiclass model, each class label), and numbers: any finite float, so each is
    counted as ``WIDEST_VALUE``. Its size grows with features times classes alone."""
    widest = 0
    encoders = json_codec.encoders()
    for encode in encoders:
        try:
            for row in _worst_rows(task, classes, shape, encode):
                if explained is not None:
                    row = {**row, "explanation": _worst_explanation(task, classes, explained)}
                widest = max(widest, _size(shape, row, 2, encode) - _size(shape, row, 1, encode))
        except TypeError:
            if encode is encoders[-1]:
                raise  # the standard library cannot either: no answer could be written
            # orjson cannot encode these labels: dumps writes them the other way.
    return widest


def _size(shape: Shape, row: dict[str, Any], rows: int, encode: Callable[[object], str]) -> int:
    body = {"predictions": [row] * rows}
    return payload_bytes(render(shape, 200, body, encode=encode))


def _worst_rows(
    task: str, classes: tuple[Any, ...] | None, shape: Shape, encode: Callable[[object], str]
) -> list[dict[str, Any]]:
    if task == "regression":
        return [{"prediction": WIDEST_VALUE}]
    labels = classes if classes else (0, 1)
    if task == "binary":
        # A probability below 0.5 answers the first class, from 0.5 the second.
        negative, positive = labels[0], labels[-1]
        return [
            {"prediction": negative, "probability": WIDEST_PROBABILITY},
            {"prediction": positive, "probability": WIDEST_POSITIVE},
        ]

    def width(label: Any) -> int:
        # The label as this shape sends it: once in a direct answer, twice for HTTP.
        return payload_bytes(label if shape is Shape.DIRECT else encode(label))

    keys = dict.fromkeys((str(c) for c in labels), WIDEST_PROBABILITY)
    # Any class can win every row (its column near 1, the rest tiny), so the widest label.
    return [{"prediction": max(labels, key=width), "probabilities": keys}]


def _worst_explanation(
    task: str, classes: tuple[Any, ...] | None, explained: Explained
) -> dict[str, Any]:
    space, features = explained
    if task != "multiclass":
        return {
            "space": space,
            "base": WIDEST_VALUE,
            "contributions": dict.fromkeys(features, WIDEST_VALUE),
        }
    per_class = dict.fromkeys((str(c) for c in classes or ()), WIDEST_VALUE)
    return {
        "space": space,
        "base": per_class,
        "contributions": {feature: per_class for feature in features},
    }


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

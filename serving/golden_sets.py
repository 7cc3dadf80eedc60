"""A golden set (``golden.json``) as the traffic gate reads it, in pure Python.

What model it belongs to (``Kind``: task and classes), its rows as the request instances
callers send, and the answers recorded for each runtime (``Answers``), which a version must
give again. ``GateError`` is the gate's one failure: a golden set it cannot read, models it
cannot compare, a version whose answers it cannot use. Standard library only: the deployed
gate runs on Lambda's Python runtime, which has no numpy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving.tasks import TASKS

GOLDEN_FORMAT = "golden-set/1"
# Golden sets written before tasks: binary over the classes 0 and 1.
DEFAULT_CLASSES = [0, 1]


class GateError(Exception):
    """The gate could not run (bad golden set, failed invocation); the message says why."""


@dataclass(frozen=True)
class Kind:
    """What a golden set's model is: its task and class labels (None for regression)."""

    task: str
    classes: tuple[Any, ...] | None

    def describe(self) -> str:
        if self.classes is None:
            return f"a {self.task} model"
        return f"a {self.task} model over the classes {json.dumps(list(self.classes))}"


BINARY = Kind("binary", (0, 1))


def kind_of(golden: Mapping[str, Any]) -> Kind:
    task = golden.get("task", "binary")
    if task not in TASKS:
        raise GateError(f"golden set task {task!r} is not one of {', '.join(TASKS)}")
    if task == "regression":
        return Kind(task, None)
    classes = golden.get("classes", DEFAULT_CLASSES)
    if not isinstance(classes, list) or len(classes) < 2:
        raise GateError(f"golden set classes {classes!r} are not a list of class labels")
    return Kind(task, tuple(classes))


def same_kind(candidate: Kind, stable: Kind) -> None:
    """A model is compared only with a model of the same task and classes: its figures
    mean something else otherwise (and its answers have another shape)."""
    if candidate != stable:
        raise GateError(
            f"the candidate is {candidate.describe()} but the stable model is "
            f"{stable.describe()}: the gate compares models of one task and one set of "
            "classes; deploy the new model under its own name instead"
        )


def class_indices(y: Sequence[Any], classes: Sequence[Any]) -> list[int]:
    lookup = {_label_key(c): i for i, c in enumerate(classes)}
    try:
        return [lookup[_label_key(v)] for v in y]
    except KeyError as error:
        raise GateError(
            f"the golden set's label {error.args[0][1]!r} is not one of the classes "
            f"{json.dumps(list(classes))}"
        ) from None


def _label_key(value: Any) -> tuple[str, Any]:
    # The string "1" and the integer 1 are different labels.
    return ("str", value) if isinstance(value, str) else ("num", float(value))


@dataclass(frozen=True)
class Answers:
    """A side's answers on golden rows: ``outputs`` as the runtime's ``outputs`` (binary:
    P(classes[1]); multiclass: probability rows in class order; regression: values) and
    the labels it answered (None for regression)."""

    outputs: list[Any]
    labels: list[Any] | None


def recorded_answers(golden: Mapping[str, Any], runtime: str) -> Answers:
    """The answers ``golden`` records for ``runtime``: what the tested artifact gave."""
    if golden.get("format") != GOLDEN_FORMAT:
        raise GateError(f"golden set format is {golden.get('format')!r}, expected {GOLDEN_FORMAT}")
    kind = kind_of(golden)
    predictions = golden.get("predictions", {})
    if runtime not in predictions:
        raise GateError(
            f"the golden set records no answers for runtime {runtime!r}: it has "
            f"{', '.join(sorted(predictions)) or 'none'}"
        )
    entry = predictions[runtime]
    if kind.task == "regression":
        return Answers([float(v) for v in entry["values"]], None)
    if kind.task == "multiclass":
        return Answers([[float(p) for p in row] for row in entry["probabilities"]], entry["labels"])
    return Answers([float(p) for p in entry["probabilities"]], list(entry["labels"]))


def instances(golden: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The golden set's rows as request instances (see ``rows_as_instances``)."""
    return rows_as_instances(
        golden["feature_names"], golden["features"], golden.get("categories") or {}
    )


def rows_as_instances(
    feature_names: Sequence[str],
    rows: Sequence[Sequence[float]],
    categories: Mapping[str, Sequence[str | int]],
) -> list[dict[str, Any]]:
    """Encoded rows as request instances: integers kept as integers, categorical codes
    (positions in the feature's values) turned back into the values callers send."""

    def value(name: str, code: float | None) -> Any:
        if code is None or code != code:
            return None  # a nullable feature's missing value (null in golden.json)
        if name in categories:
            return categories[name][int(code)]
        return int(code) if float(code).is_integer() else float(code)

    return [
        {name: value(name, code) for name, code in zip(feature_names, row, strict=True)}
        for row in rows
    ]


# A version's training rows as a Bloom filter (training/training_rows.py writes it into
# the manifest and the golden set): SHA-256 of each row's big-endian float64 features and
# its label, bit positions h1 + i * h2 (mod bits) from the digest's first two 64-bit words.
ROWS_FORMAT = "bloom-sha256/1"


def row_digest(features: Sequence[float], label: Any) -> bytes:
    # null (a missing value) hashes as numpy's NaN, the matrix training hashed.
    encoded = struct.pack(
        f">{len(features)}d", *(float("nan") if v is None else float(v) + 0.0 for v in features)
    )
    if isinstance(label, str):
        encoded += b"s" + label.encode()
    else:
        encoded += b"n" + struct.pack(">d", float(label) + 0.0)
    return hashlib.sha256(encoded).digest()


def trained_on(record: Any, rows: Sequence[Sequence[float]], labels: Sequence[Any]) -> list[bool]:
    """Per row: whether the version whose ``training_rows`` ``record`` is may have trained
    on it (a false positive at the filter's rate), or certainly did not."""
    if not isinstance(record, Mapping) or record.get("format") != ROWS_FORMAT:
        raise GateError(f"training_rows is not a {ROWS_FORMAT} filter")
    try:
        bits, hashes = int(record["bits"]), int(record["hashes"])
        array = base64.b64decode(record["filter"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise GateError("training_rows needs bits, hashes and a base64 filter") from None
    if bits < 1 or hashes < 1 or len(array) != (bits + 7) // 8:
        raise GateError(f"training_rows has {len(array)} bytes for {bits} bits")
    found = []
    for features, label in zip(rows, labels, strict=True):
        digest = row_digest(features, label)
        h1 = int.from_bytes(digest[:8], "big") % bits
        h2 = int.from_bytes(digest[8:16], "big") % bits
        found.append(
            all(array[(p := (h1 + i * h2) % bits) // 8] >> (p % 8) & 1 for i in range(hashes))
        )
    return found


def seen_by(version: Mapping[str, Any] | None, rows: Mapping[str, Any]) -> list[bool] | None:
    """Which of golden set ``rows``'s rows the version of golden set ``version`` may have
    trained on (its ``training_rows``); None when it records none (or ``rows`` has no
    labels, which are part of a row)."""
    if version is None or "training_rows" not in version or rows.get("labels") is None:
        return None
    return trained_on(version["training_rows"], rows["features"], rows["labels"])

"""Request validation against the feature schema carried by the model artifact.

The schema is read from the artifact (never from training code: the image has none), so a
new model version with other ranges is validated by its own rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.errors import RequestError, bad_request, too_large

BATCH_KEY = "instances"
# Enough to fix a request in one round trip without echoing a megabyte of complaints.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Feature:
    name: str
    integer: bool
    minimum: float
    maximum: float


@dataclass(frozen=True)
class Instances:
    X: NDArray[np.float64]
    batch: bool


def schema_from_artifact(features: object) -> tuple[Feature, ...]:
    """Parse the artifact's ``features`` list; raises ``ValueError`` naming the bad entry."""
    if not isinstance(features, Sequence) or isinstance(features, str) or not features:
        raise ValueError(f"artifact feature schema must be a non-empty list, got {features!r}")
    parsed = []
    for index, entry in enumerate(features):
        where = f"artifact feature schema entry {index}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be an object, got {entry!r}")
        name, dtype, allowed = entry.get("name"), entry.get("dtype"), entry.get("allowed")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where} has no name")
        if dtype not in ("integer", "number"):
            raise ValueError(f"{where} ({name}) has dtype {dtype!r}: expected integer or number")
        if not isinstance(allowed, Mapping) or not all(
            _is_number(allowed.get(bound)) for bound in ("min", "max")
        ):
            raise ValueError(f"{where} ({name}) needs numeric allowed.min and allowed.max")
        minimum, maximum = float(allowed["min"]), float(allowed["max"])
        if not minimum <= maximum:
            raise ValueError(f"{where} ({name}) has allowed.min {minimum} > allowed.max {maximum}")
        parsed.append(Feature(name, dtype == "integer", minimum, maximum))
    names = [feature.name for feature in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"artifact feature schema repeats a name: {names}")
    if BATCH_KEY in names:
        raise ValueError(f"artifact feature schema uses the reserved name {BATCH_KEY!r}")
    return tuple(parsed)


def parse_instances(
    payload: object, schema: Sequence[Feature], *, max_batch_size: int
) -> Instances:
    """Turn a request payload into the model's input matrix, in schema column order."""
    if not isinstance(payload, Mapping):
        raise bad_request(
            "request body must be a JSON object: one record of features, or "
            f'{{"{BATCH_KEY}": [...]}} for a batch; got {_json_type(payload)}'
        )
    if BATCH_KEY not in payload:
        row, problems = validate_record(payload, schema, row=None)
        _raise_for(problems)
        return Instances(np.array([row], dtype=np.float64), batch=False)
    extra = sorted(set(payload) - {BATCH_KEY})
    if extra:
        raise bad_request(
            f"unknown field {extra[0]!r} next to {BATCH_KEY!r}: a batch body holds only "
            f"{BATCH_KEY!r}"
        )
    records = payload[BATCH_KEY]
    if not isinstance(records, list):
        raise bad_request(f"{BATCH_KEY!r} must be an array of records, got {_json_type(records)}")
    if not records:
        raise bad_request(f"{BATCH_KEY!r} is empty: send at least one record")
    if len(records) > max_batch_size:
        raise too_large(
            f"batch of {len(records)} instances exceeds MAX_BATCH_SIZE={max_batch_size}: "
            "split it into smaller requests"
        )
    matrix = valid_batch_matrix(records, schema)
    if matrix is not None:
        return Instances(matrix, batch=True)
    rows: list[list[float]] = []
    batch_problems: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        row, row_problems = validate_record(record, schema, row=index)
        rows.append(row)
        batch_problems.extend(row_problems)
    _raise_for(batch_problems)
    return Instances(np.array(rows, dtype=np.float64), batch=True)


def valid_batch_matrix(records: list[Any], schema: Sequence[Feature]) -> NDArray[np.float64] | None:
    """The batch as a matrix when every record is exactly valid, else None.

    Checking value by value costs about 10 us a record, most of a large batch's time. This
    checks the common case, a clean batch, with a few whole-array operations; anything
    else returns None and goes through ``validate_record``, which finds and names every
    problem. The two agree on which batches are valid (a property test checks it).
    """
    names = [feature.name for feature in schema]
    try:
        # A record that is not a mapping or lacks a field raises here.
        flat = [record[name] for record in records for name in names]
    except (KeyError, TypeError, IndexError):
        return None
    if any(len(record) != len(names) for record in records):
        return None  # unknown fields
    # type() rather than isinstance(): bool is an int subclass, and true/false is refused.
    if not all(type(value) is float or type(value) is int for value in flat):
        return None
    try:
        matrix = np.array(flat, dtype=np.float64).reshape(len(records), len(names))
    except OverflowError:
        return None  # an integer too large for a float is out of range anyway
    minimum = np.array([feature.minimum for feature in schema])
    maximum = np.array([feature.maximum for feature in schema])
    integer = np.array([feature.integer for feature in schema])
    if not np.isfinite(matrix).all() or (matrix < minimum).any() or (matrix > maximum).any():
        return None
    if (matrix[:, integer] != np.floor(matrix[:, integer])).any():
        return None
    return matrix


def validate_record(
    record: object, schema: Sequence[Feature], *, row: int | None
) -> tuple[list[float], list[dict[str, Any]]]:
    """The record's values in schema order, and every problem found (empty when valid)."""
    prefix = "" if row is None else f"{BATCH_KEY}[{row}]"
    if not isinstance(record, Mapping):
        kind = _json_type(record)
        return [], [_problem(row, None, f"{prefix or 'record'} must be a JSON object, got {kind}")]
    problems: list[dict[str, Any]] = []

    def report(name: str, text: str) -> None:
        problems.append(
            _problem(row, name, f"{prefix}.{name}: {text}" if prefix else f"{name}: {text}")
        )

    known = [feature.name for feature in schema]
    for name in sorted(set(record) - set(known)):
        report(name, f"unknown field (expected: {', '.join(known)})")
    values = []
    for feature in schema:
        if feature.name not in record:
            report(feature.name, "required field is missing")
            continue
        value = record[feature.name]
        problem = check_value(feature, value)
        if problem:
            report(feature.name, problem)
        else:
            values.append(float(value))
    return values, problems


def check_value(feature: Feature, value: object) -> str | None:
    """Why ``value`` is not acceptable for ``feature``, or None when it is."""
    if not _is_number(value):
        shown = "" if value is None else f" {_show(value)}"
        return f"must be a number, got {_json_type(value)}{shown}"
    assert isinstance(value, int | float)
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {_show(value)}"
    if feature.integer and isinstance(value, float) and not value.is_integer():
        return f"must be a whole number, got {_show(value)}"
    # Compared before float(): a 400-digit integer is valid JSON but overflows a float.
    if not feature.minimum <= value <= feature.maximum:
        low, high = _bound(feature, feature.minimum), _bound(feature, feature.maximum)
        return f"must be between {low} and {high}, got {_show(value)}"
    return None


def _raise_for(problems: list[dict[str, Any]]) -> None:
    if not problems:
        return
    message = problems[0]["message"]
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    raise RequestError(400, "invalid_input", message, details=problems[:MAX_REPORTED_PROBLEMS])


def _problem(row: int | None, field: str | None, message: str) -> dict[str, Any]:
    problem: dict[str, Any] = {"field": field, "message": message}
    if row is not None:
        problem["row"] = row
    return problem


def _is_number(value: object) -> bool:
    # bool is an int subclass; true/false is a caller's mistake, not 1/0.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(feature: Feature, bound: float) -> str:
    return str(int(bound)) if feature.integer and bound.is_integer() else repr(bound)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return "number" if isinstance(value, int | float) else type(value).__name__


def _show(value: object) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    except RecursionError:
        # A value nested nearly as deep as the JSON parser allows still parses (Lambda's
        # runtime parses a direct event before the handler's stack adds depth), but no
        # longer serializes; it is the caller's mistake, not a 500.
        return "nested too deeply to show"
    return text if len(text) <= 40 else text[:37] + "..."

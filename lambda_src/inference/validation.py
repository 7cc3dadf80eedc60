"""Request validation against the feature schema carried by the model artifact.

The schema is read from the artifact (never from training code: the image has none), so a
new model version with other ranges is validated by its own rules.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.batch_matrix import valid_batch, valid_batch_matrix
from inference.errors import ErrorCode, RequestError, bad_request, too_large
from inference.limits import ECHO_MAX_CHARS, MAX_REPORTED_PROBLEMS, echo
from serving.reserved import BATCH_KEY, RESERVED_FEATURE_NAMES
from serving.schema import UNKNOWN_CODE

__all__ = [
    "BATCH_KEY",
    "MAX_REPORTED_PROBLEMS",
    "RESERVED_FEATURE_NAMES",
    "Feature",
    "Instances",
    "parse_instances",
    "valid_batch",
    "valid_batch_matrix",
]


# A categorical feature lists 1 to this many values (the artifact contract's bound).
MAX_CATEGORIES = 1000
# An error message lists at most this many of a categorical feature's values.
SHOWN_CATEGORIES = 10
CategoryValue = str | int


@dataclass(frozen=True)
class Feature:
    """One model input. A categorical feature is an integer one over the codes 0..k-1 (the
    matrix holds the position of the request's value in ``values``)."""

    name: str
    integer: bool
    minimum: float
    maximum: float
    values: tuple[CategoryValue, ...] | None = None
    # JSON null accepted: NaN in the matrix (the artifact entry's "nullable": true).
    nullable: bool = False
    # Categorical: an unlisted value of the right JSON type is passed on to the model as
    # serving.schema.UNKNOWN_CODE, its raw value in Instances.unknown ("unknown": "pass").
    pass_unknown: bool = False
    # (type, value) -> code: the type keeps 1 apart from "1", and true (a bool) from 1.
    codes: Mapping[tuple[type, CategoryValue], int] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    # The JSON types of ``values`` (str, int): an unknown of another type is refused.
    value_types: frozenset[type] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        if self.values is not None:
            codes = {(type(value), value): code for code, value in enumerate(self.values)}
            object.__setattr__(self, "codes", codes)
            object.__setattr__(self, "value_types", frozenset(map(type, self.values)))

    def code_of(self, value: object) -> int | None:
        """The position of ``value`` in ``values`` (same JSON type), or None."""
        if type(value) not in (str, int):
            return None
        return self.codes.get((type(value), value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Instances:
    X: NDArray[np.float64]
    batch: bool
    # (row, column) -> the request's value, for each passed unknown category (its code in
    # X is serving.schema.UNKNOWN_CODE): a pipeline fitted on a DataFrame gets the value.
    unknown: Mapping[tuple[int, int], CategoryValue] = field(default_factory=dict)


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
        nullable, unknown = entry.get("nullable", False), entry.get("unknown", "refuse")
        if not isinstance(nullable, bool):
            raise ValueError(f"{where} ({name}) has nullable {nullable!r}: expected true or false")
        if unknown not in ("refuse", "pass") or (unknown == "pass" and dtype != "categorical"):
            raise ValueError(
                f"{where} ({name}) has unknown {unknown!r}: expected 'refuse' or 'pass' (a "
                "categorical feature only)"
            )
        if dtype == "categorical":
            feature = _categorical(f"{where} ({name})", name, allowed)
            parsed.append(
                Feature(
                    name,
                    True,
                    feature.minimum,
                    feature.maximum,
                    feature.values,
                    nullable=nullable,
                    pass_unknown=unknown == "pass",
                )
            )
            continue
        if dtype not in ("integer", "number"):
            raise ValueError(
                f"{where} ({name}) has dtype {dtype!r}: expected integer, number or categorical"
            )
        if not isinstance(allowed, Mapping) or not all(
            _is_number(allowed.get(bound)) for bound in ("min", "max")
        ):
            raise ValueError(f"{where} ({name}) needs numeric allowed.min and allowed.max")
        minimum, maximum = float(allowed["min"]), float(allowed["max"])
        if not minimum <= maximum:
            raise ValueError(f"{where} ({name}) has allowed.min {minimum} > allowed.max {maximum}")
        parsed.append(Feature(name, dtype == "integer", minimum, maximum, nullable=nullable))
    names = [feature.name for feature in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"artifact feature schema repeats a name: {names}")
    for name in names:
        if name in RESERVED_FEATURE_NAMES:
            raise ValueError(
                f"artifact feature schema uses the reserved name {name!r} (a request means "
                f"{RESERVED_FEATURE_NAMES[name]})"
            )
    return tuple(parsed)


def _categorical(where: str, name: str, allowed: object) -> Feature:
    values = allowed.get("values") if isinstance(allowed, Mapping) else None
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_CATEGORIES:
        raise ValueError(
            f"{where} needs allowed.values: a list of 1 to {MAX_CATEGORIES} strings or integers"
        )
    for value in values:
        # type(), not isinstance(): a bool is an int, and true is not a category value here.
        if type(value) not in (str, int):
            raise ValueError(
                f"{where} has allowed value {_show(value)} ({_json_type(value)}): "
                "values are strings or integers"
            )
    seen: set[tuple[type, object]] = set()
    for value in values:
        if (type(value), value) in seen:
            raise ValueError(f"{where} repeats the allowed value {_show(value)}")
        seen.add((type(value), value))
    return Feature(name, True, 0.0, float(len(values) - 1), tuple(values))


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
        unknown: dict[tuple[int, int], CategoryValue] = {}
        row, problems, found = _checked(payload, schema, None, MAX_REPORTED_PROBLEMS, unknown)
        _raise_for(problems, found)
        return Instances(np.array([row], dtype=np.float64), batch=False, unknown=unknown)
    extra = sorted(set(payload) - {BATCH_KEY})
    if extra:
        raise bad_request(
            f"unknown field {echo(extra[0])} next to {BATCH_KEY!r}: a batch body holds only "
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
    fast = valid_batch(records, schema)
    if fast is not None:
        return Instances(fast[0], batch=True, unknown=fast[1])
    rows: list[list[float]] = []
    unknown = {}
    batch_problems: list[Problem] = []
    found = 0
    for index, record in enumerate(records):
        # Only what can be reported is built: a batch of bad rows could hold millions.
        budget = MAX_REPORTED_PROBLEMS - len(batch_problems)
        row, row_problems, row_found = _checked(record, schema, index, budget, unknown)
        rows.append(row)
        found += row_found
        batch_problems.extend(row_problems)
    _raise_for(batch_problems, found)
    return Instances(np.array(rows, dtype=np.float64), batch=True, unknown=unknown)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record: what the caller reads, and what the log may keep.

    ``message`` may show the value (truncated); the log gets ``kind`` instead, because a
    rejected value can be personal data (an e-mail address in the wrong field).
    """

    row: int | None
    field: str | None
    kind: str
    message: str

    def answer(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": _field(self.field), "message": self.message}
        if self.row is not None:
            out["row"] = self.row
        return out

    def logged(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": _field(self.field), "kind": self.kind}
        if self.row is not None:
            out["row"] = self.row
        return out

    @property
    def where(self) -> str:
        prefix = "" if self.row is None else f"{BATCH_KEY}[{self.row}]"
        if self.field is None:
            return prefix or "record"
        return f"{prefix}.{_field(self.field)}" if prefix else str(_field(self.field))


def validate_record(
    record: object,
    schema: Sequence[Feature],
    *,
    row: int | None,
    unknown: dict[tuple[int, int], CategoryValue] | None = None,
) -> tuple[list[float], list[Problem]]:
    """The record's values in schema order, and every problem found (empty when valid);
    each passed unknown category's value goes into ``unknown`` by (row, column)."""
    values, problems, _ = _checked(record, schema, row, None, unknown)
    return values, problems


def _checked(
    record: object,
    schema: Sequence[Feature],
    row: int | None,
    budget: int | None,
    passed: dict[tuple[int, int], CategoryValue] | None = None,
) -> tuple[list[float], list[Problem], int]:
    """The record's values, its first ``budget`` problems (all when None), and how many
    problems it has; passed unknown categories go into ``passed``. Past the budget a
    problem is counted, never worded: one record of 110,000 unknown keys cost ~1.1 s of CPU
    when each got its message and 20 were shown."""
    if not isinstance(record, Mapping):
        if budget == 0:
            return [], [], 1
        where = Problem(row, None, "not_an_object", "").where
        text = f"{where} must be a JSON object, got {_json_type(record)}"
        return [], [Problem(row, None, "not_an_object", text)], 1
    problems: list[Problem] = []
    found = 0

    def report(name: str, kind: str, text: str) -> None:
        nonlocal found
        found += 1
        if budget is None or len(problems) < budget:
            where = Problem(row, name, kind, "").where
            problems.append(Problem(row, name, kind, f"{where}: {text}"))

    known = [feature.name for feature in schema]
    unknown = set(record).difference(known)
    if unknown:
        expected = f"unknown field (expected: {', '.join(known)})"
        # The first in name order, as a full sort gave them, without sorting them all.
        shown = sorted(unknown) if budget is None else heapq.nsmallest(budget, unknown)
        for name in shown:
            report(name, "unknown_field", expected)
        found += len(unknown) - len(shown)
    values = []
    for column, feature in enumerate(schema):
        if feature.name not in record:
            report(feature.name, "missing", "required field is missing")
            continue
        value = record[feature.name]
        if value is None:
            if feature.nullable:
                values.append(math.nan)
            else:
                text = check_value(feature, value)
                report(feature.name, "not_nullable", f"{text} (the feature is not nullable)")
            continue
        if feature.values is not None:
            code = feature.code_of(value)
            if code is not None:
                values.append(float(code))
            elif isinstance(value, str | int) and _passed(feature, value):
                values.append(UNKNOWN_CODE)
                if passed is not None:
                    passed[(row or 0, column)] = value
            else:
                report(feature.name, "not_allowed", _not_one_of(feature.values, value))
            continue
        problem = judge_value(feature, value)
        if problem:
            report(feature.name, *problem)
        else:
            values.append(float(value))
    return values, problems, found


def _not_one_of(allowed: Sequence[CategoryValue], value: object) -> str:
    shown = ", ".join(_show(v) for v in allowed[:SHOWN_CATEGORIES])
    if len(allowed) > SHOWN_CATEGORIES:
        shown += f" (or one of {len(allowed) - SHOWN_CATEGORIES} more values)"
    if type(value) in {type(v) for v in allowed}:
        return f"{_show(value)} is not one of {shown}"
    got = _json_type(value) + ("" if value is None else f" {_show(value)}")
    return f"must be one of {shown}, got {got}"


def _passed(feature: Feature, value: object) -> bool:
    """Whether ``value`` is an unlisted category ``feature`` passes on: one of the JSON
    types its values have (a string, or an integer; never a bool)."""
    return feature.pass_unknown and type(value) in feature.value_types


def check_value(feature: Feature, value: object) -> str:
    """Why ``value`` (not one of ``feature``'s values) is not acceptable for ``feature``."""
    if feature.values is not None:
        return _not_one_of(feature.values, value)
    problem = judge_value(feature, value)
    return "" if problem is None else problem[1]


def judge_value(feature: Feature, value: object) -> tuple[str, str] | None:
    """The kind of problem with ``value`` and the caller's message, or None when valid."""
    if not _is_number(value):
        shown = "" if value is None else f" {_show(value)}"
        return "not_a_number", f"must be a number, got {_json_type(value)}{shown}"
    assert isinstance(value, int | float)
    if isinstance(value, float) and not math.isfinite(value):
        return "not_finite", f"must be a finite number, got {_show(value)}"
    if feature.integer and isinstance(value, float) and not value.is_integer():
        return "not_whole", f"must be a whole number, got {_show(value)}"
    # Compared before float(): a 400-digit integer is valid JSON but overflows a float.
    if not feature.minimum <= value <= feature.maximum:
        low, high = _bound(feature, feature.minimum), _bound(feature, feature.maximum)
        return "out_of_range", f"must be between {low} and {high}, got {_show(value)}"
    return None


def _raise_for(problems: list[Problem], found: int | None = None) -> None:
    if not problems:
        return
    total = len(problems) if found is None else found
    more = ""
    if total > 1:
        more = f" (and {total - 1} more problem{'s' if total > 2 else ''})"
    first = problems[0]
    reported = problems[:MAX_REPORTED_PROBLEMS]
    raise RequestError(
        ErrorCode.INVALID_INPUT,
        first.message + more,
        details=[problem.answer() for problem in reported],
        log_message=f"{first.where}: {first.kind}{more}",
        log_details=[problem.logged() for problem in reported],
        omitted=total - len(reported),
    )


def _field(name: str | None) -> str | None:
    # A field name is caller text: an unknown one can be arbitrarily long.
    if name is None or len(name) <= ECHO_MAX_CHARS:
        return name
    return f"{name[:ECHO_MAX_CHARS]}... ({len(name) - ECHO_MAX_CHARS} more characters)"


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

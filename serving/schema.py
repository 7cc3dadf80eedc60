"""A model's feature schema: the contract between training and the handler.

A schema document (what ``training.schema.load_schema`` reads from a JSON or YAML file, and
what a manifest carries) has this shape:

    {"task": "binary" | "multiclass" | "regression", "label": "<column>", "features": [
        {"name": "...", "type": "integer" | "number", "min": 0, "max": 10,
         "description": "..."},
        {"name": "...", "type": "categorical", "values": ["a", "b", 3], "description": "..."},
        ...]}

Any feature may say ``"nullable": true``: a request may then send JSON ``null``, and the
model receives a missing value. A categorical feature may say ``"unknown": "pass"``: a value
of the right JSON type that is not listed reaches a model whose encoder handles unknown
values (``handle_unknown="ignore"`` and the like) instead of being refused (``"refuse"``,
the default).

Inside the handler and training, rows are one float64 matrix in schema order: a number as
itself, a categorical value as the 0-based position of its value in ``values``, a null as
NaN and a passed unknown category as ``UNKNOWN_CODE``. A model fitted on a numpy array of
codes reads that matrix (the codes contract); a pipeline fitted on a DataFrame gets the
values themselves, by column name (``inference.frames``). Every refusal is a
``SchemaError`` naming the file, the key and the value.
"""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from serving.reserved import RESERVED_FEATURE_NAMES
from serving.tasks import TASKS

FeatureType = Literal["integer", "number", "categorical"]


FEATURE_TYPES: tuple[FeatureType, ...] = ("integer", "number", "categorical")


CATEGORICAL: FeatureType = "categorical"


UnknownPolicy = Literal["refuse", "pass"]


UNKNOWN_POLICIES: tuple[UnknownPolicy, ...] = ("refuse", "pass")


# The code a passed unknown category has in the model input matrix (null is NaN).
UNKNOWN_CODE = -1.0


MAX_CATEGORIES = 1000


QUOTE_LIMIT = 80


NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class SchemaError(ValueError):
    """The schema file cannot be used; the message names the file, the key and the value."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: FeatureType
    minimum: float
    maximum: float
    description: str
    # Categorical only: the allowed values, in code order (minimum 0, maximum len - 1).
    values: tuple[str | int, ...] | None = None
    # JSON null accepted, reaching the model as a missing value (NaN in the matrix).
    nullable: bool = False
    # Categorical only: "pass" sends an unlisted value on to the model's encoder.
    unknown: UnknownPolicy = "refuse"

    def to_json(self) -> dict[str, object]:
        allowed: dict[str, object] = (
            {"values": list(self.values)}
            if self.values is not None
            else {"min": self.minimum, "max": self.maximum}
        )
        out: dict[str, object] = {
            "name": self.name,
            "dtype": self.dtype,
            "allowed": allowed,
            "description": self.description,
        }
        # Written only when set: the entries of every earlier version stay byte for byte.
        if self.nullable:
            out["nullable"] = True
        if self.unknown != "refuse":
            out["unknown"] = self.unknown
        return out


@dataclass(frozen=True)
class Schema:
    task: str
    label: str
    features: tuple[FeatureSpec, ...]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def categorical_indices(self) -> tuple[int, ...]:
        return tuple(i for i, f in enumerate(self.features) if f.values is not None)


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` in at most ``limit`` characters, in bounded work: every refusal that
    names a value quotes it through here (a value from a file may be megabytes, or nested)."""
    text = _QUOTER.repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def listing(items: list[str], limit: int = 5) -> str:
    """``items`` joined with ", ", the first ``limit`` of them: a refusal that lists names
    (unknown keys, repeated names, columns) stays short however many a file holds."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


_QUOTER = reprlib.Repr()
_QUOTER.maxlevel = 3
_QUOTER.maxstring = QUOTE_LIMIT
_QUOTER.maxother = QUOTE_LIMIT
_QUOTER.maxlong = QUOTE_LIMIT


for _attribute in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_QUOTER, _attribute, 10)


def _feature(path: Path, index: int, raw: Any) -> FeatureSpec:
    where = f"features[{index}]"
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: {where} must be an object, got {quote(raw)}")
    dtype = raw.get("type")
    extra = {"values", "unknown"} if dtype == CATEGORICAL else {"min", "max"}
    _only_keys(path, where, raw, {"name", "type", "description", "nullable", *extra})
    name = _name(path, f"{where}.name", raw.get("name"))
    if name in RESERVED_FEATURE_NAMES:
        raise SchemaError(
            f"{path}: {where}.name {name!r} is reserved: a request means by it "
            f"{RESERVED_FEATURE_NAMES[name]}; reserved: {', '.join(RESERVED_FEATURE_NAMES)}"
        )
    where = f"{where} ({name})"
    if dtype not in FEATURE_TYPES:
        raise SchemaError(
            f"{path}: {where}.type {quote(dtype)} is not allowed; allowed: "
            f"{', '.join(FEATURE_TYPES)}"
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SchemaError(f"{path}: {where}.description must be text, got {quote(description)}")
    nullable = raw.get("nullable", False)
    if not isinstance(nullable, bool):
        raise SchemaError(f"{path}: {where}.nullable must be true or false, got {quote(nullable)}")
    if dtype == CATEGORICAL:
        values = _values(path, f"{where}.values", raw.get("values"))
        unknown = raw.get("unknown", "refuse")
        if unknown not in UNKNOWN_POLICIES:
            raise SchemaError(
                f"{path}: {where}.unknown {quote(unknown)} is not allowed; allowed: "
                f"{', '.join(UNKNOWN_POLICIES)}"
            )
        return FeatureSpec(
            name,
            CATEGORICAL,
            0,
            len(values) - 1,
            description,
            values,
            nullable=nullable,
            unknown=cast(UnknownPolicy, unknown),
        )
    bounds = [_bound(path, f"{where}.{key}", raw.get(key), dtype) for key in ("min", "max")]
    if not bounds[0] <= bounds[1]:
        raise SchemaError(f"{path}: {where}: min {bounds[0]} is above max {bounds[1]}")
    # The type as the one shared constant, not a string per feature: pickle writes a repeated
    # object once, so the artifact's bytes stay what they were when the types were literals.
    canonical = FEATURE_TYPES[FEATURE_TYPES.index(dtype)]
    return FeatureSpec(name, canonical, bounds[0], bounds[1], description, nullable=nullable)


def _values(path: Path, where: str, raw: Any) -> tuple[str | int, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CATEGORIES:
        raise SchemaError(
            f"{path}: {where} must be a list of 1 to {MAX_CATEGORIES} values, got {quote(raw)}"
        )
    for value in raw:
        # A bool is an int to Python but not a category a request can send distinctly.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SchemaError(
                f"{path}: {where}: {quote(value)} is not allowed: values are strings or integers"
            )
    # 1 and "1" are different values (a request sends one JSON type): key on the type too.
    seen: set[tuple[type, str | int]] = set()
    for value in raw:
        key = (type(value), value)
        if key in seen:
            raise SchemaError(f"{path}: {where}: {quote(value)} is listed twice")
        seen.add(key)
    return tuple(raw)


def _bound(path: Path, where: str, value: Any, dtype: str) -> float:
    # An integer past float's range (10**400) is not finite either: isfinite would overflow.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value if isinstance(value, float) else _as_float(value))
    ):
        raise SchemaError(f"{path}: {where} must be a finite number, got {quote(value)}")
    if dtype == "integer":
        if not float(value).is_integer():
            raise SchemaError(f"{path}: {where} {quote(value)} is not a whole number")
        # Recorded as written for an integer feature (0, not 0.0): the manifests say so.
        return int(value)
    return float(value)


def _as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _name(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise SchemaError(
            f"{path}: {where} {quote(value)} is not allowed: letters, digits and '_', not starting "
            "with a digit (at most 64 characters)"
        )
    return value


def _only_keys(path: Path, where: str, mapping: dict[str, Any], allowed: set[str]) -> None:
    # A YAML key may be any scalar: named by its (bounded) text, sorted as text.
    unknown = sorted(set(mapping) - allowed, key=str)
    if unknown:
        shown = listing(
            [
                key if isinstance(key, str) and NAME_PATTERN.fullmatch(key) else quote(key)
                for key in unknown
            ]
        )
        raise SchemaError(
            f"{path}: {where} has unknown key(s) {shown}; allowed: {', '.join(sorted(allowed))}"
        )


def schema_from_document(path: Path, document: Any) -> Schema:
    """Check a schema document read from ``path`` (named in every refusal)."""
    if not isinstance(document, dict):
        raise SchemaError(
            f"{path}: expected an object (JSON or YAML) with task, label and features"
        )
    _only_keys(path, "the schema", document, {"task", "label", "features"})
    task = document.get("task")
    if task not in TASKS:
        raise SchemaError(
            f"{path}: task {quote(task)} is not supported; allowed: {', '.join(TASKS)}"
        )
    label = _name(path, "label", document.get("label"))
    raw_features = document.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise SchemaError(f"{path}: 'features' must be a non-empty list, got {quote(raw_features)}")
    features = tuple(_feature(path, index, raw) for index, raw in enumerate(raw_features))
    names = [f.name for f in features] + [label]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaError(
            f"{path}: name(s) {listing(duplicates)} used twice (features and label must differ)"
        )
    return Schema(task=cast(str, task), label=label, features=features)

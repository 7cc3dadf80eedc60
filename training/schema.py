"""A model's feature schema, read from a JSON or YAML file: the contract between training
and the handler.

The handler validates every request against the ``allowed`` range or values recorded here
(it reads them from the artifact, never from this module: the image ships no training
code). The churn model's schema is ``training/schemas/churn.json``; a file of the same
shape describes another model's features:

    {"task": "binary" | "multiclass" | "regression", "label": "<column>", "features": [
        {"name": "...", "type": "integer" | "number", "min": 0, "max": 10,
         "description": "..."},
        {"name": "...", "type": "categorical", "values": ["a", "b", 3], "description": "..."},
        ...]}

A categorical feature reaches the model as the 0-based position of its value in
``values`` (the encoding contract shared with the handler).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

FeatureType = Literal["integer", "number", "categorical"]
FEATURE_TYPES: tuple[FeatureType, ...] = ("integer", "number", "categorical")
CATEGORICAL: FeatureType = "categorical"
TASKS = ("binary", "multiclass", "regression")
MAX_CATEGORIES = 1000
YAML_SUFFIXES = (".yaml", ".yml")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SCHEMAS = Path(__file__).resolve().parent / "schemas"
CHURN_SCHEMA_FILE = SCHEMAS / "churn.json"


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

    def to_json(self) -> dict[str, object]:
        allowed: dict[str, object] = (
            {"values": list(self.values)}
            if self.values is not None
            else {"min": self.minimum, "max": self.maximum}
        )
        return {
            "name": self.name,
            "dtype": self.dtype,
            "allowed": allowed,
            "description": self.description,
        }


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


def load_schema(path: Path) -> Schema:
    """Read and check a schema file (JSON, or YAML for a ``.yaml``/``.yml`` name); every
    refusal is a ``SchemaError`` naming the file, the key and the value."""
    document = _read_document(path)
    if not isinstance(document, dict):
        raise SchemaError(
            f"{path}: expected an object (JSON or YAML) with task, label and features"
        )
    _only_keys(path, "the schema", document, {"task", "label", "features"})
    task = document.get("task")
    if task not in TASKS:
        raise SchemaError(f"{path}: task {task!r} is not supported; allowed: {', '.join(TASKS)}")
    label = _name(path, "label", document.get("label"))
    raw_features = document.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise SchemaError(f"{path}: 'features' must be a non-empty list, got {raw_features!r}")
    features = tuple(_feature(path, index, raw) for index, raw in enumerate(raw_features))
    names = [f.name for f in features] + [label]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaError(
            f"{path}: name(s) {', '.join(duplicates)} used twice (features and label must differ)"
        )
    return Schema(task=cast(str, task), label=label, features=features)


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot open ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: not UTF-8 text ({exc})") from None
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        try:
            # safe_load builds plain lists, dicts and scalars only: a schema runs no code.
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SchemaError(f"{path}: not valid YAML ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc})") from None


def _feature(path: Path, index: int, raw: Any) -> FeatureSpec:
    where = f"features[{index}]"
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: {where} must be an object, got {raw!r}")
    dtype = raw.get("type")
    extra = {"values"} if dtype == CATEGORICAL else {"min", "max"}
    _only_keys(path, where, raw, {"name", "type", "description", *extra})
    name = _name(path, f"{where}.name", raw.get("name"))
    where = f"{where} ({name})"
    if dtype not in FEATURE_TYPES:
        raise SchemaError(
            f"{path}: {where}.type {dtype!r} is not allowed; allowed: {', '.join(FEATURE_TYPES)}"
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SchemaError(f"{path}: {where}.description must be text, got {description!r}")
    if dtype == CATEGORICAL:
        values = _values(path, f"{where}.values", raw.get("values"))
        return FeatureSpec(name, CATEGORICAL, 0, len(values) - 1, description, values)
    bounds = [_bound(path, f"{where}.{key}", raw.get(key), dtype) for key in ("min", "max")]
    if not bounds[0] <= bounds[1]:
        raise SchemaError(f"{path}: {where}: min {bounds[0]} is above max {bounds[1]}")
    # The type as the one shared constant, not a string per feature: pickle writes a repeated
    # object once, so the artifact's bytes stay what they were when the types were literals.
    canonical = FEATURE_TYPES[FEATURE_TYPES.index(dtype)]
    return FeatureSpec(name, canonical, bounds[0], bounds[1], description)


def _values(path: Path, where: str, raw: Any) -> tuple[str | int, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CATEGORIES:
        raise SchemaError(
            f"{path}: {where} must be a list of 1 to {MAX_CATEGORIES} values, got {_short(raw)}"
        )
    for value in raw:
        # A bool is an int to Python but not a category a request can send distinctly.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SchemaError(
                f"{path}: {where}: {value!r} is not allowed: values are strings or integers"
            )
    # 1 and "1" are different values (a request sends one JSON type): key on the type too.
    seen: set[tuple[type, str | int]] = set()
    for value in raw:
        key = (type(value), value)
        if key in seen:
            raise SchemaError(f"{path}: {where}: {value!r} is listed twice")
        seen.add(key)
    return tuple(raw)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _bound(path: Path, where: str, value: Any, dtype: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaError(f"{path}: {where} must be a finite number, got {value!r}")
    if dtype == "integer":
        if not float(value).is_integer():
            raise SchemaError(f"{path}: {where} {value!r} is not a whole number")
        # Recorded as written for an integer feature (0, not 0.0): the manifests say so.
        return int(value)
    return float(value)


def _name(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise SchemaError(
            f"{path}: {where} {value!r} is not allowed: letters, digits and '_', not starting "
            "with a digit (at most 64 characters)"
        )
    return value


def _only_keys(path: Path, where: str, mapping: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise SchemaError(
            f"{path}: {where} has unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )


CHURN = load_schema(CHURN_SCHEMA_FILE)
FEATURES: tuple[FeatureSpec, ...] = CHURN.features

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
LABEL = CHURN.label

# Two customers, in schema order: a new month-to-month one likely to churn, and a
# long-standing two-year one. The demo, the soak and the cost model use these (a test keeps
# them inside the allowed ranges), so that no module retypes the feature names.
_EXAMPLE_VALUES = ((3, 80.5, 241.5, 1, 0, 0, 0), (60, 45.0, 2700.0, 3, 1, 2, 3))
EXAMPLE_RECORDS: tuple[dict[str, float], ...] = tuple(
    dict(zip(FEATURE_NAMES, values, strict=True)) for values in _EXAMPLE_VALUES
)

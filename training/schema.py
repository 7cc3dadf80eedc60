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
import os
import re
import reprlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

# The handler's own list: the image ships lambda_src only, so the list lives there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambda_src"))
from inference.reserved import RESERVED_FEATURE_NAMES as RESERVED_FEATURE_NAMES

FeatureType = Literal["integer", "number", "categorical"]
FEATURE_TYPES: tuple[FeatureType, ...] = ("integer", "number", "categorical")
CATEGORICAL: FeatureType = "categorical"
TASKS = ("binary", "multiclass", "regression")
MAX_CATEGORIES = 1000
# 1,000 categories of 64 characters for a few hundred features fit many times over; a
# larger file is refused before it is read.
MAX_SCHEMA_BYTES = 16 * 1024 * 1024
# A refusal quotes a value in at most this many characters (a schema may hold anything).
QUOTE_LIMIT = 80
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


def _read_document(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SCHEMA_BYTES + 1)
            if len(data) > MAX_SCHEMA_BYTES:
                size = os.fstat(handle.fileno()).st_size
                raise SchemaError(
                    f"{path}: {size} bytes is more than a schema file may hold "
                    f"({MAX_SCHEMA_BYTES} bytes)"
                )
        text = data.decode("utf-8-sig")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot open ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: not UTF-8 text ({exc})") from None
    if path.suffix.lower() in YAML_SUFFIXES:
        return _read_yaml(path, text)
    try:
        return json.loads(text, object_pairs_hook=_object_without_repeats)
    except _RepeatedKeyError as repeated:
        found = _repeated_json_key(text)
        if found is None:  # pragma: no cover - the walk finds what the hook found
            raise SchemaError(f"{path}: key {quote(repeated.key)} is repeated") from None
        line, first, key = found
        raise SchemaError(
            f"{path}: line {line}: key {quote(key)} is repeated (the first is on line {first})"
        ) from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise SchemaError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        # e.g. an integer with more digits than Python converts (int_max_str_digits).
        raise SchemaError(f"{path}: not valid JSON ({quote(str(exc), limit=200)})") from None


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


class _RepeatedKeyError(ValueError):
    """A JSON object repeats a key (found by the hook; ``_repeated_json_key`` says where)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _RepeatedKeyError(key)
        document[key] = value
    return document


def _repeated_json_key(text: str) -> tuple[int, int, str] | None:
    """(line, line of the first, key) of the first key an object of ``text`` (valid JSON up
    to there) repeats; walks strings, braces and brackets once."""
    objects: list[dict[str, int] | None] = []
    index = counted = 0
    line = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            value, end = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
            after = end
            while after < len(text) and text[after] in " \t\r\n":
                after += 1
            top = objects[-1] if objects else None
            if top is not None and after < len(text) and text[after] == ":":
                # Counted on from the last key: one pass over the text in all.
                line += text.count("\n", counted, index)
                counted = index
                if value in top:
                    return line, top[value], value
                top[value] = line
            index = end
            continue
        if char == "{":
            objects.append({})
        elif char == "[":
            objects.append(None)
        elif char in "]}" and objects:
            objects.pop()
        index += 1
    return None  # pragma: no cover


class _RefusedError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _read_yaml(path: Path, text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        """SafeLoader (plain lists, dicts and scalars only: a schema runs no code) without
        anchors and aliases, and without repeated keys.

        An alias is a reference: ten aliases of a list of ten aliases, nine levels deep, is
        a 500-byte file whose value holds 10**9 strings. Refused while composing, at the
        first anchor, before anything is built."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _RefusedError(
                    event.start_mark.line + 1,
                    "YAML anchors and aliases are not allowed in a schema (write each value out)",
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                self.flatten_mapping(node)  # '<<' merge keys, as SafeLoader reads them
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:
                    break  # an unhashable key: SafeLoader refuses it by its own message
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise _RefusedError(
                        line, f"key {quote(key)} is repeated (the first is on line {first})"
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except _RefusedError as refused:
        raise SchemaError(f"{path}: line {refused.line}: {refused}") from None
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: not valid YAML ({quote(str(exc), limit=400)})") from None
    except RecursionError:
        raise SchemaError(f"{path}: not valid YAML (nested too deeply)") from None
    except (ValueError, AttributeError, TypeError, OverflowError) as exc:
        # ValueError: e.g. an integer of too many digits. The others: PyYAML's constructors
        # on an explicit tag they cannot read (``!!timestamp 2001-13-45``: AttributeError).
        raise SchemaError(f"{path}: not valid YAML ({quote(str(exc), limit=200)})") from None


def _feature(path: Path, index: int, raw: Any) -> FeatureSpec:
    where = f"features[{index}]"
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: {where} must be an object, got {quote(raw)}")
    dtype = raw.get("type")
    extra = {"values"} if dtype == CATEGORICAL else {"min", "max"}
    _only_keys(path, where, raw, {"name", "type", "description", *extra})
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

"""Schema files: a model's feature schema (``serving.schema``) read from JSON or YAML.

The churn model's schema is ``training/schemas/churn.json``; a file of the same shape
describes another model's features. The handler validates every request against the
``allowed`` range or values recorded in the artifact, never against this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from serving.schema import FeatureSpec, Schema, SchemaError, quote, schema_from_document

MAX_SCHEMA_BYTES = 16 * 1024 * 1024

YAML_SUFFIXES = (".yaml", ".yml")

SCHEMAS = Path(__file__).resolve().parent / "schemas"

CHURN_SCHEMA_FILE = SCHEMAS / "churn.json"


def load_schema(path: Path) -> Schema:
    """Read and check a schema file (JSON, or YAML for a ``.yaml``/``.yml`` name); every
    refusal is a ``SchemaError`` naming the file, the key and the value."""
    return schema_from_document(path, _read_document(path))


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


CHURN = load_schema(CHURN_SCHEMA_FILE)


FEATURES: tuple[FeatureSpec, ...] = CHURN.features


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


LABEL = CHURN.label


_EXAMPLE_VALUES = ((3, 80.5, 241.5, 1, 0, 0, 0), (60, 45.0, 2700.0, 3, 1, 2, 3))


EXAMPLE_RECORDS: tuple[dict[str, float], ...] = tuple(
    dict(zip(FEATURE_NAMES, values, strict=True)) for values in _EXAMPLE_VALUES
)

"""Fuzzing schema files: whatever a schema file holds, ``load_schema`` returns a schema or
refuses with ``SchemaError`` (what ``training.train`` and ``training.package`` turn into
exit status 2) in a message of bounded length; never another exception.

Inputs: arbitrary text and bytes, and structured mutations of the churn schema written as
JSON or YAML (random keys and values, repeated keys, anchors and aliases, deep nesting,
huge strings, non-text keys, newlines in names).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from serving.reserved import RESERVED_FEATURE_NAMES

# A refusal names the file, the key and at most 80 characters of a value: well under this.
from serving.schema import NAME_PATTERN, Schema, SchemaError
from tests.reliability.conftest import count_fuzzed
from tests.reliability.strategies import json_values
from training.schema import CHURN_SCHEMA_FILE, load_schema

MAX_MESSAGE_CHARS = 1000
VALID: dict[str, Any] = json.loads(CHURN_SCHEMA_FILE.read_text())
SUFFIXES = (".json", ".yaml", ".yml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-schema")


def check(folder: Path, suffix: str, data: bytes) -> Schema | None:
    """Load ``data`` as a schema file; assert the contract; the schema, or None if refused."""
    count_fuzzed("schema files (training.schema.load_schema)")
    path = folder / f"schema{suffix}"
    path.write_bytes(data)
    try:
        schema = load_schema(path)
    except SchemaError as refused:
        message = str(refused)
        assert message.startswith(f"{path}: "), message[:2000]
        assert len(message) <= MAX_MESSAGE_CHARS, (len(message), message[:2000])
        return None
    assert isinstance(schema, Schema)
    names = [*schema.feature_names, schema.label]
    assert len(set(names)) == len(names)
    for name in names:
        assert NAME_PATTERN.fullmatch(name), name
    assert not set(schema.feature_names) & set(RESERVED_FEATURE_NAMES)
    for feature in schema.features:
        assert math.isfinite(feature.minimum) and math.isfinite(feature.maximum)
        assert feature.minimum <= feature.maximum
    return schema


# --- arbitrary files ----------------------------------------------------------------------

YAML_SNIPPETS = st.sampled_from(
    [
        "&a ",
        "*a",
        "<<: *a\n",
        "!!python/object:os.system ",
        "!!binary ",
        "!!timestamp 2001-13-45",
        "? [1, 2]\n: x\n",
        "{",
        "[",
        "- ",
        ": ",
        "\t",
        "%YAML 1.1\n---\n",
        "---\n",
        "...\n",
        '"\\x',
        "1" * 5000,
        "\n  ",
        "# comment\n",
        "\ufeff",
    ]
)


@given(suffix=st.sampled_from(SUFFIXES), text=st.text(max_size=400))
def test_fuzz_arbitrary_text(folder: Path, suffix: str, text: str) -> None:
    check(folder, suffix, text.encode("utf-8", errors="surrogatepass"))


@given(suffix=st.sampled_from(SUFFIXES), data=st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(folder: Path, suffix: str, data: bytes) -> None:
    check(folder, suffix, data)


# Found by this fuzzer (long): PyYAML's timestamp constructor raised AttributeError on an
# explicit tag whose value is no timestamp (a traceback, exit 1); now not valid YAML.
@example(suffix=".yaml", pieces=["!!timestamp 2001-13-45", "&a "])
@example(suffix=".yaml", pieces=["task: !!timestamp x"])
@given(
    suffix=st.sampled_from(SUFFIXES),
    pieces=st.lists(YAML_SNIPPETS | st.text(max_size=12), min_size=1, max_size=30),
)
def test_fuzz_yaml_and_json_fragments(folder: Path, suffix: str, pieces: list[str]) -> None:
    check(folder, suffix, "".join(pieces).encode("utf-8", errors="surrogatepass"))


# --- mutations of a valid schema ----------------------------------------------------------

HOSTILE_TEXT = st.sampled_from(
    [
        "x" * 100_000,
        "v7\n",
        "\nname",
        "name\r",
        "instances",
        "_warmup",
        "a" * 65,
        "é",
        "1abc",
        "",
        " ",
        "\u2028",
        "\x00",
    ]
) | st.text(max_size=30)
HOSTILE_VALUES = (
    json_values
    | HOSTILE_TEXT
    | st.sampled_from([math.nan, math.inf, -math.inf, 10**400, 1e308, -0.0, True, None])
    | st.lists(st.integers() | HOSTILE_TEXT, max_size=1100).map(list)
)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``document`` a value sits at (dict keys and list indices)."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = _replace(document[head], tuple(rest), value)
    return copy


def _delete(document: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return document
    head, *rest = path
    if not rest:
        copy = dict(document) if isinstance(document, dict) else list(document)
        del copy[head]
        return copy
    return _replace(document, (head,), _delete(document[head], tuple(rest)))


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """The churn schema with a few random replacements, deletions and additions."""
    document: Any = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 4))):
        places = _paths(document)
        place = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "delete", "add", "many features"]))
        if action == "replace":
            document = _replace(document, place, draw(HOSTILE_VALUES))
        elif action == "delete" and place:
            document = _delete(document, place)
        elif action == "add":
            target = _replace(document, (), document)
            for step in place:
                target = target[step]
            if isinstance(target, dict):
                target[draw(HOSTILE_TEXT)] = draw(HOSTILE_VALUES)
            elif isinstance(target, list):
                target.append(draw(HOSTILE_VALUES))
            document = _replace(document, place, target) if place else target
        elif action == "many features" and isinstance(document, dict):
            count = draw(st.integers(2, 60))
            name = draw(st.sampled_from(["f", "x" * 60, "churn", "instances"]))
            repeat = draw(st.booleans())
            template = VALID["features"][0]
            document["features"] = [
                {**template, "name": name if repeat else f"{name}{i}"} for i in range(count)
            ]
            if draw(st.booleans()):
                document.update({f"unknown_{i}_{'y' * 60}": i for i in range(count)})
    return document


def _dump(document: Any, suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(document, indent=2)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


# Found by this fuzzer: 12 unknown keys of 70 characters made a 1,007-character refusal
# (every unknown key, and every repeated name, was listed); now the first 5 and a count.
@example(suffix=".json", document={f"unknown_{i}_{'y' * 60}": i for i in range(12)})
# Found by this fuzzer (long): a bound of 10**400 made math.isfinite raise OverflowError.
@example(
    suffix=".json",
    document={**VALID, "features": [{**VALID["features"][0], "min": 10**400}]},
)
@example(suffix=".yaml", document={**VALID, "features": [VALID["features"][0]] * 60})
@given(suffix=st.sampled_from(SUFFIXES), document=mutated_documents())
def test_fuzz_mutated_schema(folder: Path, suffix: str, document: Any) -> None:
    check(folder, suffix, _dump(document, suffix).encode("utf-8", errors="surrogatepass"))


@st.composite
def textual_mutations(draw: st.DrawFn) -> tuple[str, str]:
    """The churn schema as text with lines repeated, anchors, deep nesting or odd keys."""
    suffix = draw(st.sampled_from(SUFFIXES))
    lines = _dump(VALID, suffix).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(
            st.sampled_from(
                ["repeat line", "drop line", "anchor", "deep", "huge", "non-text key", "newline"]
            )
        )
        line = lines[index]
        if kind == "repeat line":
            lines.insert(index, line)
        elif kind == "drop line":
            del lines[index]
        elif kind == "anchor":
            lines[index] = line.replace(": ", ": &a ", 1) + line.replace(": ", ": *a #", 1)
        elif kind == "deep":
            depth = draw(st.sampled_from([100, 1_000, 5_000, 100_000]))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ('{"a": ', "}")]))
            lines[index] = line.replace(": ", ": " + opener * depth, 1) + closer * draw(
                st.sampled_from([0, depth])
            )
        elif kind == "huge":
            lines[index] = line.replace('"', '"' + "z" * 200_000, 1)
        elif kind == "non-text key":
            key = draw(
                st.sampled_from(["1", "null", "true", "1.5", "[1, 2]", "{a: 1}", "2001-01-01"])
            )
            lines.insert(index, f"{key}: x\n")
        elif kind == "newline":
            lines[index] = line.replace('",', '\\n",', 1).replace("\n", "\\n\n", 1)
        if not lines:
            lines = ["\n"]
    return suffix, "".join(lines)


@given(case=textual_mutations())
def test_fuzz_schema_text_mutations(folder: Path, case: tuple[str, str]) -> None:
    suffix, text = case
    check(folder, suffix, text.encode("utf-8", errors="surrogatepass"))


def test_the_unmutated_schema_loads(folder: Path) -> None:
    for suffix in SUFFIXES:
        schema = check(folder, suffix, _dump(VALID, suffix).encode())
        assert schema is not None and schema.feature_names

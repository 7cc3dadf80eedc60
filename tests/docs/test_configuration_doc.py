"""docs/configuration.md against the configuration parser, so the reference cannot drift.

The parser refuses an unknown key at every level and names the keys it allows there; the
tests ask it, with a key no one would write, which keys it accepts at each level. Every
one of them must be in the doc's tables and every key in the tables must be one of them.
A documented default must give the same configuration as leaving the key out (a
"required" key must be refused when it is missing), and the *cdk.json* column must hold
what the committed cdk.json sets.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from stacks.config import load_config
from stacks.settings import REPO_ROOT, ConfigError

DOC = REPO_ROOT / "docs" / "configuration.md"
CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
ENVIRONMENTS = sorted(CONTEXT["environments"])
# prod sets every optional block (autoscaling included), so every level can be probed there.
PROBE_ENVIRONMENT = "prod"
PROBE = "zz_no_such_setting"
MISSING = object()  # "(unset)" in the cdk.json column
REQUIRED = object()  # "required" in the default column


@dataclass(frozen=True)
class Row:
    key: str  # dotted, relative to the table's level
    default: Any  # a JSON value, REQUIRED, or None when the cell is prose
    has_default: bool
    in_cdk_json: tuple[Any, ...] | None  # one value per environment, or None


def _tables(text: str) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """(section, header cells, rows) of every Markdown table, by its '## ' section."""
    section = ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("|") and index + 1 < len(lines) and lines[index + 1].startswith("|-"):
            header = _cells(line)
            index += 2
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(_cells(lines[index]))
                index += 1
            yield section, header, rows
            continue
        index += 1


def _cells(line: str) -> list[str]:
    # A '|' inside backticks belongs to the value, not the table.
    parts = re.split(r"\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", line.strip().strip("|"))
    return [part.strip() for part in parts]


def _json_cell(cell: str) -> tuple[bool, Any]:
    """(True, value) for a cell holding one `JSON value` (or a `.../<env>` template)."""
    if cell == "required":
        return True, REQUIRED
    if cell == "(unset)":
        return True, MISSING
    match = re.fullmatch(r"`([^`]+)`", cell)
    if not match:
        return False, None
    try:
        return True, json.loads(match.group(1))
    except json.JSONDecodeError:
        # A default that names the environment, e.g. `SklearnLambdaServing/<env>`.
        return ("<env>" in match.group(1)), match.group(1)


def rows(section: str) -> list[Row]:
    found = []
    for table_section, header, table_rows in _tables(DOC.read_text()):
        if table_section != section or header[0] != "key":
            continue
        default_column = header.index("default")
        cdk_column = next((i for i, h in enumerate(header) if h.startswith("cdk.json")), None)
        for cells in table_rows:
            keys = re.findall(r"`([^`]+)`", cells[0])
            assert len(keys) == 1, f"one key per row in {section}: {cells[0]!r}"
            has_default, default = _json_cell(cells[default_column])
            in_cdk_json = None
            if cdk_column is not None:
                parts = [_json_cell(part) for part in cells[cdk_column].split(" / ")]
                if len(parts) == len(ENVIRONMENTS) and all(ok for ok, _ in parts):
                    in_cdk_json = tuple(value for _, value in parts)
            found.append(Row(keys[0], default, has_default, in_cdk_json))
    assert found, f"no table under '## {section}' in {DOC}"
    return found


TOP_LEVEL = rows("Command line")
PER_ENVIRONMENT = rows("Per environment")


# ---------------------------------------------------------------------------- the parser


def _outcome(context: dict[str, Any]) -> Any:
    try:
        return load_config(context)
    except ConfigError as exc:
        return f"ConfigError: {exc}"


def _context(environment: str) -> dict[str, Any]:
    context = copy.deepcopy(CONTEXT)
    context["env"] = environment
    return context


def accepted_at(path: tuple[str, ...]) -> list[str]:
    """The keys the parser accepts in the environment's mapping at ``path``."""
    context = _context(PROBE_ENVIRONMENT)
    node = context["environments"][PROBE_ENVIRONMENT]
    for part in path:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[PROBE] = 1
    at = ".".join(("environments", PROBE_ENVIRONMENT, *path))
    refusal = str(_outcome(context))
    match = re.search(
        rf"unknown key\(s\) {re.escape(at)}\.{PROBE}: allowed under \S+ are (.+)$", refusal
    )
    assert match, f"the parser did not refuse {at}.{PROBE} as unknown: {refusal}"
    return match.group(1).split(", ")


def accepted_top_level() -> list[str]:
    refusal = str(_outcome({**_context(PROBE_ENVIRONMENT), PROBE: 1}))
    match = re.search(rf"unknown context key\(s\) {PROBE}: allowed are (.+?) \(plus", refusal)
    assert match, f"the parser did not refuse the context key {PROBE} as unknown: {refusal}"
    return match.group(1).split(", ")


def parser_keys() -> tuple[set[str], set[str]]:
    """(leaf keys, mapping keys) the parser accepts per environment, dotted."""
    documented = {row.key for row in PER_ENVIRONMENT}
    prod = CONTEXT["environments"][PROBE_ENVIRONMENT]
    leaves: set[str] = set()
    mappings: set[str] = set()
    pending: list[tuple[str, ...]] = [()]
    while pending:
        path = pending.pop()
        for key in accepted_at(path):
            dotted = ".".join((*path, key))
            value: Any = prod
            for part in (*path, key):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, dict) or any(d.startswith(f"{dotted}.") for d in documented):
                mappings.add(dotted)
                pending.append((*path, key))
            else:
                leaves.add(dotted)
    return leaves, mappings


# ---------------------------------------------------------------------------- tests


def test_every_top_level_key_is_documented_and_nothing_else() -> None:
    assert sorted(row.key for row in TOP_LEVEL) == sorted(accepted_top_level())


def test_every_environment_key_the_parser_accepts_is_documented() -> None:
    leaves, _ = parser_keys()
    documented = {row.key for row in PER_ENVIRONMENT}
    assert not leaves - documented, f"add these keys to {DOC.name}: {sorted(leaves - documented)}"


def test_every_documented_environment_key_is_accepted() -> None:
    leaves, mappings = parser_keys()
    unknown = {row.key for row in PER_ENVIRONMENT} - leaves - mappings
    assert not unknown, f"{DOC.name} lists keys the parser refuses: {sorted(unknown)}"


def _set(node: dict[str, Any], dotted: str, value: Any) -> bool:
    """Set (or, with MISSING, remove) a key; False when its parent is not an object here."""
    *parents, key = dotted.split(".")
    for part in parents:
        node = node.get(part)  # type: ignore[assignment]
        if not isinstance(node, dict):
            return False
    if value is MISSING:
        node.pop(key, None)
    else:
        node[key] = value
    return True


DEFAULTED = [
    pytest.param(environment, row, id=f"{environment}-{row.key}")
    for environment in ENVIRONMENTS
    for row in PER_ENVIRONMENT
    if row.has_default
]


def test_the_doc_states_defaults() -> None:
    assert len([row for row in PER_ENVIRONMENT if row.has_default]) >= 20


@pytest.mark.parametrize(("environment", "row"), DEFAULTED)
def test_documented_default_is_the_parsers(environment: str, row: Row) -> None:
    without = _context(environment)
    if not _set(without["environments"][environment], row.key, MISSING):
        pytest.skip(f"{row.key}'s parent is not set in {environment}")
    left_out = _outcome(without)
    if row.default is REQUIRED:
        assert isinstance(left_out, str), f"{row.key} is documented as required"
        assert row.key.split(".")[-1] in left_out
        return
    default = row.default
    if isinstance(default, str) and "<env>" in default:
        default = default.replace("<env>", environment)
    explicit = _context(environment)
    _set(explicit["environments"][environment], row.key, default)
    assert _outcome(explicit) == left_out, f"{row.key}: the documented default {default!r}"


@pytest.mark.parametrize("row", [r for r in TOP_LEVEL if r.has_default], ids=lambda r: r.key)
def test_documented_top_level_default_is_the_parsers(row: Row) -> None:
    without = _context(PROBE_ENVIRONMENT)
    del without["env"]
    without.pop(row.key, None)
    left_out = _outcome(without)
    if row.default is REQUIRED:
        assert isinstance(left_out, str) and row.key in left_out
        return
    explicit = {**without, row.key: row.default}
    assert _outcome(explicit) == left_out


@pytest.mark.parametrize(
    "row", [r for r in PER_ENVIRONMENT if r.in_cdk_json is not None], ids=lambda r: r.key
)
def test_cdk_json_column_is_what_cdk_json_sets(row: Row) -> None:
    assert row.in_cdk_json is not None
    for environment, documented in zip(ENVIRONMENTS, row.in_cdk_json, strict=True):
        value: Any = CONTEXT["environments"][environment]
        for part in row.key.split("."):
            value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
        assert value == documented, f"{environment}: cdk.json sets {row.key}={value!r}"

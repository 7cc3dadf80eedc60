"""docs/operating.md's log reference and Logs Insights queries against the real handler.

The handler runs locally with the committed v1 artifact (as in tests/handler) and writes
its log lines; the doc's table must name exactly the fields each line carries, and every
field a documented query uses must be one of them (or one the query defines itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from stacks.settings import REPO_ROOT
from tests.handler.conftest import (  # fresh_environment: the handler tests' own fixture
    FakeLambdaContext,
    capture_lines,
    emf_lines,
    fresh_environment,
    handler_module,
    load_event,
    local_env,
    log_lines,
)

__all__ = ["fresh_environment"]

DOC = REPO_ROOT / "docs" / "operating.md"
COMMON = {"timestamp", "level", "message"}
IDENTITY = {"model_name", "model_version", "lambda_version"}
# Words of the Logs Insights query language and fields it adds itself.
QUERY_WORDS = {
    "filter", "fields", "stats", "sort", "limit", "by", "as", "and", "or", "not", "in",
    "like", "asc", "desc", "display", "parse", "dedup",
}  # fmt: skip
INSIGHTS_FIELDS = {"@timestamp", "@message", "@logStream", "@log", "@requestId"}


def documented_fields() -> dict[str, set[str]]:
    """`message` -> the fields its row lists ('identity' = model name, version, Lambda version)."""
    fields: dict[str, set[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[a-z -]+`", cells[0]) and cells[1].isupper():
            names = set(re.findall(r"`(\w+)`", cells[3]))
            if re.search(r"\bidentity\b", cells[3]):
                names |= IDENTITY
            fields[cells[0].strip("`")] = names
    assert fields, f"no log table in {DOC.name}"
    return fields


def queries() -> list[str]:
    return re.findall(r"^```text\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)


def documented_metrics() -> set[str]:
    """The metric names of the table whose header starts with 'metric'."""
    names: set[str] = set()
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.startswith("| metric |"):
            in_table = True
        elif in_table and line.startswith("| `"):
            names.add(line.split("`")[1])
        elif in_table and not line.startswith("|"):
            break
    assert names, f"no metric table in {DOC.name}"
    return names


@pytest.fixture
def handler_output(
    fresh_environment: Callable[[dict[str, str]], Any], capsys: pytest.CaptureFixture[str]
) -> str:
    """Stdout of a load, predictions (one record, a batch; captured), a rejection, a warm-up,
    a gate request and a failed load."""
    capsys.readouterr()
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1"))
    handler_module.handler(load_event("direct_single.json"), FakeLambdaContext())
    batch = {"instances": [load_event("direct_single.json")] * 12}
    handler_module.handler(batch, FakeLambdaContext())
    handler_module.handler({"tenure_months": 3.5}, FakeLambdaContext())
    handler_module.handler({"_warmup": True}, FakeLambdaContext())
    # The traffic gate's marked request, on a version by number as the gate invokes.
    alias = FakeLambdaContext().invoked_function_arn
    gate = FakeLambdaContext(invoked_function_arn=alias.rsplit(":", 1)[0] + ":7")
    handler_module.handler({**batch, "_gate": True}, gate)
    fresh_environment(local_env("v1", MODEL_SHA256="0" * 64))
    handler_module.handler(load_event("direct_single.json"), FakeLambdaContext())
    return capsys.readouterr().out


@pytest.fixture
def handler_lines(handler_output: str) -> list[dict[str, Any]]:
    return log_lines(handler_output)


def test_the_metric_table_names_every_metric_the_handler_emits(handler_output: str) -> None:
    emitted = {
        metric["Name"]
        for line in emf_lines(handler_output)
        for directive in line["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert emitted == documented_metrics()


def test_the_log_table_names_every_field_of_every_line(
    handler_lines: list[dict[str, Any]],
) -> None:
    documented = documented_fields()
    seen: dict[str, set[str]] = {}
    for line in handler_lines:
        seen.setdefault(line["message"], set()).update(set(line) - COMMON)
    written = {"model loaded", "prediction", "request rejected", "warm-up", "gate request"}
    assert written <= set(seen)
    wrong = [
        f"{message!r}: the handler writes {sorted(fields)}, "
        f"{DOC.name} lists {sorted(documented.get(message, ()))}"
        for message, fields in sorted(seen.items())
        if fields != documented.get(message)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_doc_shows_queries() -> None:
    assert len(queries()) >= 5


@pytest.mark.parametrize("query", queries(), ids=lambda q: q.splitlines()[0][:40])
def test_a_query_uses_only_fields_the_handler_writes(query: str) -> None:
    known = set().union(*documented_fields().values()) | COMMON | INSIGHTS_FIELDS
    text = re.sub(r'"[^"]*"', '""', query)  # string literals are values, not fields
    defined = set(re.findall(r"\bas\s+(\w+)", text))
    used = {
        word
        for word, call in re.findall(r"(?<![\w@.])(@?[A-Za-z_]\w*)(\s*\()?", text)
        if not call and word not in QUERY_WORDS  # a name before '(' is a function
    }
    unknown = used - known - defined
    assert not unknown, f"the query uses fields no log line has: {sorted(unknown)}"


def filter_fields(query: str) -> set[str]:
    """Fields named by the query's first clause, a ``filter`` joined only by ``and``."""
    first = query.split("|", 1)[0].strip()
    assert first.startswith("filter "), f"the query does not start with a filter: {first!r}"
    text = re.sub(r'"[^"]*"', '""', first[len("filter ") :])
    assert not re.search(r"\bor\b|\bnot\b", text), f"only conjunctions are checked: {first!r}"
    return {
        word for word in re.findall(r"(?<![\w@.])([A-Za-z_]\w*)", text) if word not in QUERY_WORDS
    }


@pytest.mark.parametrize("query", queries(), ids=lambda q: q.splitlines()[0][:40])
def test_a_query_reads_no_capture_record(query: str, handler_output: str) -> None:
    captured = capture_lines(handler_output)
    assert len(captured) == 1 + 12, "the fixture's two predictions are captured"
    capture_fields = set().union(*captured)
    # A conjunction that requires a field no capture record has leaves every one out.
    required = filter_fields(query) - {"ispresent"}
    assert required - capture_fields, (
        f"the filter names only fields capture records also have: {sorted(required)}"
    )

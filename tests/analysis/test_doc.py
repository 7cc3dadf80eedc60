"""docs/capture-and-drift.md: its worked examples are the tools' output, its facts the code's."""

from __future__ import annotations

import json
import re

import pytest

from serving import capture
from tests.analysis import examples

DOC = examples.DOC
BLOCK = re.compile(r"<!-- output of: (.+?) -->\n```text\n(.*?)\n```", re.S)


def blocks() -> dict[str, str]:
    return dict(BLOCK.findall(DOC.read_text()))


def test_the_doc_shows_every_example() -> None:
    assert set(blocks()) == set(examples.examples())


@pytest.mark.parametrize("command", [examples.DRIFT, examples.OUTCOMES, examples.CANARY])
def test_each_example_is_the_tools_output(command: str) -> None:
    assert blocks()[command] == examples.examples()[command], (
        "after a deliberate change: python -m tests.analysis.examples --write"
    )


def test_the_doc_gives_the_filter_pattern_the_code_uses() -> None:
    assert f"```text\n{capture.FILTER_PATTERN}\n```" in DOC.read_text()


def test_the_record_table_names_every_field_and_the_example_line_is_a_record() -> None:
    text = DOC.read_text()
    table = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", text, re.M))
    documented = {name for pair in table for name in pair if name}
    example = json.loads(re.search(r"```json\n(\{.*?\})\n```", text, re.S).group(1))  # type: ignore[union-attr]
    (record,) = capture.records(
        request_id="r",
        timestamp=capture.datetime.now(capture.UTC),
        model_name="churn",
        model_version="v1",
        lambda_version="7",
        feature_names=["a"],
        rows=[[1.0]],
        probabilities=[0.5],
        predictions=[1],
    )
    assert set(record) | {"features_omitted_bytes"} == documented
    assert set(example) == set(record)

"""Nulls and passed unknown categories from capture record to drift report: the record
keeps what the request sent, every reader takes it, and the report counts it."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving import capture, capture_export, histograms, insights
from serving.distributions import read_reference, reference_distributions
from serving.drift import drift_report
from serving.schema import UNKNOWN_CODE
from tools.drift.__main__ import main

SCHEMA: list[dict[str, Any]] = [
    {"name": "age", "dtype": "number", "allowed": {"min": 0, "max": 100}, "nullable": True},
    {
        "name": "island",
        "dtype": "categorical",
        "allowed": {"values": ["Biscoe", "Dream"]},
        "nullable": True,
        "unknown": "pass",
    },
    {"name": "plan", "dtype": "categorical", "allowed": {"values": [3, 1]}, "unknown": "pass"},
]
NAMES = [entry["name"] for entry in SCHEMA]
CATEGORIES = [None, ("Biscoe", "Dream"), (3, 1)]


def records(rows: list[list[float]], unknown: dict[tuple[int, int], Any] | None) -> list[Any]:
    return capture.records(
        request_id="req-1",
        timestamp=datetime(2026, 12, 8, tzinfo=UTC),
        model_name="penguins",
        model_version="v1",
        lambda_version="3",
        feature_names=NAMES,
        rows=rows,
        row_fields=lambda index: {"probability": 0.5, "prediction": 1},
        categories=CATEGORIES,
        unknown=unknown,
    )


def test_a_record_keeps_null_as_null_and_an_unknown_as_the_request_sent_it() -> None:
    rows = [[math.nan, math.nan, 0.0], [41.5, UNKNOWN_CODE, UNKNOWN_CODE], [7.0, 1.0, 1.0]]
    out = records(rows, {(1, 1): "Torgersen", (1, 2): 9})
    assert [record["features"] for record in out] == [
        {"age": None, "island": None, "plan": 3},
        {"age": 41.5, "island": "Torgersen", "plan": 9},
        {"age": 7, "island": "Dream", "plan": 1},
    ]
    # Each line is valid JSON (no NaN) and reads back as it was written.
    assert [json.loads(capture.encode(record))["features"] for record in out][1]["plan"] == 9


def test_an_unknown_code_without_its_value_is_refused_not_named_as_the_last_value() -> None:
    # allowed[int(-1.0)] would have been "Dream": a category the request never sent.
    with pytest.raises(ValueError, match=r"row 0, feature 'island': an unknown category"):
        records([[1.0, UNKNOWN_CODE, 0.0]], None)
    with pytest.raises(ValueError, match=r"row 0, feature 'plan'"):
        records([[1.0, 0.0, UNKNOWN_CODE]], {(0, 1): "x"})


def test_export_and_insights_readers_take_null_features(tmp_path: Path) -> None:
    (record,) = records([[math.nan, math.nan, UNKNOWN_CODE]], {(0, 2): 12})
    path = tmp_path / "capture.jsonl"
    path.write_text(capture.encode(record) + "\n")
    (row,) = capture_export.read(path).rows
    assert row.features == {"age": None, "island": None, "plan": 12.0}
    parsed = insights.parse([[{"field": "@message", "value": capture.encode(record)}]])
    assert parsed.skipped == 0
    assert parsed.features == [{"age": None, "island": None, "plan": 12.0}]


def test_a_nullable_feature_s_reference_has_a_missing_bin_that_reads_back() -> None:
    X = np.array([[1.0, 0.0, 0.0], [math.nan, math.nan, 1.0], [3.0, 1.0, 1.0], [4.0, 1.0, 0.0]])
    reference = reference_distributions(X, SCHEMA, [0.2, 0.4, 0.6, 0.8])
    age, island, plan = (reference["features"][name] for name in NAMES)
    assert age["missing"] is True and age["proportions"][-1] == 0.25
    # Biscoe, Dream, unseen, missing.
    assert island["missing"] is True and island["proportions"] == [0.25, 0.5, 0.0, 0.25]
    assert "missing" not in plan  # not nullable: the reference is as before
    back = read_reference({"reference_distributions": reference})
    assert back.features["island"].missing and not back.features["plan"].missing
    # Null and unlisted values bin where they belong; a null without a bin is refused.
    assert back.features["island"].bin_index([None, "Torgersen", "Dream"]).tolist() == [3, 2, 1]
    assert (
        back.features["age"].bin_index([None, math.nan]).tolist()
        == [len(back.features["age"].proportions) - 1] * 2
    )
    with pytest.raises(ValueError, match="finite numbers or strings"):
        back.features["plan"].bin_index([None])


def test_a_matrix_with_a_null_in_a_feature_that_is_not_nullable_is_refused() -> None:
    X = np.array([[1.0, 0.0, math.nan]])
    with pytest.raises(ValueError, match=r"feature 'plan' is categorical.*-1: an unlisted one"):
        reference_distributions(X, SCHEMA, [0.5])


def drift_of(rows: list[dict[str, Any]], manifest_rows: int = 400) -> Any:
    rng = np.random.default_rng(5)
    X = np.column_stack(
        [rng.uniform(0, 100, manifest_rows), rng.integers(0, 2, manifest_rows), np.zeros(400)]
    )
    X[::10, 0] = math.nan  # 10 % of the reference's ages are missing
    reference = read_reference(
        {"reference_distributions": reference_distributions(X, SCHEMA, rng.uniform(size=400))}
    )
    ids = [f"r{i}" for i in range(len(rows))]
    return drift_report(
        reference,
        rows,
        [0.5] * len(rows),
        feature_requests=ids,
        prediction_requests=ids,
    )


def test_the_report_counts_null_and_unlisted_shares_per_feature() -> None:
    rows = [{"age": 50.0, "island": "Dream", "plan": 3} for _ in range(300)]
    for row in rows[:150]:
        row["age"] = None  # half the ages missing, against 10 % in the reference
    for row in rows[:60]:
        row["island"], row["plan"] = "Torgersen", 9
    report = drift_of(rows)
    lines = {line.name: line for line in report.lines}
    assert lines["age"].missing == 0.5 and lines["age"].unknown == 0.0
    assert lines["island"].unknown == 0.2 and lines["plan"].unknown == 0.2
    assert lines["age"].rows == 300  # nulls are binned, not dropped
    assert "age" in report.drifted  # 50 % missing against 10 % is drift
    table = report.to_json()["lines"]
    assert {"name": "age", "missing": 0.5, "unknown": 0.0}.items() <= table[0].items()
    assert "(null 50.0% of rows)" in report.render()
    assert "(unlisted 20.0% of rows)" in report.render()


def test_nulls_against_a_reference_without_a_missing_bin_are_left_out_of_its_psi() -> None:
    reference = read_reference(
        {
            "reference_distributions": reference_distributions(
                np.array([[1.0], [2.0], [3.0]]),
                [{"name": "x", "dtype": "number", "allowed": {"min": 0, "max": 9}}],
                [0.1, 0.2, 0.3],
            )
        }
    )
    rows: list[dict[str, Any]] = [{"x": 2.0}, {"x": None}, {"x": 3.0}, {"x": None}]
    ids = ["a", "b", "c", "d"]
    report = drift_report(reference, rows, [0.2] * 4, feature_requests=ids, prediction_requests=ids)
    line = report.lines[0]
    assert (line.rows, line.requests, line.missing) == (2, 2, 0.5)
    assert not math.isnan(line.psi)


def test_an_all_missing_reference_column_still_builds_and_reads() -> None:
    hist = histograms.numeric_histogram([math.nan, math.nan], missing=True)
    assert hist.proportions[-1] == 1.0
    again = histograms.Histogram.from_json(json.loads(json.dumps(hist.to_json())))
    assert again == hist
    assert again.bin_index([5.0, None]).tolist() == [0, 1]


def test_the_drift_tool_reads_an_export_with_nulls_and_unlisted_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    X = np.column_stack([rng.uniform(0, 100, 400), rng.integers(0, 2, 400), np.zeros(400)])
    X[::4, 1] = math.nan
    manifest = {
        "model_name": "penguins",
        "model_version": "v1",
        "features": SCHEMA,
        "reference_distributions": reference_distributions(X, SCHEMA, rng.uniform(size=400)),
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    lines = []
    for i in range(250):
        rows = [[float(i % 90), math.nan if i % 2 else UNKNOWN_CODE, 0.0]]
        unknown = {} if i % 2 else {(0, 1): "Torgersen"}
        (record,) = capture.records(
            request_id=f"req-{i}",
            timestamp=datetime(2026, 12, 8, tzinfo=UTC),
            model_name="penguins",
            model_version="v1",
            lambda_version="3",
            feature_names=NAMES,
            rows=rows,
            row_fields=lambda index: {"probability": 0.5, "prediction": 1},
            categories=CATEGORIES,
            unknown=unknown,
        )
        lines.append(capture.encode(record))
    (tmp_path / "capture.jsonl").write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    capture_file, manifest_file = tmp_path / "capture.jsonl", tmp_path / "manifest.json"
    argv = ["--capture", str(capture_file), "--manifest", str(manifest_file), "--json"]
    status = main(argv, out=out)
    table = {line["name"]: line for line in json.loads(out.getvalue())["lines"]}
    assert status == 1  # half the islands unlisted, half missing: drift, not a crash
    assert (table["island"]["missing"], table["island"]["unknown"]) == (0.5, 0.5)
    assert table["island"]["verdict"] == "drift" and table["island"]["rows"] == 250

"""`rollout compare` of a multiclass or regression model: each side's captured answers (class
labels, values) grouped by request and judged by the canary rule; the summary metric the
handler emits per task."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber

from serving import canary
from serving.insights import MAX_ROWS, query
from tools.rollout.__main__ import comparison_table
from tools.rollout.live import Comparison, Live, Side

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
GROUP = "/aws/lambda/wine"


def captured(records: list[dict[str, Any]]) -> Any:
    logs = boto3.client("logs", region_name="eu-west-1")
    stub = Stubber(logs)
    stub.add_response(
        "start_query",
        {"queryId": "q"},
        {
            "logGroupName": GROUP,
            "startTime": int(START.timestamp()),
            "endTime": int(END.timestamp()),
            "queryString": query("4", field="lambda_version"),
            "limit": MAX_ROWS,
        },
    )
    base = {"capture": 1, "features": {"x": 1.0}}
    rows = [[{"field": "@message", "value": json.dumps({**base, **r})}] for r in records]
    stub.add_response(
        "get_query_results", {"status": "Complete", "results": rows}, {"queryId": "q"}
    )
    stub.activate()
    return logs, stub


def live(logs: Any) -> Live:
    return Live(cloudformation=None, lambda_client=None, cloudwatch=None, logs=logs)


def test_multiclass_sides_are_read_as_class_labels_by_request() -> None:
    records = [
        {"request_id": "a", "prediction": "class_0", "probabilities": [0.9, 0.05, 0.05]},
        {"request_id": "a", "prediction": "class_2", "probabilities": [0.1, 0.1, 0.8]},
        {"request_id": "b", "prediction": 1, "probabilities": [0.2, 0.7, 0.1]},
    ]
    logs, stub = captured(records)
    found = live(logs).captured(GROUP, "4", START, END)
    stub.assert_no_pending_responses()
    assert found.predictions == ["class_0", "class_2", 1] and found.task == "multiclass"
    assert found.request_ids == ["a", "a", "b"] and found.requests == 2


def test_regression_sides_are_read_as_values() -> None:
    records = [{"request_id": "a", "prediction": 151.5}, {"request_id": "b", "prediction": 80.25}]
    logs, _ = captured(records)
    found = live(logs).captured(GROUP, "4", START, END)
    assert found.predictions == [151.5, 80.25] and found.task == "regression"


def batches(values: list[Any], size: int, name: str) -> tuple[list[str], list[Any]]:
    return [f"{name}{i // size}" for i in range(len(values))], values


def test_a_multiclass_candidate_answering_other_classes_gets_roll_back() -> None:
    generator = np.random.default_rng(1)
    stable = batches(list(generator.choice(["a", "b", "c"], 1200, p=[0.5, 0.3, 0.2])), 3, "s")
    alike = batches(list(generator.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2])), 3, "c")
    shifted = batches(list(generator.choice(["a", "b", "c"], 600, p=[0.1, 0.2, 0.7])), 3, "c")
    assert canary.evaluate(stable, alike, "multiclass").verdict == "promote"
    report = canary.evaluate(stable, shifted, "multiclass")
    assert report.verdict == "roll back" and report.harmful
    assert {t.column for t in report.harm} == {"a", "b", "c"}  # each class at alpha / 3
    assert all(t.alpha == pytest.approx(0.01 / 3) for t in report.harm)


def test_a_regression_candidate_with_shifted_values_gets_roll_back() -> None:
    generator = np.random.default_rng(2)
    stable = batches(list(generator.normal(150, 40, 1000)), 2, "s")
    alike = batches(list(generator.normal(150, 40, 500)), 2, "c")
    assert canary.evaluate(stable, alike, "regression").verdict == "promote"
    shifted = batches(list(generator.normal(220, 40, 500)), 2, "c")
    assert canary.evaluate(stable, shifted, "regression").verdict == "roll back"


def test_too_few_requests_is_a_hold_not_a_guess() -> None:
    """500 rows from 10 requests are 10 requests."""
    report = canary.evaluate(batches([1.0] * 500, 50, "s"), batches([2.0] * 500, 1, "c"),
                             "regression")  # fmt: skip
    assert report.verdict == "hold" and not report.judged
    assert "stable has 10 requests, at least 50 needed" in report.render()


@pytest.mark.parametrize(
    ("task", "row"),
    [
        ("binary", "mean predicted probability"),
        ("multiclass", "mean top-class probability"),
        ("regression", "mean predicted value"),
    ],
)
def test_the_table_names_the_summary_metric_of_the_task(task: str, row: str) -> None:
    result = Comparison(Side("stable", "3", "v1"), 10.0, 0.0, 0.0, 20.0, 3.0, 151.5)
    table = "\n".join(comparison_table([result], task))
    assert row in table

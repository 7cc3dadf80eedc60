"""`rollout compare` of a multiclass or regression model: the answers each side logged (class
labels, values) and the PSI between them; the summary metric the handler emits per task."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber

from serving import canary
from tools.rollout.__main__ import comparison_table
from tools.rollout.live import (
    INSIGHTS_MAX_ROWS,
    PREDICTION_QUERY,
    Comparison,
    Live,
    Side,
)

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
GROUP = "/aws/lambda/wine"


def logged(lines: list[dict[str, Any]]) -> Any:
    logs = boto3.client("logs", region_name="eu-west-1")
    stub = Stubber(logs)
    stub.add_response(
        "start_query",
        {"queryId": "q"},
        {
            "logGroupName": GROUP,
            "startTime": int(START.timestamp()),
            "endTime": int(END.timestamp()),
            "queryString": PREDICTION_QUERY.format(version="4", limit=INSIGHTS_MAX_ROWS),
            "limit": INSIGHTS_MAX_ROWS,
        },
    )
    rows = [[{"field": "@message", "value": json.dumps(line)}] for line in lines]
    stub.add_response(
        "get_query_results", {"status": "Complete", "results": rows}, {"queryId": "q"}
    )
    stub.activate()
    return logs, stub


def live(logs: Any) -> Live:
    return Live(cloudformation=None, lambda_client=None, cloudwatch=None, logs=logs)


def test_multiclass_sides_are_read_as_the_class_labels_they_answered() -> None:
    # The handler's multiclass prediction line: labels under "predictions", and the
    # top-class probabilities under "confidences" (inference/answers.py).
    lines = [
        {"message": "prediction", "predictions": ["class_0", "class_2"], "confidences": [0.9, 0.8]},
        {"message": "prediction", "predictions": [1], "confidences": [0.7]},
        {"message": "request rejected"},
    ]
    logs, stub = logged(lines)
    found = live(logs).predictions(GROUP, "4", START, END, "multiclass")
    stub.assert_no_pending_responses()
    assert found.values == ["class_0", "class_2", 1]
    assert found.requests == 3


def test_regression_sides_are_read_as_values() -> None:
    lines = [{"message": "prediction", "predictions": [151.5, 80.25], "value_mean": 115.875}]
    logs, _ = logged(lines)
    assert live(logs).predictions(GROUP, "4", START, END, "regression").values == [151.5, 80.25]


def test_a_multiclass_candidate_answering_other_classes_gets_roll_back() -> None:
    generator = np.random.default_rng(1)
    stable = list(generator.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2]))
    alike = list(generator.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2]))
    shifted = list(generator.choice(["a", "b", "c"], 600, p=[0.1, 0.2, 0.7]))
    thresholds = canary.Thresholds()
    report = canary.shift_report(stable, alike, "multiclass", thresholds)
    assert "verdict: promote" in report and "classes: a " in report
    report = canary.shift_report(stable, shifted, "multiclass", thresholds)
    assert "verdict: roll back" in report
    assert "PSI of the candidate's predicted classes" in report


def test_a_regression_candidate_with_shifted_values_gets_roll_back() -> None:
    generator = np.random.default_rng(2)
    stable = list(generator.normal(150, 40, 500))
    thresholds = canary.Thresholds()
    alike = canary.shift_report(
        stable, list(generator.normal(150, 40, 500)), "regression", thresholds
    )
    assert "verdict: promote" in alike and "mean 1" in alike
    shifted = canary.shift_report(
        stable, list(generator.normal(220, 40, 500)), "regression", thresholds
    )
    assert "verdict: roll back" in shifted


def test_too_few_answers_is_a_verdict_not_a_guess() -> None:
    report = canary.shift_report([1.0] * 10, [2.0] * 500, "regression",
                                          canary.Thresholds())  # fmt: skip
    assert "verdict: too few requests to judge" in report
    assert "stable has 10 predictions, at least 200 needed" in report


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

"""Automatic rollback only on evidence of harm; the prediction shift pages with a hold (issue 22).

In automated mode CodeDeploy rolls back on the new version's errors and latency, throttles
and ``CanaryHarm >= 1`` (the canary evaluator's sequential test); ``PredictionShiftPSI``
measures a difference, not harm, and only pages, in 2 of 3 looks. In manual mode nothing
rolls back by itself: both page. Each alarm is read field by field from the template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from stacks.constructs.alarms import (
    PREDICTION_SHIFT_DATAPOINTS,
    PREDICTION_SHIFT_EVALUATION_PERIODS,
)
from tests.infra.conftest import CANARY, Synth, cdk_context, run_synth
from tools.transitions.changes import State, resolve

PREFIX = "sklearn-serving-prod-churn-"
NAMESPACE = "SklearnLambdaServing/prod"


def automated_context(**drift: Any) -> dict[str, Any]:
    context = cdk_context()
    # What `rollout start --version v2` writes in automated mode.
    context["environments"]["prod"]["rollout"].update(
        mode="automated", model_version="v2", stable_model_version="v1"
    )
    context["environments"]["prod"]["drift"].update(drift)
    return {**context, "env": "prod"}


@pytest.fixture(scope="module")
def automated(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return run_synth(tmp_path_factory.mktemp("cdk-out"), automated_context())


@pytest.fixture(scope="module")
def manual(synth: Callable[..., Synth]) -> Synth:
    return synth(env="prod", **CANARY)


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Purpose -> the alarm's properties, by its name."""
    return {
        a["Properties"]["AlarmName"].removeprefix(PREFIX): a["Properties"]
        for a in synth.resources("inference", "AWS::CloudWatch::Alarm").values()
    }


def rolled_back_on(synth: Synth) -> set[str]:
    """The purposes of the alarms the deployment group rolls back on."""
    (group,) = synth.resources("inference", "AWS::CodeDeploy::DeploymentGroup").values()
    configuration = group["Properties"]["AlarmConfiguration"]
    assert configuration["Enabled"] is True
    names = {
        logical_id: a["Properties"]["AlarmName"].removeprefix(PREFIX)
        for logical_id, a in synth.resources("inference", "AWS::CloudWatch::Alarm").items()
    }
    return {names[a["Name"]["Ref"]] for a in configuration["Alarms"]}


def topic(synth: Synth) -> list[dict[str, str]]:
    (topic_id,) = synth.resources("inference", "AWS::SNS::Topic")
    return [{"Ref": topic_id}]


METRIC = ("Namespace", "MetricName", "Statistic", "Dimensions", "Period")
RULE = ("ComparisonOperator", "Threshold", "DatapointsToAlarm", "EvaluationPeriods",
        "TreatMissingData")  # fmt: skip


def fields(alarm: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(alarm[key] for key in keys)


CANDIDATE = [{"Name": "ModelVersion", "Value": "v2"}]


def check_harm(alarm: dict[str, Any], synth: Synth) -> None:
    assert fields(alarm, METRIC) == (NAMESPACE, "CanaryHarm", "Maximum", CANDIDATE, 300)
    # One datapoint at 1: the always-valid test already pays for the repeated looks. A
    # canary with too few requests publishes nothing, which is no evidence of harm.
    assert fields(alarm, RULE) == ("GreaterThanOrEqualToThreshold", 1, 1, 1, "notBreaching")
    assert alarm["AlarmActions"] == alarm["OKActions"] == topic(synth)


def check_shift(alarm: dict[str, Any], synth: Synth, threshold: float = 0.25) -> None:
    assert fields(alarm, METRIC) == (NAMESPACE, "PredictionShiftPSI", "Maximum", CANDIDATE, 300)
    assert fields(alarm, RULE) == ("GreaterThanThreshold", threshold, 2, 3, "notBreaching")
    assert (PREDICTION_SHIFT_DATAPOINTS, PREDICTION_SHIFT_EVALUATION_PERIODS) == (2, 3)
    assert "never rolls a deployment back" in alarm["AlarmDescription"]
    assert alarm["AlarmActions"] == alarm["OKActions"] == topic(synth)


def test_automated_mode_rolls_back_on_errors_latency_throttles_and_harm_only(
    automated: Synth,
) -> None:
    assert rolled_back_on(automated) == {"latency-p99", "errors", "throttles", "canary-harm"}
    found = alarms(automated)
    check_harm(found["canary-harm"], automated)
    assert "CodeDeploy rolls the shift back" in found["canary-harm"]["AlarmDescription"]


def test_automated_mode_pages_on_the_prediction_shift_with_a_hold(automated: Synth) -> None:
    found = alarms(automated)
    assert "prediction-shift" not in rolled_back_on(automated)
    check_shift(found["prediction-shift"], automated)


def test_manual_mode_pages_on_harm_and_on_the_shift(manual: Synth) -> None:
    assert manual.resources("inference", "AWS::CodeDeploy::DeploymentGroup") == {}
    found = alarms(manual)
    check_harm(found["canary-harm"], manual)
    assert "nothing rolls back by itself" in found["canary-harm"]["AlarmDescription"]
    check_shift(found["prediction-shift"], manual)


def test_the_topic_lets_the_harm_alarm_publish(manual: Synth, automated: Synth) -> None:
    for synth in (manual, automated):
        (policy,) = synth.resources("inference", "AWS::SNS::TopicPolicy").values()
        document = resolve(policy["Properties"]["PolicyDocument"], synth.template("inference"),
                           State())  # fmt: skip
        (allow,) = [s for s in document["Statement"] if s["Effect"] == "Allow"]
        arns = allow["Condition"]["ArnLike"]["aws:SourceArn"]
        for purpose in ("canary-harm", "prediction-shift"):
            assert any(arn.endswith(f":alarm:{PREFIX}{purpose}") for arn in arns), purpose


def test_the_shift_threshold_is_the_drift_blocks_psi_alarm(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    edited = run_synth(tmp_path_factory.mktemp("cdk-out"), automated_context(psi_alarm=0.4))
    check_shift(alarms(edited)["prediction-shift"], edited, threshold=0.4)
    assert "canary-harm" in rolled_back_on(edited)


def test_without_a_canary_there_is_neither_harm_nor_shift_alarm(prod: Synth) -> None:
    assert {"canary-harm", "prediction-shift"}.isdisjoint(alarms(prod))


def canary_row(synth: Synth) -> list[dict[str, Any]]:
    """The dashboard widgets at the height of the PredictionShiftPSI graph."""
    (dashboard,) = synth.resources("inference", "AWS::CloudWatch::Dashboard").values()
    template = synth.template("inference")
    body = json.loads(resolve(dashboard["Properties"]["DashboardBody"], template, State()))
    (y,) = {w["y"] for w in body["widgets"] if "PredictionShiftPSI" in json.dumps(w)}
    return [w for w in body["widgets"] if w["y"] == y]


@pytest.mark.parametrize("mode", ["manual", "automated"])
def test_the_dashboard_shows_harm_and_requests_beside_the_shift(
    mode: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(mode)
    row = canary_row(synth)
    shown = [json.dumps(w["properties"]["metrics"]) for w in row]
    for name in ("CanaryHarm", "PredictionShiftPSI", "CanaryRequests", "CanarySamples"):
        (graph,) = [metrics for metrics in shown if re.search(rf"\b{name}\b", metrics)]
        assert "ModelVersion" in graph, name
    assert sum(w["width"] for w in row) == 24

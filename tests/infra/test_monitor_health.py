"""A broken monitor must not look like "no drift" (issue 20, finding 6).

The drift monitor and the canary evaluator run asynchronously from EventBridge. Every run
that fails, expires or cannot be delivered lands in one encrypted, TLS-only queue; each
function's Errors, the queue's depth and the capture stream's delivery to S3 page through
the alarm topic, whose policy names them. The PSI alarms keep treating missing data as not
breaching, because the monitors publish PSI only with enough captured rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.conftest import CANARY, Synth, cdk_context

PROD_CANARY = {"env": "prod", **CANARY}


def by_type(synth: Synth, type_: str) -> dict[str, dict[str, Any]]:
    return synth.resources("inference", type_)


def monitor_functions(synth: Synth) -> dict[str, str]:
    """Handler entry ("index" or "canary") -> logical ID of the monitor function."""
    found = {}
    for logical_id, function in by_type(synth, "AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if "PSI_ALARM" in variables:
            found["index"] = logical_id
        elif "ALIAS_NAME" in variables and "MIN_REQUESTS" in variables:
            found["canary"] = logical_id
    return found


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"].removeprefix("sklearn-serving-prod-churn-"): a["Properties"]
        for a in by_type(synth, "AWS::CloudWatch::Alarm").values()
    }


@pytest.fixture(scope="module")
def prod_canary(synth: Callable[..., Synth]) -> Synth:
    return synth(**PROD_CANARY)


def test_failed_runs_land_in_one_encrypted_tls_only_queue(prod_canary: Synth) -> None:
    ((queue_id, queue),) = by_type(prod_canary, "AWS::SQS::Queue").items()
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    queue_arn = {"Fn::GetAtt": [queue_id, "Arn"]}
    functions = monitor_functions(prod_canary)
    assert sorted(functions) == ["canary", "index"]
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in by_type(prod_canary, "AWS::Lambda::EventInvokeConfig").values()
    }
    assert configs.keys() == set(functions.values())
    for function_id, config in configs.items():
        assert config["DestinationConfig"] == {"OnFailure": {"Destination": queue_arn}}
        assert config["MaximumRetryAttempts"] == 0
        # A run that cannot start within its period is dropped into the queue.
        period = 3600 if function_id == functions["index"] else 300
        assert config["MaximumEventAgeInSeconds"] == period
    rules = {}
    for rule_id, rule in by_type(prod_canary, "AWS::Events::Rule").items():
        for target in rule["Properties"]["Targets"]:
            if target["Arn"].get("Fn::GetAtt", [None])[0] in functions.values():
                rules[rule_id] = target
    assert len(rules) == 2
    for target in rules.values():
        assert target["DeadLetterConfig"] == {"Arn": queue_arn}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    ((_, policy),) = by_type(prod_canary, "AWS::SQS::QueuePolicy").items()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert {json.dumps(s["Principal"]) for s in allows} == {'{"Service": "events.amazonaws.com"}'}
    assert {s["Action"] for s in allows} == {"sqs:SendMessage"}
    assert sorted(s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
                  for s in allows) == sorted(rules)  # fmt: skip


def test_the_monitors_role_may_send_to_the_queue_and_nowhere_else(prod_canary: Synth) -> None:
    ((queue_id, _),) = by_type(prod_canary, "AWS::SQS::Queue").items()
    sends = [
        s
        for p in by_type(prod_canary, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "sqs:SendMessage" in json.dumps(s["Action"])
    ]
    assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": [queue_id, "Arn"]}]


def test_each_monitor_pages_on_its_errors_and_on_failed_runs(prod_canary: Synth) -> None:
    found = alarms(prod_canary)
    functions = monitor_functions(prod_canary)
    for name, entry, period in (
        ("drift-monitor-failures", "index", 3600),
        ("canary-evaluator-failures", "canary", 300),
    ):
        alarm = found[name]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
            "AWS/Lambda", "Errors", "Sum",
        )  # fmt: skip
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": functions[entry]}}]
        assert (alarm["Period"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            period, 0, "GreaterThanThreshold",
        )  # fmt: skip
    ((queue_id, _),) = by_type(prod_canary, "AWS::SQS::Queue").items()
    depth = found["monitor-failed-runs"]
    assert (depth["Namespace"], depth["MetricName"], depth["Statistic"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
    )  # fmt: skip
    assert depth["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
    ]
    assert (depth["Threshold"], depth["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_capture_delivery_to_s3_pages_when_records_go_stale(prod_canary: Synth) -> None:
    ((stream_id, _),) = by_type(prod_canary, "AWS::KinesisFirehose::DeliveryStream").items()
    alarm = alarms(prod_canary)["capture-delivery"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/Firehose", "DeliveryToS3.DataFreshness", "Maximum",
    )  # fmt: skip
    assert alarm["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": {"Ref": stream_id}}]
    # Firehose's guidance: above the buffering limit, at most 15 minutes.
    assert (alarm["Threshold"], alarm["Period"]) == (900, 300)


def test_missing_data_is_treated_per_alarm(prod_canary: Synth) -> None:
    found = alarms(prod_canary)
    # PSI and CanaryHarm are published only with enough captured requests: a quiet window or
    # a young canary is silent, and that is neither drift, nor a shift, nor harm (breaching
    # would roll back every young canary in automated mode). The health alarms report a
    # broken monitor instead.
    for name in ("feature-drift", "prediction-drift", "prediction-shift", "canary-harm",
                 "drift-monitor-failures", "canary-evaluator-failures", "monitor-failed-runs",
                 "capture-delivery"):  # fmt: skip
        assert found[name]["TreatMissingData"] == "notBreaching", name


@pytest.mark.infra
def test_the_health_alarms_notify_and_the_topic_lets_them_publish(prod_canary: Synth) -> None:
    template = prod_canary.template("inference")
    (policy,) = by_type(prod_canary, "AWS::SNS::TopicPolicy").values()
    (allow,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Allow"]  # fmt: skip
    named = json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
    (topic_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    found = alarms(prod_canary)
    for name in ("drift-monitor-failures", "canary-evaluator-failures", "monitor-failed-runs",
                 "capture-delivery"):  # fmt: skip
        assert f":alarm:sklearn-serving-prod-churn-{name}" in named, name
        assert found[name]["AlarmActions"] == found[name]["OKActions"] == [{"Ref": topic_id}]


def test_without_a_canary_there_is_no_evaluator_alarm(prod: Synth) -> None:
    names = {a["Properties"]["AlarmName"] for a in by_type(prod, "AWS::CloudWatch::Alarm").values()}
    assert "sklearn-serving-prod-churn-drift-monitor-failures" in names
    assert "sklearn-serving-prod-churn-canary-evaluator-failures" not in names


def test_without_capture_there_is_neither_monitor_nor_their_alarms(
    synth_context: Callable[[dict[str, Any]], Synth],
) -> None:
    context = cdk_context()
    context["environments"]["dev"]["capture"]["enabled"] = False
    names = {
        a["Properties"]["AlarmName"].removeprefix("sklearn-serving-dev-churn-")
        for a in synth_context(context).resources("inference", "AWS::CloudWatch::Alarm").values()
    }
    assert names == {"latency-p99", "errors", "throttles"}


def automated_prod_alarms(
    synth_context: Callable[[dict[str, Any]], Synth],
) -> tuple[set[str], set[str]]:
    """Prod in automated mode: the names of the alarms its deployment group rolls back on,
    and of all its alarms."""
    context = cdk_context()
    context["environments"]["prod"]["rollout"]["mode"] = "automated"
    automated = synth_context({**context, "env": "prod"})
    (group,) = automated.resources("inference", "AWS::CodeDeploy::DeploymentGroup").values()
    names = {
        logical_id: a["Properties"]["AlarmName"]
        for logical_id, a in automated.resources("inference", "AWS::CloudWatch::Alarm").items()
    }
    watched = {names[a["Name"]["Ref"]] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]}
    return watched, set(names.values())


def test_health_alarms_page_but_never_roll_a_deployment_back(
    synth_context: Callable[[dict[str, Any]], Synth],
) -> None:
    prefix = "sklearn-serving-prod-churn-"
    alarms = automated_prod_alarms(synth_context)
    watched, names = ({name.removeprefix(prefix) for name in found} for found in alarms)
    # Harm rolls back; the prediction shift, like the health alarms, only pages.
    assert watched == {"latency-p99", "errors", "throttles", "canary-harm"}
    assert {"drift-monitor-failures", "canary-evaluator-failures", "monitor-failed-runs",
            "capture-delivery", "prediction-shift"} <= names - watched  # fmt: skip

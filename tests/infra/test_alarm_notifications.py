"""Alarm notifications can be delivered: the topic and its key let exactly these alarms in.

A topic policy replaces SNS's default policy. The first release's policy held only the
TLS Deny, so no alarm could ever publish. The policy must allow cloudwatch.amazonaws.com
to publish, scoped to this account and to the stack's own alarms; the key policy must let
CloudWatch encrypt under the same conditions; the Deny on plain HTTP stays.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stacks.constructs.alarm_topic import PLACEHOLDER_WARNING
from tests.infra.conftest import CANARY, Synth, cdk_context
from tools.transitions.changes import State, resolve

CONFIGURATIONS = {
    "dev": {"env": "dev"},
    "prod-canary": {"env": "prod", **CANARY},
}


def resources(template: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [
        resolve(r["Properties"], template, State())
        for r in template["Resources"].values()
        if r["Type"] == type_
    ]


def alarm_arns(template: dict[str, Any]) -> set[str]:
    return {
        f"arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:{a['AlarmName']}"
        for a in resources(template, "AWS::CloudWatch::Alarm")
    }


def cloudwatch_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in document["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]


def check(template: dict[str, Any]) -> None:
    arns = alarm_arns(template)
    assert len(arns) >= 3
    (policy,) = resources(template, "AWS::SNS::TopicPolicy")
    (allow,) = cloudwatch_statements(policy["PolicyDocument"])
    assert (allow["Effect"], allow["Action"]) == ("Allow", "sns:Publish")
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": "<AWS::AccountId>"}
    assert set(allow["Condition"]["ArnLike"]["aws:SourceArn"]) == arns
    denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert [d["Condition"] for d in denies] == [{"Bool": {"aws:SecureTransport": "false"}}]

    # The topic's key (prod also has its data key: test_capture_encryption).
    (key,) = [
        k for k in resources(template, "AWS::KMS::Key")
        if "Encrypts the inference alarm topic" in k["Description"]
    ]  # fmt: skip
    (encrypt,) = cloudwatch_statements(key["KeyPolicy"])
    assert set(encrypt["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert encrypt["Condition"] == allow["Condition"]

    (topic_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    for alarm in template["Resources"].values():
        if alarm["Type"] == "AWS::CloudWatch::Alarm":
            actions = alarm["Properties"]
            assert actions["AlarmActions"] == actions["OKActions"] == [{"Ref": topic_id}]


@pytest.mark.infra
@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_the_topic_and_key_let_the_stacks_alarms_notify(
    synth: Callable[..., Synth], configuration: str
) -> None:
    check(synth(**CONFIGURATIONS[configuration]).template("inference"))


@pytest.mark.infra
def test_automated_mode_lets_its_page_only_alarm_notify_too(
    synth_context: Callable[[dict[str, Any]], Synth],
) -> None:
    context = cdk_context()
    context["environments"]["prod"]["rollout"]["mode"] = "automated"
    template = synth_context({**context, "env": "prod"}).template("inference")
    assert any(arn.endswith("-errors-all-versions") for arn in alarm_arns(template))
    check(template)


def test_a_policy_with_only_the_tls_deny_is_refused() -> None:
    # The first release's policy: nothing allows CloudWatch to publish.
    template = {
        "Resources": {
            "Policy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {
                    "PolicyDocument": {
                        "Statement": [
                            {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish",
                             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        ]
                    }
                },
            },
            **{
                f"Alarm{i}": {"Type": "AWS::CloudWatch::Alarm",
                              "Properties": {"AlarmName": f"a{i}"}}
                for i in range(3)
            },
        }
    }  # fmt: skip
    with pytest.raises(ValueError, match="not enough values"):
        check(template)


def warnings(result: Synth) -> list[tuple[str, str]]:
    """(construct path, message) of every construct warning synth reported."""
    report = json.loads((result.directory / "validation-report.json").read_text())
    return [
        (construct["constructPath"], violation["description"])
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == "Construct Annotations"
        for violation in plugin["violations"]
        if violation["ruleName"] == f"Annotation::{PLACEHOLDER_WARNING}"
        for construct in violation["violatingConstructs"]
    ]


@pytest.mark.infra
def test_a_placeholder_address_is_subscribed_with_a_warning_that_it_reaches_no_one(
    synth: Callable[..., Synth],
) -> None:
    prod = synth(env="prod")
    prod.assertions("inference").has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "replace-me@example.org"}
    )
    ((path, message),) = warnings(prod)
    assert path == "sklearn-serving-prod-inference/Monitoring/Default"
    assert "reach no one until it is replaced" in message
    assert "-c alarm_email=" in message


@pytest.mark.infra
def test_a_real_address_synthesizes_without_the_warning(synth: Callable[..., Synth]) -> None:
    prod = synth(env="prod", alarm_email="ml-oncall@company.io")
    prod.assertions("inference").has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-oncall@company.io"}
    )
    assert warnings(prod) == []

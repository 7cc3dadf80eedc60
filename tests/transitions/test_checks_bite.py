"""The transition checks catch the failures they exist for, on small hand-made templates.

Each pair of templates is the smallest reproduction of a deploy that fails in
CloudFormation; the expected classification comes from the resource provider schemas
(e.g. a scalable target's ResourceId is create-only), not from a list of our own.
"""

from __future__ import annotations

from typing import Any

from tools.transitions import checks
from tools.transitions.changes import Action, State, apply, plan

FUNCTION = {"Type": "AWS::Lambda::Function", "Properties": {"Role": "r"}}


def version(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Version",
        "Properties": {"FunctionName": {"Ref": "Fn"}, "Description": description},
        "DeletionPolicy": "Retain",
        **extra,
    }


def scalable_target(qualifier: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
        "Properties": {
            "ServiceNamespace": "lambda",
            "ScalableDimension": "lambda:function:ProvisionedConcurrency",
            "ResourceId": {"Fn::Join": ["", ["function:", {"Ref": "Fn"}, ":", qualifier]]},
            "MinCapacity": 1,
            "MaxCapacity": 10,
        },
    }


def alias(version_ref: Any, weights: list[Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": {"Ref": "Fn"},
        "Name": "production",
        "FunctionVersion": version_ref,
    }
    if weights:
        properties["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    return {"Type": "AWS::Lambda::Alias", "Properties": properties}


def template(**resources: Any) -> dict[str, Any]:
    return {"Resources": {"Fn": FUNCTION, **resources}}


def test_a_scalable_target_passing_between_logical_ids_is_reported() -> None:
    # The first-canary defect: version 1's target moves from Candidate to Stable.
    first = template(
        V1=version("v1"),
        CandidateScaling=scalable_target({"Fn::GetAtt": ["V1", "Version"]}),
        Alias=alias({"Fn::GetAtt": ["V1", "Version"]}),
    )
    deploy_1 = plan({"Resources": {}}, first, State())
    canary = template(
        V2=version("v2"),
        CandidateScaling=scalable_target({"Fn::GetAtt": ["V2", "Version"]}),
        StableScaling=scalable_target("1"),
        Alias=alias("1", [{"FunctionVersion": {"Fn::GetAtt": ["V2", "Version"]},
                           "FunctionWeight": 0.1}]),
    )  # fmt: skip
    deploy_2 = plan(first, canary, apply(deploy_1))
    assert deploy_2.changes["CandidateScaling"].action is Action.REPLACE
    assert deploy_2.changes["CandidateScaling"].properties == ("ResourceId",)
    assert deploy_2.changes["StableScaling"].action is Action.CREATE
    assert deploy_2.changes["V1"].action is Action.RETAIN
    assert deploy_2.published() == [2]
    (problem,) = checks.problems(deploy_2)
    assert "function:F:1" in problem
    assert "passes from CandidateScaling to StableScaling" in problem


def test_a_replacement_keeping_its_name_is_reported() -> None:
    named = {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "errors",
             "MetricName": "Errors", "Namespace": "AWS/Lambda"}}  # fmt: skip
    renamed = {**named, "Type": "AWS::CloudWatch::Alarm"}
    first = template(ErrorsAlarm=named)
    second = template(ErrorsAlarmRenamedConstruct=renamed)
    deploy = plan(first, second, apply(plan({"Resources": {}}, first, State())))
    (problem,) = checks.problems(deploy)
    assert "passes from ErrorsAlarm to ErrorsAlarmRenamedConstruct" in problem


def test_deleting_a_published_version_is_reported() -> None:
    first = template(V1=version("v1", DeletionPolicy="Delete"), Alias=alias({"Ref": "V1"}))
    second = template(V2=version("v2"), Alias=alias({"Fn::GetAtt": ["V2", "Version"]}))
    deploy = plan(first, second, apply(plan({"Resources": {}}, first, State())))
    assert deploy.changes["V1"].action is Action.DELETE
    assert any("V1 (AWS::Lambda::Version) would be deleted" in p for p in checks.problems(deploy))


def test_routing_to_a_version_never_published_is_reported() -> None:
    first = template(V1=version("v1"), Alias=alias({"Fn::GetAtt": ["V1", "Version"]}))
    second = template(
        V1=version("v1"),
        Alias=alias("7", [{"FunctionVersion": {"Fn::GetAtt": ["V1", "Version"]},
                           "FunctionWeight": 0.1}]),
    )  # fmt: skip
    deploy = plan(first, second, apply(plan({"Resources": {}}, first, State())))
    assert checks.problems(deploy) == ["Alias routes to version 7, which was never published"]


def test_an_alias_that_does_not_wait_for_capacity_is_reported() -> None:
    def reconciler(phase: str, **extra: Any) -> dict[str, Any]:
        return {
            "Type": "Custom::ProvisionedConcurrency",
            "Properties": {"ServiceToken": {"Fn::GetAtt": ["Reconciler", "Arn"]},
                           "FunctionName": {"Ref": "Fn"}, "Phase": phase, "Allocations": []},
            **extra,
        }  # fmt: skip

    unordered = template(V1=version("v1"), Alias=alias({"Fn::GetAtt": ["V1", "Version"]}),
                         ScaleUp=reconciler("scale_up"), Settle=reconciler("settle"))  # fmt: skip
    deploy = plan({"Resources": {}}, unordered, State())
    assert checks.problems(deploy) == [
        "Alias can move traffic before provisioned concurrency is ready",
        "provisioned concurrency can be released before Alias has moved",
    ]
    ordered = template(
        V1=version("v1"),
        Alias={**alias({"Fn::GetAtt": ["V1", "Version"]}), "DependsOn": ["ScaleUp"]},
        ScaleUp=reconciler("scale_up"),
        Settle=reconciler("settle", DependsOn="Alias"),
    )
    assert checks.problems(plan({"Resources": {}}, ordered, State())) == []


def test_a_change_to_a_replaced_resource_propagates_to_what_refers_to_it() -> None:
    topic = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alarms"}}
    subscription = {"Type": "AWS::SNS::Subscription",
                    "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email",
                                   "Endpoint": "a@example.com"}}  # fmt: skip
    first = template(Topic=topic, Subscription=subscription)
    renamed = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alarms-2"}}
    second = template(Topic=renamed, Subscription=subscription)
    deploy = plan(first, second, apply(plan({"Resources": {}}, first, State())))
    assert deploy.changes["Topic"].action is Action.REPLACE
    # TopicArn is create-only on a subscription: the new topic replaces it too.
    assert deploy.changes["Subscription"].action is Action.REPLACE


def test_an_alias_that_does_not_wait_for_the_traffic_gate_is_reported() -> None:
    gate = {"Type": "Custom::TrafficGate",
            "Properties": {"ServiceToken": {"Fn::GetAtt": ["Gate", "Arn"]},
                           "FunctionArn": {"Ref": "V1"}}}  # fmt: skip
    unordered = template(V1=version("v1"), Alias=alias({"Fn::GetAtt": ["V1", "Version"]}),
                         Check=gate)  # fmt: skip
    assert checks.problems(plan({"Resources": {}}, unordered, State())) == [
        "Alias can move traffic before Check has checked the new version"
    ]
    ordered = template(
        V1=version("v1"),
        Alias={**alias({"Fn::GetAtt": ["V1", "Version"]}), "DependsOn": ["Check"]},
        Check=gate,
    )
    assert checks.problems(plan({"Resources": {}}, ordered, State())) == []

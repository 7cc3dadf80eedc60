"""The evaluator follows IAM's documented rules; the reference names the ARNs IAM checks."""

from __future__ import annotations

import pytest

from tests.authz.iam import Request, evaluate, statements
from tests.authz.sar import Call, request_context, resource_arns

FN = "arn:aws:lambda:eu-west-1:123456789012:function:fn"


def allowed(statement_list: list[dict[str, object]], request: Request) -> bool:
    return evaluate(statements("policy", {"Statement": statement_list}), request).allowed


def allow(action: object, resource: object, **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_nothing_matching_is_an_implicit_deny() -> None:
    assert not allowed([allow("s3:GetObject", "*")], Request("s3:PutObject", "arn:aws:s3:::b/k"))


def test_an_explicit_deny_wins_over_any_allow() -> None:
    policy = [allow("lambda:*", "*"), {"Effect": "Deny", "Action": "lambda:GetAlias",
                                       "Resource": FN}]  # fmt: skip
    assert not allowed(policy, Request("lambda:GetAlias", FN))
    assert allowed(policy, Request("lambda:GetFunction", FN))


def test_actions_match_case_insensitively_and_with_wildcards() -> None:
    assert allowed([allow("Lambda:get*", FN)], Request("lambda:GetAlias", FN))
    assert not allowed([allow("lambda:Get?", FN)], Request("lambda:GetAlias", FN))


def test_resources_match_case_sensitively_and_a_qualifier_wildcard_needs_the_colon() -> None:
    assert allowed([allow("lambda:GetAlias", f"{FN}*")], Request("lambda:GetAlias", FN))
    assert not allowed([allow("lambda:GetAlias", f"{FN}:*")], Request("lambda:GetAlias", FN))
    assert not allowed([allow("lambda:GetAlias", FN.upper())], Request("lambda:GetAlias", FN))


def test_not_action_and_not_resource_invert_the_match() -> None:
    policy = [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"}]
    assert allowed(policy, Request("s3:GetObject", "arn:aws:s3:::public/k"))
    assert not allowed(policy, Request("s3:GetObject", "arn:aws:s3:::secret/k"))
    assert not allowed(policy, Request("iam:PassRole", "arn:aws:s3:::public/k"))


def test_a_condition_on_a_key_the_request_lacks_is_false_unless_if_exists() -> None:
    equals = allow("cloudwatch:PutMetricData", "*",
                   Condition={"StringEquals": {"cloudwatch:namespace": "ns"}})  # fmt: skip
    if_exists = allow("cloudwatch:PutMetricData", "*",
                      Condition={"StringEqualsIfExists": {"cloudwatch:namespace": "ns"}},
                      )  # fmt: skip
    bare = Request("cloudwatch:PutMetricData", "*")
    assert not allowed([equals], bare)
    assert allowed([if_exists], bare)
    assert allowed(
        [equals], Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "ns"})
    )
    assert not allowed([equals], Request("cloudwatch:PutMetricData", "*",
                                         {"cloudwatch:namespace": "other"}))  # fmt: skip


def test_negated_operators_and_null() -> None:
    not_like = allow("s3:GetObject", "*", Condition={"StringNotLike": {"aws:userid": "bad*"}})
    assert allowed([not_like], Request("s3:GetObject", "*", {"aws:userid": "good"}))
    assert not allowed([not_like], Request("s3:GetObject", "*", {"aws:userid": "bad1"}))
    null = allow("s3:GetObject", "*", Condition={"Null": {"aws:SourceArn": "true"}})
    assert allowed([null], Request("s3:GetObject", "*"))
    assert not allowed([null], Request("s3:GetObject", "*", {"aws:SourceArn": "x"}))


def test_an_unknown_operator_is_refused_not_ignored() -> None:
    policy = [allow("s3:GetObject", "*", Condition={"DateLessThan": {"aws:CurrentTime": "x"}})]
    with pytest.raises(ValueError, match="DateLessThan"):
        allowed(policy, Request("s3:GetObject", "*", {"aws:CurrentTime": "y"}))


def test_a_resource_policy_needs_the_caller_named() -> None:
    policy = [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
               "Action": "lambda:InvokeFunction", "Resource": f"{FN}:3",
               "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:events:*:*:rule/r"}},
               }]  # fmt: skip
    source = {"aws:SourceArn": "arn:aws:events:eu-west-1:123456789012:rule/r"}
    events = {"Service": "events.amazonaws.com"}
    assert allowed(policy, Request("lambda:InvokeFunction", f"{FN}:3", source, events))
    assert not allowed(policy, Request("lambda:InvokeFunction", f"{FN}:4", source, events))
    assert not allowed(policy, Request("lambda:InvokeFunction", f"{FN}:3", source,
                                       {"Service": "sns.amazonaws.com"}))  # fmt: skip


# ---------------------------------------------------------------------------- reference


def test_get_alias_is_checked_on_the_unqualified_function() -> None:
    call = Call("lambda", "GetAlias", {"FunctionName": "fn", "Name": "production"})
    assert resource_arns(call) == [FN]


def test_provisioned_concurrency_calls_are_checked_on_the_version_or_alias() -> None:
    version = Call("lambda", "PutProvisionedConcurrencyConfig",
                   {"FunctionName": "fn", "Qualifier": "7"})  # fmt: skip
    alias = Call("lambda", "DeleteProvisionedConcurrencyConfig",
                 {"FunctionName": FN, "Qualifier": "production"})  # fmt: skip
    assert resource_arns(version) == [f"{FN}:7"]
    assert resource_arns(alias) == [f"{FN}:production"]


def test_an_invocation_keeps_its_qualifier() -> None:
    assert resource_arns(Call("lambda", "Invoke", {"FunctionName": f"{FN}:3"})) == [f"{FN}:3"]
    assert resource_arns(Call("lambda", "Invoke", {"FunctionName": "fn"})) == [FN]


def test_actions_without_a_resource_type_need_star() -> None:
    call = Call(
        "application-autoscaling", "DescribeScalableTargets", {"ServiceNamespace": "lambda"}
    )
    assert resource_arns(call) == ["*"]


def test_log_group_actions_are_checked_with_the_log_stream_suffix() -> None:
    call = Call("logs", "StartQuery", {"logGroupName": "g"})
    assert resource_arns(call) == ["arn:aws:logs:eu-west-1:123456789012:log-group:g:log-stream:"]


def test_condition_keys_come_from_the_parameters_the_reference_lists() -> None:
    call = Call("application-autoscaling", "RegisterScalableTarget",
                {"ServiceNamespace": "lambda", "ScalableDimension": "d",
                 "ResourceId": "r"})  # fmt: skip
    assert request_context(call) == {
        "application-autoscaling:service-namespace": "lambda",
        "application-autoscaling:scalable-dimension": "d",
    }
    describe = Call("application-autoscaling", "DescribeScalableTargets",
                    {"ServiceNamespace": "lambda", "ScalableDimension": "d"})  # fmt: skip
    assert request_context(describe) == {}


def test_a_required_resource_that_cannot_be_named_is_an_error() -> None:
    with pytest.raises(ValueError, match="deploymentgroup"):
        resource_arns(Call("codedeploy", "GetDeployment", {"deploymentId": "d-1"}))


def test_a_tls_only_deny_for_everyone_spares_a_service_calling_over_tls() -> None:
    policy = [
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": "sqs:SendMessage", "Resource": "*"},
    ]  # fmt: skip
    events = {"Service": "events.amazonaws.com"}
    tls = Request("sqs:SendMessage", "q", {"aws:SecureTransport": "true"}, events)
    plain = Request("sqs:SendMessage", "q", {"aws:SecureTransport": "false"}, events)
    assert allowed(policy, tls)
    assert not allowed(policy, plain)

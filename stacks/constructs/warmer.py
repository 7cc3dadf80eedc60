"""Scheduled warm-up pings, one per version that takes traffic."""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

WARMUP_EVENT = {"_warmup": True}


@jsii.implements(events.IRuleTarget)
class _QualifiedFunctionTarget:
    """An EventBridge target naming a version's qualified ARN.

    CDK's LambdaFunction target cannot add the invoke permission to a version imported by
    number (the stable one), so the warmer adds both permissions itself, the same way.
    """

    def __init__(self, version: lambda_.IVersion) -> None:
        self._version = version

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        del rule, id  # the target needs neither the rule nor an id
        return events.RuleTargetConfig(
            arn=self._version.function_arn,
            input=events.RuleTargetInput.from_object(WARMUP_EVENT),
            retry_policy=events.CfnRule.RetryPolicyProperty(maximum_retry_attempts=0),
        )


class Warmer(Construct):
    """Invokes each qualified version directly, not the alias.

    A ping through a weighted alias lands on the candidate with probability
    ``canary_weight``, so the candidate would stay mostly cold; targeting the versions
    keeps one execution environment of each initialised (model downloaded and loaded).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        versions: Sequence[lambda_.IVersion],
        rate_minutes: int,
    ) -> None:
        super().__init__(scope, id_)
        self.rule = events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(Duration.minutes(rate_minutes)),
            description='Warm-up ping ({"_warmup": true}) to each version taking traffic.',
        )
        for index, version in enumerate(versions):
            self.rule.add_target(_QualifiedFunctionTarget(version))
            lambda_.CfnPermission(
                self,
                f"InvokePermission{index}",
                action="lambda:InvokeFunction",
                function_name=version.function_arn,
                principal="events.amazonaws.com",
                source_arn=self.rule.rule_arn,
            )

"""Provisioned concurrency on published versions, kept off the weighted alias."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    CustomResource,
    Duration,
    Stack,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.constructs.nag_ids import logical_id
from stacks.constructs.project_function import grant_on_versions, logs_and_role, python_function


@dataclass(frozen=True)
class Allocation:
    """``executions`` provisioned on ``version``; autoscaling may go up to ``maximum``.

    ``weight`` is the share of the alias's traffic the version takes after the deploy
    (1.0 for a version that takes it all, including CodeDeploy's target in automated
    mode): the reconciler gives a version whose share grows that share of the capacity
    serving now, so that it takes over warm.
    """

    version: lambda_.IVersion
    executions: int
    maximum: int
    weight: float


class ProvisionedConcurrency(Construct):
    """Two custom resources that reconcile provisioned concurrency and its autoscaling.

    Lambda refuses provisioned concurrency on an alias with a routing configuration
    (cfn-lint E3020), ``AWS::Lambda::Version.ProvisionedConcurrencyConfig`` is create-only
    and reaches only the version this template publishes, and a CloudFormation scalable
    target per version would pass from one logical resource to another between deploys.
    So one reconciler owns every allocation and scalable target, keyed by version (see its
    module docstring): ``scale_up`` runs before the alias moves (the alias depends on it),
    ``settle`` after (it depends on the alias) and also releases whatever superseded
    versions still hold.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: lambda_.Function,
        alias_name: str,
        allocations: Sequence[Allocation],
        autoscaling_target_utilization: float | None,
    ) -> None:
        super().__init__(scope, id_)
        log_group, role = logs_and_role(
            self,
            prefix="Reconciler",
            description="Sets provisioned concurrency on the inference function's versions.",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                # IAM checks these against the unqualified function ARN (Service
                # Authorization Reference: resource type "function"); a grant on
                # "<arn>:*" does not match it. Both phases read the alias to release only
                # versions taking no traffic.
                actions=["lambda:ListProvisionedConcurrencyConfigs", "lambda:GetAlias"],
                resources=[function.function_arn],
            )
        )
        # These check the qualified ARN: "function version" or "function alias".
        grant_on_versions(
            role,
            function,
            [
                "lambda:GetProvisionedConcurrencyConfig",
                "lambda:PutProvisionedConcurrencyConfig",
                "lambda:DeleteProvisionedConcurrencyConfig",
            ],
            why="Provisioned concurrency is set per version qualifier of this one function",
        )
        # Every run lists the scalable targets and releases a version's target before its
        # allocation, with autoscaling on or off (leftover targets of an earlier
        # configuration included): these two are needed in every configuration.
        _grant_target_cleanup(role, function)
        if autoscaling_target_utilization is not None:
            _grant_autoscaling(role, function)
        reconciler = python_function(
            self,
            "Reconciler",
            package="reconciler",
            # Waiting for READY takes minutes; the handler answers before this runs out.
            timeout=Duration.minutes(15),
            memory_mb=256,
            role=role,
            log_group=log_group,
            description="Reconciles provisioned concurrency of the inference versions.",
        )
        properties: dict[str, object] = {
            "FunctionName": function.function_name,
            "AliasName": alias_name,
            "Allocations": [
                {
                    "Qualifier": a.version.version,
                    "Executions": str(a.executions),
                    "Maximum": str(a.maximum),
                    "Weight": f"{a.weight:g}",
                }
                for a in allocations
                if a.executions > 0
            ],
        }
        if autoscaling_target_utilization is not None:
            properties["Autoscaling"] = {"TargetUtilization": f"{autoscaling_target_utilization:g}"}
        # The same allocations twice, one resource per phase.
        self.scale_up, self.settle = (
            CustomResource(
                self,
                phase_id,
                service_token=reconciler.function_arn,
                resource_type="Custom::ProvisionedConcurrency",
                properties={**properties, "Phase": phase},
                service_timeout=Duration.minutes(15),
            )
            for phase_id, phase in (("ScaleUp", "scale_up"), ("Settle", "settle"))
        )


def _grant_autoscaling(role: iam.Role, function: lambda_.Function) -> None:
    """What registering Lambda scalable targets with target tracking needs.

    Application Auto Scaling's user guide ("identity-based policy examples") lists the
    actions; its scalable targets have no ARN known before registration, so the actions are
    scoped by the service namespace condition instead.
    """
    role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
            ],
            # The service authorization reference lists scalable-target as the resource
            # type of these actions; a target's id is known only after registration.
            resources=[scalable_targets(role)],
            conditions=LAMBDA_TARGETS_ONLY,
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            # Target tracking creates its CloudWatch alarms as the caller.
            actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
            resources=[target_tracking_alarms(role, function)],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            # The first registration in an account creates Lambda's service-linked role.
            actions=["iam:CreateServiceLinkedRole"],
            resources=[
                Stack.of(role).format_arn(
                    service="iam",
                    region="",
                    resource="role/aws-service-role/lambda.application-autoscaling.amazonaws.com",
                    resource_name="AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency",
                )
            ],
            conditions={
                "StringLike": {"iam:AWSServiceName": "lambda.application-autoscaling.amazonaws.com"}
            },
        )
    )


# Scalable targets have no ARN before registration: the statements on scalable-target/* are
# limited to Lambda provisioned-concurrency targets by the service's condition keys.
LAMBDA_TARGETS_ONLY = {
    "StringEquals": {
        "application-autoscaling:service-namespace": "lambda",
        "application-autoscaling:scalable-dimension": "lambda:function:ProvisionedConcurrency",
    }
}


def scalable_targets(role: iam.Role) -> str:
    return Stack.of(role).format_arn(
        service="application-autoscaling",
        resource="scalable-target",
        resource_name="*",
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def target_tracking_alarms(role: iam.Role, function: lambda_.Function) -> str:
    return Stack.of(role).format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"TargetTracking-function:{function.function_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def _grant_target_cleanup(role: iam.Role, function: lambda_.Function) -> None:
    """Listing and deregistering targets: what releasing a version needs in every
    configuration (the reconciler deregisters a target before it deletes the allocation,
    so that autoscaling cannot put it back)."""
    role.add_to_policy(
        iam.PolicyStatement(
            # Describe* has no resource type (Service Authorization Reference for
            # Application Auto Scaling): "*" is the only resource that matches.
            actions=["application-autoscaling:DescribeScalableTargets"],
            resources=["*"],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["application-autoscaling:DeregisterScalableTarget"],
            resources=[scalable_targets(role)],
            conditions=LAMBDA_TARGETS_ONLY,
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            # Deregistering a target deletes its target-tracking alarms as the caller.
            actions=["cloudwatch:DeleteAlarms"],
            resources=[target_tracking_alarms(role, function)],
        )
    )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="DescribeScalableTargets has no resource-level permissions (service "
            "authorization reference for Application Auto Scaling); it only reads.",
        )
    )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:application-autoscaling:"
            "<AWS::Region>:<AWS::AccountId>:scalable-target/*]",
            reason="A scalable target's id exists only once it is registered; the statement "
            "is limited to Lambda provisioned-concurrency targets by condition.",
        )
    )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:"
            f"<AWS::AccountId>:alarm:TargetTracking-function:<{logical_id(function)}>:*]",
            reason="Target tracking names its alarms TargetTracking-function:<name>:<version>-"
            "AlarmHigh/Low-<id>; the version and id are not known at synth.",
        )
    )

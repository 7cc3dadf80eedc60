"""Provisioned concurrency on published versions, kept off the weighted alias."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import (
    Acknowledgment,
    CfnElement,
    CustomResource,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import REPO_ROOT

HANDLER_DIRECTORY = REPO_ROOT / "stacks" / "handlers" / "provisioned_concurrency"


@dataclass(frozen=True)
class Allocation:
    """``executions`` provisioned on ``version``; autoscaling may go up to ``maximum``.

    ``side`` ("Candidate" or "Stable") names the scaling resources, so that their logical
    IDs follow the role of the version, not its position in a list.
    """

    side: str
    version: lambda_.IVersion
    executions: int
    maximum: int


class ProvisionedConcurrency(Construct):
    """Two custom resources that reconcile the function's provisioned concurrency.

    Lambda refuses provisioned concurrency on an alias with a routing configuration
    (cfn-lint E3020), and ``AWS::Lambda::Version.ProvisionedConcurrencyConfig`` is
    create-only and reaches only the version this template publishes. So both versions
    get theirs by qualifier through one reconciler (see its module docstring):
    ``scale_up`` runs before the alias moves (the alias depends on it), ``settle`` after
    (it depends on the alias) and also releases whatever superseded versions still hold.
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
        log_group = logs.LogGroup(
            self,
            "ReconcilerLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            "ReconcilerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Sets provisioned concurrency on the inference function's versions.",
        )
        log_group.grant_write(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:ListProvisionedConcurrencyConfigs"],
                resources=[function.function_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "lambda:GetProvisionedConcurrencyConfig",
                    "lambda:PutProvisionedConcurrencyConfig",
                    "lambda:DeleteProvisionedConcurrencyConfig",
                    # scale_up reads the alias to release only versions taking no traffic.
                    "lambda:GetAlias",
                ],
                resources=[f"{function.function_arn}:*"],
            )
        )
        reconciler = lambda_.Function(
            self,
            "Reconciler",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=lambda_.Code.from_asset(str(HANDLER_DIRECTORY), exclude=["__pycache__"]),
            # Waiting for READY takes minutes; the handler answers before this runs out.
            timeout=Duration.minutes(15),
            memory_size=256,
            role=role,
            log_group=log_group,
            description="Reconciles provisioned concurrency of the inference versions.",
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{_logical_ref(function)}.Arn>:*]",
                reason="Provisioned concurrency is set per version qualifier of this one "
                "function; the qualifiers (published version numbers) are not known at synth.",
            )
        )
        keep_higher = "true" if autoscaling_target_utilization is not None else "false"
        properties = {
            "FunctionName": function.function_name,
            "AliasName": alias_name,
            "Allocations": [
                {"Qualifier": a.version.version, "Executions": str(a.executions)}
                for a in allocations
                if a.executions > 0
            ],
            # With autoscaling, settle must not undo a scale-out that is serving traffic.
            "KeepHigher": keep_higher,
        }
        self.scale_up = CustomResource(
            self,
            "ScaleUp",
            service_token=reconciler.function_arn,
            resource_type="Custom::ProvisionedConcurrency",
            properties={**properties, "Phase": "scale_up"},
            service_timeout=Duration.minutes(15),
        )
        self.settle = CustomResource(
            self,
            "Settle",
            service_token=reconciler.function_arn,
            resource_type="Custom::ProvisionedConcurrency",
            properties={**properties, "Phase": "settle"},
            service_timeout=Duration.minutes(15),
        )
        self.scalable_targets: list[appscaling.ScalableTarget] = []
        if autoscaling_target_utilization is None:
            return
        for allocation in (a for a in allocations if a.executions > 0):
            target = appscaling.ScalableTarget(
                self,
                f"{allocation.side}Scaling",
                service_namespace=appscaling.ServiceNamespace.LAMBDA,
                scalable_dimension="lambda:function:ProvisionedConcurrency",
                resource_id=f"function:{function.function_name}:{allocation.version.version}",
                min_capacity=allocation.executions,
                max_capacity=allocation.maximum,
                role=_autoscaling_service_linked_role(self, f"{allocation.side}ScalingRole"),
            )
            target.scale_to_track_metric(
                "Utilization",
                target_value=autoscaling_target_utilization,
                predefined_metric=(
                    appscaling.PredefinedMetric.LAMBDA_PROVISIONED_CONCURRENCY_UTILIZATION
                ),
            )
            # Register only once the reconciler has created the allocation to scale.
            target.node.add_dependency(self.scale_up)
            self.scalable_targets.append(target)


def _logical_ref(construct: Construct) -> str:
    """The logical ID cdk-nag prints for a resource's attributes in finding IDs."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return Stack.of(construct).get_logical_id(child)


def _autoscaling_service_linked_role(scope: Construct, id_: str) -> iam.IRole:
    # The same service-linked role CDK's Alias.addAutoScaling uses; Application Auto
    # Scaling creates it on first use.
    return iam.Role.from_role_arn(
        scope,
        id_,
        Stack.of(scope).format_arn(
            service="iam",
            region="",
            resource="role/aws-service-role/lambda.application-autoscaling.amazonaws.com",
            resource_name="AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency",
        ),
    )

"""The inference function: a container image from ``lambda_src/`` with the model pinned."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import function_code
from stacks.settings import Architecture, FunctionSettings

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]


class InferenceFunction(Construct):
    """``DockerImageFunction`` whose every published version keeps its image and model.

    ``current_version`` hashes the version-locked properties (image URI, environment,
    memory, ...): a new model (environment) or new code (image) gives a new version
    logical ID, anything else (weights, provisioned concurrency, alarms) does not.
    RETAIN keeps superseded versions, because the next canary calls one of them stable.
    ``settings``: the configured function (its batch size and namespace reach the handler
    through ``environment``).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        image_directory: Path,
        build_args: Mapping[str, str],
        settings: FunctionSettings,
        environment: Mapping[str, str],
        version_description: str,
        log_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, id_)
        arm = settings.architecture is Architecture.ARM64
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention(settings.log_retention_days),
            # Captured rows are log lines here too: a customer-managed key when configured
            # (switching it is an in-place update of the group; old events keep their key).
            encryption_key=log_key,
            # The function is stateless; its logs go with the stack, after their retention.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # An explicit role with no managed policies: logs to its own group only (granted
        # by the function), model reads granted by the stack from the model store.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Inference function: writes its logs, reads one model's artifacts.",
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                directory=str(function_code.stage("inference", source_root=image_directory)),
                build_args=dict(build_args),
                # An image built for the other architecture fails with exec format error.
                platform=(
                    ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64
                ),
            ),
            architecture=lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64,
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_seconds),
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            current_version_options=lambda_.VersionOptions(
                removal_policy=RemovalPolicy.RETAIN,
                description=version_description,
            ),
            description="Serves predictions; traffic reaches it only through the alias.",
        )
        self.log_group.grant_write(self.role)
        if settings.tracing:
            Validations.of(self.role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="Active tracing: xray:PutTraceSegments and PutTelemetryRecords "
                    "support no resource-level permissions (CDK adds them with tracing).",
                )
            )

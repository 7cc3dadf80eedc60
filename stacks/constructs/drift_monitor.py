"""The scheduled drift monitor: a function on a schedule, reading captures, writing PSI metrics.

Its code is lambda_src/monitors (drift.py, and canary.py for the canary evaluator), built
as one container image from that package and the library modules it imports
(stacks.function_code), so that the statistics are serving's, the ones
``python -m tools.drift`` runs, not a copy.

A run that fails must not look like "no drift": both functions run asynchronously from
EventBridge, and every run that does not happen or does not finish lands in one queue,
``failed_runs`` (a failed or expired asynchronous invocation, through Lambda's on-failure
destination; an event EventBridge could not deliver, through the target's dead-letter
queue). The stack alarms on that queue and on each function's Errors (stacks.constructs.
alarms).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from serving.canary import DEFAULT_MIN_REQUESTS
from stacks import function_code
from stacks.constructs.model_bucket import grant_read_model
from stacks.constructs.project_function import logs_and_role
from stacks.settings import Architecture, DriftSettings

# The canary evaluator runs often enough to catch a CodeDeploy shift (canary10-5min); each
# run reads the whole canary so far (from the candidate's first capture record), which keeps
# its sequential test valid across runs.
CANARY_SCHEDULE_MINUTES = 5
# Failed runs stay readable for SQS's longest retention; Lambda keeps an asynchronous event
# for at most six hours.
FAILED_RUN_RETENTION = Duration.days(14)
MAX_EVENT_AGE_MINUTES = 360


class DriftMonitor(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: DriftSettings,
        architecture: Architecture,
        log_group: logs.ILogGroup,
        model_bucket: s3.IBucket,
        model_prefix: str,
        manifest_key: str,
        model_version: str,
        metrics_namespace: str,
        canary_alias: tuple[lambda_.IFunction, str] | None = None,
    ) -> None:
        """``canary_alias``: (function, alias name) to evaluate canaries of, or None."""
        super().__init__(scope, id_)
        arm = architecture is Architecture.ARM64
        own_logs, role = logs_and_role(
            self, description="Drift monitor: queries capture records, reads manifests, puts PSI."
        )

        # What both monitors read: captures in this log group, of this model version.
        shared = {
            "LOG_GROUP": log_group.log_group_name,
            "MODEL_VERSION": model_version,
            "METRICS_NAMESPACE": metrics_namespace,
        }

        def monitor(
            id_: str,
            timeout: Duration,
            environment: dict[str, str],
            description: str,
            cmd: list[str] | None = None,
        ) -> lambda_.DockerImageFunction:
            """One monitor: the one image (``cmd``: its entry point), role and log group."""
            return lambda_.DockerImageFunction(
                self,
                id_,
                code=lambda_.DockerImageCode.from_image_asset(
                    # lambda_src/monitors with the library modules it imports (function_code).
                    directory=str(function_code.stage("monitors")),
                    platform=(
                        ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64
                    ),
                    cmd=cmd,
                ),
                architecture=lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64,
                memory_size=1024,
                timeout=timeout,
                role=role,
                log_group=own_logs,
                environment={**shared, **environment},
                description=description,
            )

        self.function = monitor(
            "Function",
            Duration.minutes(5),
            {
                "MODEL_BUCKET": model_bucket.bucket_name,
                "MANIFEST_KEY": manifest_key,
                "WINDOW_MINUTES": str(settings.window_minutes),
                "PSI_WATCH": f"{settings.psi_watch:g}",
                "PSI_ALARM": f"{settings.psi_alarm:g}",
                "MIN_REQUESTS": str(settings.min_requests),
            },
            "Drift monitor: PSI of captured traffic against the training reference.",
        )
        grant_read_model(
            role,
            model_bucket,
            model_prefix,
            why="the monitor reads the deployed version's manifest under it.",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["logs:StartQuery"], resources=[log_group.log_group_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                # Query ids are not resources: the service authorization reference lists no
                # resource type for these two.
                actions=["logs:GetQueryResults", "logs:StopQuery"],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": metrics_namespace}},
            )
        )
        self.schedule_minutes = settings.schedule_minutes
        self.failed_runs = sqs.Queue(
            self,
            "FailedRuns",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=FAILED_RUN_RETENTION,
        )
        Validations.of(self.failed_runs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the failure destination: the monitors' failed "
                "asynchronous invocations and the events EventBridge could not deliver to them "
                "land here, an alarm pages on its depth, and nothing consumes it.",
            )
        )
        self._fail_into_queue(self.function, settings.schedule_minutes)
        self.rule = events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(Duration.minutes(settings.schedule_minutes)),
            description="Drift monitor run.",
            targets=[self._target(self.function)],
        )
        self.canary_function: lambda_.DockerImageFunction | None = None
        if canary_alias is not None:
            inference, alias_name = canary_alias
            self.canary_function = monitor(
                "CanaryEvaluator",
                Duration.minutes(4),
                {
                    "FUNCTION_NAME": inference.function_name,
                    "ALIAS_NAME": alias_name,
                    # Requests per side before a verdict: the canary simulation's minimum
                    # (docs/quality-gate.md), not drift.min_requests.
                    "MIN_REQUESTS": str(DEFAULT_MIN_REQUESTS),
                },
                "Canary evaluator: candidate vs stable predicted probabilities.",
                # The same image (one build, one asset), another entry point.
                cmd=["canary.handler"],
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    # IAM checks GetAlias against the unqualified function ARN (Service
                    # Authorization Reference: resource type "function"), not the alias's.
                    actions=["lambda:GetAlias"],
                    resources=[inference.function_arn],
                )
            )
            self._fail_into_queue(self.canary_function, CANARY_SCHEDULE_MINUTES)
            self.canary_rule = events.Rule(
                self,
                "CanarySchedule",
                schedule=events.Schedule.rate(Duration.minutes(CANARY_SCHEDULE_MINUTES)),
                description="Canary evaluator run.",
                targets=[self._target(self.canary_function)],
            )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="logs:GetQueryResults/StopQuery have no resource-level permissions and "
                "PutMetricData none either (it is limited to this namespace by condition).",
            )
        )

    def _fail_into_queue(self, function: lambda_.IFunction, schedule_minutes: int) -> None:
        # No retry: the next scheduled run is the retry, and a failed run is reported at
        # once. A run that cannot start within one period (throttled) is dropped into the
        # queue rather than overlap the next one. Lambda sends to the destination with the
        # function's role: SqsDestination grants it sqs:SendMessage on this queue only.
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed_runs),
            retry_attempts=0,
            max_event_age=Duration.minutes(min(schedule_minutes, MAX_EVENT_AGE_MINUTES)),
        )

    def _target(self, function: lambda_.IFunction) -> targets.LambdaFunction:
        # An event EventBridge cannot deliver (permission, throttling) goes to the same
        # queue; CDK adds the queue policy statement for events.amazonaws.com, limited to
        # this rule (aws:SourceArn).
        return targets.LambdaFunction(
            function, retry_attempts=0, dead_letter_queue=self.failed_runs
        )

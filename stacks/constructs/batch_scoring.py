"""Batch scoring: a Step Functions Distributed Map that scores a whole table in S3.

One STANDARD state machine per model (opt-in, ``batch_scoring`` in cdk.json). A run's
execution input names everything that changes from run to run; the machine itself pins
nothing but the function::

    {"input": {"bucket": ..., "key": ..., "format": "csv" | "jsonl" | "parquet"},
     "output": {"bucket": ..., "prefix": ...},
     "function_version": "<N>", "run_id": ...}

A Choice on ``input.format`` picks one of three Distributed Maps, because an ItemReader's
``ReaderConfig.InputType`` is fixed in the definition: CSV with a header row, JSON Lines, or
Parquet. Each reads the object (``s3:getObject``), batches its rows (``ItemBatcher``:
``rows_per_invocation`` rows and at most 256 KiB), and runs one Express child workflow per
batch that invokes the function's version ``function_version`` (``python -m tools.batch``
resolves and records it at start, so a whole run is scored by one model even if a canary
moves meanwhile). The function receives ``{"Items": [{"index": position in the input,
"row": {...}}, ...], "BatchInput": {"batch_scoring": true, "run_id", "model_version" (the
pinned Lambda version number), "input_format", "output_format", "key_column"}}``
(``lambda_src/inference/item_batches.py``) and answers ``{"rows": [...]}``, one row per
item; the child keeps only ``rows``, and the
ResultWriter writes them as JSON Lines, flattened to one line per input row, under
``output.prefix`` (with the run's manifest and, when items fail, the failed batches).

Children are EXPRESS, not STANDARD: a batch is one invocation of a few seconds, and an
Express child is billed per request and per GB-second of its short duration, where a
Standard child pays per state transition (several per batch) at a price per transition
that is tens of times an Express request's. The cost is Express's 5-minute limit on a
child, which stacks.blocks checks against the function's timeout and the retries below.

Failures: throttling, Lambda service errors and timeouts of an invocation are retried with
exponential backoff and jitter; a batch that still fails fails its items, and past
``tolerated_failure_percentage`` of them the run fails (the failed items are listed in S3
by the ResultWriter). A failed run can be redriven (Step Functions' RedriveExecution),
which reruns only the failed children.

The role may invoke the function's versions only, read only ``input_buckets`` and write
only ``output_buckets`` (cdk.json): the buckets runs may touch are configured, not created,
because the tables to score live where their owners keep them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_cdk import Acknowledgment, ArnFormat, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.blocks import (
    BATCH_BACKOFF_SECONDS,
    BATCH_TASK_MARGIN_SECONDS,
    BATCH_TIMEOUT_ATTEMPTS,
)
from stacks.constructs.inference_function import _RETENTION
from stacks.constructs.project_function import grant_on_versions
from stacks.settings import STATE_PAYLOAD_LIMIT_BYTES, BatchScoringSettings

# input.format -> (the ItemReader's ReaderConfig, the answer's format the handler is told).
# The ResultWriter writes JSON Lines whatever the input; python -m tools.batch fetch turns
# them into the input's format (CSV for CSV, JSON Lines for JSON Lines and Parquet).
FORMATS: dict[str, tuple[dict[str, str], str]] = {
    "csv": ({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}, "csv"),
    "jsonl": ({"InputType": "JSONL"}, "jsonl"),
    "parquet": ({"InputType": "PARQUET"}, "jsonl"),
}
# Invocation errors worth another try (Step Functions' "Handle transient Lambda service
# exceptions" list, plus throttling); a function error (a bug, a bad batch) is not retried.
TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
]
TIMEOUT_ERRORS = ["Sandbox.Timedout", "States.Timeout"]
# Waits of 2, 4, 8, 16 then 30 s (full jitter: each up to that): at most 60 s in all.
TRANSIENT_RETRY = {
    "ErrorEquals": TRANSIENT_ERRORS,
    "IntervalSeconds": 2,
    "BackoffRate": 2.0,
    "MaxAttempts": 5,
    "MaxDelaySeconds": 30,
    "JitterStrategy": "FULL",
}
TIMEOUT_RETRY = {
    "ErrorEquals": TIMEOUT_ERRORS,
    "IntervalSeconds": 2,
    "MaxAttempts": BATCH_TIMEOUT_ATTEMPTS - 1,
}
assert BATCH_BACKOFF_SECONDS >= 2 + 4 + 8 + 16 + 30 + 2  # what stacks.blocks budgets
# Step Functions' own actions for delivering a state machine's logs to CloudWatch Logs,
# none of which has resource-level permissions (the Step Functions developer guide, "IAM
# policies for logging to CloudWatch Logs").
LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]


def state_machine_name(stack_name: str) -> str:
    """Named, so the role's policy can name its own executions without a reference cycle;
    at most 80 characters (Step Functions' limit), shortened with a hash when longer."""
    name = f"{stack_name}-batch-scoring"
    if len(name) <= 80:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:63]}-{digest}-batch"


def definition(
    function_arn: str,
    settings: BatchScoringSettings,
    *,
    timeout_seconds: int,
    partition: str = "aws",
) -> dict[str, Any]:
    """The Amazon States Language definition (JSONPath); ``function_arn`` unqualified."""
    choices = [
        {"Variable": "$.input.format", "StringEquals": fmt, "Next": f"Score {fmt}"}
        for fmt in FORMATS
    ]
    states: dict[str, Any] = {
        "Input format": {
            "Type": "Choice",
            "Choices": choices,
            "Default": "Unknown format",
        },
        "Unknown format": {
            "Type": "Fail",
            "Error": "BatchScoring.UnknownFormat",
            "Cause": f"input.format must be one of {', '.join(FORMATS)}",
        },
    }
    for fmt, (reader, output_format) in FORMATS.items():
        states[f"Score {fmt}"] = _distributed_map(
            fmt,
            function_arn,
            settings,
            reader,
            output_format,
            timeout_seconds=timeout_seconds,
            partition=partition,
        )
    return {
        "Comment": "Scores a table in S3 with one pinned version of the function.",
        "StartAt": "Input format",
        "States": states,
    }


def _distributed_map(
    label: str,
    function_arn: str,
    settings: BatchScoringSettings,
    reader: dict[str, str],
    output_format: str,
    *,
    timeout_seconds: int,
    partition: str,
) -> dict[str, Any]:
    invoke = {
        "Type": "Task",
        "Resource": f"arn:{partition}:states:::lambda:invoke",
        "Parameters": {
            "FunctionName.$": f"States.Format('{function_arn}:{{}}', $.BatchInput.model_version)",
            "Payload": {"Items.$": "$.Items", "BatchInput.$": "$.BatchInput"},
        },
        # A task waits for the invocation; a few seconds over the function's own timeout.
        "TimeoutSeconds": timeout_seconds + BATCH_TASK_MARGIN_SECONDS,
        "ResultSelector": {"rows.$": "$.Payload.rows"},
        "OutputPath": "$.rows",
        "Retry": [TRANSIENT_RETRY, TIMEOUT_RETRY],
        "End": True,
    }
    return {
        "Type": "Map",
        "Label": f"Score{label.capitalize()}",
        "ItemReader": {
            "Resource": f"arn:{partition}:states:::s3:getObject",
            "ReaderConfig": reader,
            "Parameters": {"Bucket.$": "$.input.bucket", "Key.$": "$.input.key"},
        },
        # Each item carries its position in the whole input: a batch's own order would
        # repeat across batches (the function answers {"position": index, ...}).
        "ItemSelector": {"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"},
        "ItemBatcher": {
            "MaxItemsPerBatch": settings.rows_per_invocation,
            "MaxInputBytesPerBatch": STATE_PAYLOAD_LIMIT_BYTES,
            "BatchInput": {
                "batch_scoring": True,
                "run_id.$": "$.run_id",
                "model_version.$": "$.function_version",
                "input_format": label,
                "output_format": output_format,
                "key_column.$": "$.key_column",
            },
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            # State names are unique in the whole definition, nested ones included.
            "StartAt": f"Score a {label} batch",
            "States": {f"Score a {label} batch": invoke},
        },
        "MaxConcurrency": settings.max_concurrency,
        "ToleratedFailurePercentage": settings.tolerated_failure_percentage,
        "ResultWriter": {
            "Resource": f"arn:{partition}:states:::s3:putObject",
            "Parameters": {"Bucket.$": "$.output.bucket", "Prefix.$": "$.output.prefix"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "FLATTEN"},
        },
        "End": True,
    }


class BatchScoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: lambda_.IFunction,
        settings: BatchScoringSettings,
        alias_name: str,
        timeout_seconds: int,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        name = state_machine_name(stack.stack_name)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Batch scoring: reads the input table, invokes pinned versions, "
            "writes results.",
        )
        grant_on_versions(
            self.role,
            function,
            ["lambda:InvokeFunction"],
            why="each batch invokes the version the run pins (function_version)",
        )
        # <function>:* also names its alias and $LATEST: a run invoking the alias could be
        # moved between models by a canary, so both are denied (only digits are left).
        self.role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["lambda:InvokeFunction"],
                resources=[
                    function.function_arn,
                    f"{function.function_arn}:{alias_name}",
                    f"{function.function_arn}:$LATEST",
                ],
            )
        )
        machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        # The Distributed Map starts its child workflows as executions of this machine.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[machine_arn])
        )
        # ... and follows and stops them: Standard children are "execution"s, Express
        # children (ours) "express" executions, both named <machine>/<map label>:<id>...
        executions = [
            stack.format_arn(
                service="states",
                resource=kind,
                resource_name=f"{name}/*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for kind in ("execution", "express")
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=executions,
            )
        )
        self._grant_buckets(settings)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource policy, which
            # Step Functions writes for log delivery, under its size limit.
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=_RETENTION[log_retention_days],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=LOG_DELIVERY_ACTIONS, resources=["*"]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                resources=["*"],
            )
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(
                    definition(
                        function.function_arn,
                        settings,
                        timeout_seconds=timeout_seconds,
                        partition=stack.partition,
                    )
                )
            ),
            role=self.role,
            # Every event, without the execution data: items are customer rows.
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
            tracing_enabled=True,
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Log delivery (logs:*LogDelivery*, resource policies) and xray tracing "
                "actions have no resource-level permissions.",
            ),
            *(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
                    f"<AWS::AccountId>:{kind}:{name}/*]",
                    reason="The Distributed Map describes and stops the child executions it "
                    "starts of this state machine; their names are made at run time.",
                )
                for kind in ("execution", "express")
            ),
        )

    def _grant_buckets(self, settings: BatchScoringSettings) -> None:
        stack = Stack.of(self)
        partition = stack.partition
        reads = [f"arn:{partition}:s3:::{b}/*" for b in settings.input_buckets]
        writes = [f"arn:{partition}:s3:::{b}/*" for b in settings.output_buckets]
        # ItemReader: GetObject on the table; ListBucket so that a missing key is a 404
        # (NoSuchKey) rather than an AccessDenied, which python -m tools.batch reports.
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=reads))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{b}" for b in settings.input_buckets],
            )
        )
        # ResultWriter: multipart uploads of the results and the manifest.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:AbortMultipartUpload",
                ],
                resources=writes,
            )
        )
        Validations.of(self.role).acknowledge(
            *(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{b}/*]",
                    reason=f"Batch scoring reads its input tables from and writes its results "
                    f"to bucket {b} (batch_scoring.input_buckets/output_buckets): a run names "
                    "its object and prefix at start.",
                )
                for b in dict.fromkeys((*settings.input_buckets, *settings.output_buckets))
            )
        )

"""Customer-managed KMS keys for captured customer data (cdk.json ``encryption``).

Captured rows exist twice: as log lines in each inference function's log group (the
handler writes one per captured row; a subscription sends them on) and as objects in the
capture bucket (the delivery stream writes them). With ``encryption.customer_managed_key``
on, both are encrypted with keys of this account instead of S3-managed and AWS-owned keys.

One key per stack, not one shared key. The capture bucket lives in the retained
model-store stack, so its key must live there too (a key in a stateless stack would be
deleted under the bucket's objects). Each inference stack's log group and delivery stream
need a key *ARN* (CloudWatch Logs and Firehose take no alias), which the inference stack
could only get from the model-store stack by a cross-stack reference: an export that the
model-store stack can never drop while an inference stack imports it, so switching the
option off again would deadlock the two stacks. The inference stack therefore owns the key
of what it holds; the delivery role reaches the bucket's key through S3 only (its own
policy, scoped by ``kms:ViaService`` and the bucket's encryption context).

Both keys rotate yearly and are RETAINED when removed from a template: data written with a
key keeps needing it (captured objects until their lifecycle expires them, log events
until the log group's retention drops them), including after the option is switched off.
A retained key that nothing uses any more costs its monthly fee until an administrator
schedules its deletion (see docs/capture-and-drift.md).

Key policies: the account (root) administers the key and may delegate its use by IAM
policy, as in every KMS default key policy (without it no one could manage the key); the
inference key also lets CloudWatch Logs use it for the function's log group only.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constructs.nag_ids import logical_id

# What CloudWatch Logs needs on a key that encrypts a log group (CloudWatch Logs user
# guide, "Encrypt log data in CloudWatch Logs using AWS KMS", step 2: the key policy).
LOGS_KEY_ACTIONS = (
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
)
# What a writer of an SSE-KMS bucket needs (PutObject: a data key; multipart uploads also
# decrypt it), asked by S3 on the writer's behalf.
S3_WRITER_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def capture_bucket_key(scope: Construct, id_: str) -> kms.Key:
    """The model-store stack's key for the capture bucket."""
    return kms.Key(
        scope,
        id_,
        description="Encrypts the capture bucket (captured predictions: customer data).",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )


def inference_data_key(scope: Construct, id_: str) -> kms.Key:
    """An inference stack's key for its function's log group and its delivery stream;
    ``allow_log_group`` lets CloudWatch Logs use it for that group."""
    stack = Stack.of(scope)
    return kms.Key(
        scope,
        id_,
        description=f"Encrypts the inference log group (captured rows: customer data) and "
        f"the capture delivery stream of {stack.stack_name}.",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )


def allow_log_group(key: kms.Key, log_group: logs.LogGroup) -> None:
    """CloudWatch Logs may use ``key`` for ``log_group`` (and nothing else of the account).

    The statement cannot name the group's ARN: the group's generated name is known only
    once it exists, and the group needs the key first (a dependency cycle). CloudFormation
    names a log group created without a name ``<stack name>-<logical ID>-<random suffix>``,
    so the condition is that prefix.
    """
    stack = Stack.of(key)
    logs_service = f"logs.{stack.region}.amazonaws.com"
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchLogsForTheFunctionLogGroup",
            principals=[iam.ServicePrincipal(logs_service)],
            actions=list(LOGS_KEY_ACTIONS),
            resources=["*"],  # in a key policy, "*" is this key
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{stack.stack_name}-{logical_id(log_group)}-*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )


def s3_key_use(bucket_arn: str, region: str, partition: str, account: str) -> iam.PolicyStatement:
    """Use of the capture bucket's key by S3 on a writer's behalf, for that bucket only.

    The writer's role lives in an inference stack, which knows the bucket by name but not
    its key's ARN (see the module): any key of the account, but only through S3 in this
    region and only with the bucket's encryption context (with an S3 bucket key, the
    context is the bucket's ARN; without, the object's).
    """
    return iam.PolicyStatement(
        actions=list(S3_WRITER_KEY_ACTIONS),
        resources=[f"arn:{partition}:kms:{region}:{account}:key/*"],
        conditions={
            "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
            # The object's ARN where an object was written without the bucket key.
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
        },
    )

"""The model bucket, the bucket its access logs go to, and what every bucket of the project is."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.nag_ids import rendered

# Overwritten or deleted artifacts stay restorable this long; access logs are kept a year.
NONCURRENT_DAYS = 90
ACCESS_LOG_DAYS = 365


class ModelBucket(Construct):
    """Versioned, encrypted, TLS-only storage for model artifacts, kept when the stack goes.

    Artifacts are immutable per key: uploads are content-addressed
    (``models/<model>/<version>/<content id>/``, see ``ModelArtifact.prefix``), so a
    retrained version goes next to the bytes a published Lambda version pins instead of
    over them. S3 versioning is the second line: anything overwritten or deleted by hand
    stays restorable for NONCURRENT_DAYS.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bucket_name: str,
    ) -> None:
        super().__init__(scope, id_)
        self.access_logs = private_bucket(
            self,
            "AccessLogs",
            s3.LifecycleRule(expiration=Duration.days(ACCESS_LOG_DAYS)),
            # Server access logging can deliver only to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
        )
        Validations.of(self.access_logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the access-log bucket itself: logging it into itself would "
                "loop, and into another bucket only moves the question.",
            )
        )
        self.bucket = private_bucket(
            self,
            "Bucket",
            s3.LifecycleRule(
                id="expire-replaced-artifacts",
                noncurrent_version_expiration=Duration.days(NONCURRENT_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            ),
            # A fixed name lets the inference stack (and operators) address the bucket
            # without a cross-stack export that would pin this stack.
            bucket_name=bucket_name,
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="model-bucket/",
        )


def private_bucket(
    scope: Construct, id_: str, lifecycle: s3.LifecycleRule, **props: Any
) -> s3.Bucket:
    """A bucket as every bucket of the project is: TLS-only, no public access, objects owned
    by the bucket owner (no ACLs), kept when the stack goes, emptied by its ``lifecycle``."""
    return s3.Bucket(
        scope,
        id_,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[lifecycle],
        **props,
    )


def model_bucket_name(stack_prefix: str) -> str:
    """Globally unique per account and region, and known to both stacks without a lookup."""
    return f"{stack_prefix}-models-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def grant_read_model(
    role: iam.IRole, bucket: s3.IBucket, model_prefix: str, *, why: str
) -> iam.Grant:
    """GetObject on one model's prefix only: no ListBucket, nothing bucket-wide.

    The prefix is the model's, not one version's: the stable version of a canary runs
    with the same role and still reads its own (older) version's artifact. The wildcard
    is acknowledged here, where it is made; ``why`` says what the role reads under it.
    """
    arn = bucket.arn_for_objects(f"{model_prefix}*")
    Validations.of(role).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
            f"{rendered(role, bucket.bucket_name)}/{model_prefix}*]",
            reason=f"GetObject on this model's prefix only: {why}",
        )
    )
    return iam.Grant.add_to_principal(grantee=role, actions=["s3:GetObject"], resource_arns=[arn])

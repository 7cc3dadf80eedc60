"""The capture bucket: what each model version saw and answered, kept for a set time."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.model_bucket import private_bucket

# Where the delivery stream writes records, and where it puts what it could not process.
CAPTURE_PREFIX = "captures/"
ERROR_PREFIX = "capture-errors/"


class CaptureBucket(Construct):
    """Encrypted, TLS-only, private, access-logged, expiring, retained with the stack.

    The objects hold customer data (the features of captured requests): they expire after
    ``retention_days``, and the bucket outlives the stacks like the model bucket (it is
    evidence of what each version answered), emptied by its lifecycle.

    ``encryption_key``: SSE-KMS with that key and an S3 bucket key (one KMS call per bucket
    key's lifetime instead of one per object); None: SSE-S3. Switching updates the bucket's
    default encryption in place; objects keep the key they were written with.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bucket_name: str,
        access_logs: s3.IBucket,
        retention_days: int,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = private_bucket(
            self,
            "Bucket",
            s3.LifecycleRule(
                id="expire-captured-data",
                expiration=Duration.days(retention_days),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
            bucket_name=bucket_name,
            encryption=(
                s3.BucketEncryption.S3_MANAGED
                if encryption_key is None
                else s3.BucketEncryption.KMS
            ),
            encryption_key=encryption_key,
            bucket_key_enabled=True if encryption_key is not None else None,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="capture-bucket/",
        )


def capture_bucket_name(stack_prefix: str) -> str:
    """Known to both stacks without a lookup, like the model bucket's name."""
    return f"{stack_prefix}-captures-{Aws.ACCOUNT_ID}-{Aws.REGION}"

"""Capture records from the function's log stream to the capture bucket, off the request path.

The handler writes one JSON log line per captured row, marked ``"capture": 1``; a
CloudWatch Logs subscription filter sends exactly those lines to an Amazon Data Firehose
stream, which decompresses the CloudWatch Logs batches, extracts each message, and writes
gzip-compressed JSON lines partitioned by model, model version and date:
``captures/model=<name>/version=<v>/date=<YYYY-MM-DD>/``. No request waits for any of it.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as destinations
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.capture_bucket import CAPTURE_PREFIX, ERROR_PREFIX
from stacks.constructs.data_keys import s3_key_use
from stacks.constructs.nag_ids import rendered

# inference/capture.py writes records that match this, and no other log line does.
CAPTURE_FILTER_PATTERN = "{ $.capture = 1 }"
PARTITION_KEYS = {"model": ".model_name", "version": ".model_version", "date": ".date"}
BUFFERING_MINUTES = 5
FIREHOSE = "firehose.amazonaws.com"
# Firehose developer guide, "Grant Firehose access to an Amazon S3 destination": these six
# actions on the bucket and its objects, nothing else (no delete).
BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads")
OBJECT_ACTIONS = ("s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject")


class CaptureDelivery(Construct):
    """The delivery stream, its role, its error log and the log subscription feeding it."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        log_group: logs.ILogGroup,
        bucket: s3.IBucket,
        stream_key: kms.IKey | None = None,
        bucket_encrypted_with_kms: bool = False,
    ) -> None:
        """``stream_key``: encrypts the records Firehose buffers (else an AWS-owned key);
        ``bucket_encrypted_with_kms``: the bucket's default encryption is SSE-KMS, so the
        delivery role may use its key through S3."""
        super().__init__(scope, id_)
        partitions = "/".join(f"{key}=!{{partitionKeyFromQuery:{key}}}" for key in PARTITION_KEYS)
        delivery_errors = logs.LogGroup(
            self,
            "DeliveryErrors",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = self._delivery_role(bucket, delivery_errors, bucket_encrypted_with_kms)
        self.stream = firehose.DeliveryStream(
            self,
            "Stream",
            encryption=(
                firehose.StreamEncryption.aws_owned_key()
                if stream_key is None
                else firehose.StreamEncryption.customer_managed_key(stream_key)
            ),
            # With a stream key CDK would otherwise add a "Service Role" (trusting Firehose
            # without a source-account condition) holding encrypt/decrypt on the key, which
            # nothing refers to: Firehose encrypts a Direct PUT stream through a grant it
            # creates on the key when the stream is created (by the deploying principal,
            # allowed by the key policy's account statement), not through a role.
            role=self.role.without_policy_updates(),
            destination=firehose.S3Bucket(
                bucket,
                # CDK's destination grants its role grantReadWrite on the bucket (with
                # s3:DeleteObject*) and write on the log group; on a role that takes no
                # policy updates those grants are dropped, and the role's own policy is
                # exactly what delivery needs.
                role=self.role.without_policy_updates(),
                dynamic_partitioning=firehose.DynamicPartitioningProps(enabled=True),
                processors=[
                    firehose.DecompressionProcessor(),
                    firehose.CloudWatchLogProcessor(data_message_extraction=True),
                    firehose.MetadataExtractionProcessor.jq16(PARTITION_KEYS),
                    firehose.AppendDelimiterToRecordProcessor(),
                ],
                data_output_prefix=f"{CAPTURE_PREFIX}{partitions}/",
                error_output_prefix=f"{ERROR_PREFIX}!{{firehose:error-output-type}}/"
                "!{timestamp:yyyy/MM/dd}/",
                compression=firehose.Compression.GZIP,
                # Delivery errors; the stream's own group goes with the stream.
                logging_config=firehose.EnableLogging(delivery_errors),
                # Dynamic partitioning needs at least 64 MiB; the interval bounds the delay.
                buffering_size=Size.mebibytes(64),
                buffering_interval=Duration.minutes(BUFFERING_MINUTES),
            ),
        )
        # The delivery stream construct adds a mapping of Firehose's CIDR blocks for
        # destinations that need an IP allow-list (Redshift, Splunk); S3 does not use it,
        # and an unused mapping is a template warning (W7001).
        Stack.of(self).node.try_remove_child("@aws-cdk--aws-kinesisfirehose.CidrBlocks")
        self.subscription = logs.SubscriptionFilter(
            self,
            "Subscription",
            log_group=log_group,
            destination=destinations.FirehoseDestination(self.stream),
            filter_pattern=logs.FilterPattern.literal(CAPTURE_FILTER_PATTERN),
        )

    def _delivery_role(
        self, bucket: s3.IBucket, delivery_errors: logs.ILogGroup, bucket_kms: bool
    ) -> iam.Role:
        """The stream's role: what the Firehose developer guide lists for an S3 destination
        ("Grant Firehose access to an Amazon S3 destination") and for error logging, no more;
        assumed only by Firehose on behalf of this account (confused deputy)."""
        stack = Stack.of(self)
        objects = bucket.arn_for_objects("*")
        key_use = (
            [s3_key_use(bucket.bucket_arn, stack.region, stack.partition, stack.account)]
            if bucket_kms
            else []
        )
        role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal(
                FIREHOSE, conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="Capture delivery stream: writes capture records to the capture bucket.",
            inline_policies={
                "Delivery": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=list(BUCKET_ACTIONS), resources=[bucket.bucket_arn]
                        ),
                        iam.PolicyStatement(actions=list(OBJECT_ACTIONS), resources=[objects]),
                        iam.PolicyStatement(
                            actions=["logs:PutLogEvents"],
                            resources=[delivery_errors.log_group_arn],
                        ),
                        *key_use,
                    ]
                )
            },
        )
        if key_use:
            (key_arns,) = key_use[0].resources
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{rendered(self, key_arns)}]",
                    reason="The capture bucket's key is the retained model-store stack's; "
                    "this stack knows the bucket by name, not the key's ARN (no export: "
                    "stacks.constructs.data_keys). Usable only through S3 in this region "
                    "(kms:ViaService) and only for the capture bucket (its encryption "
                    "context): GenerateDataKey and Decrypt, what a writer of an SSE-KMS "
                    "bucket needs.",
                )
            )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{rendered(self, objects)}]",
                reason="Firehose writes objects under keys it makes up (partitions, dates, "
                "random suffixes) in the capture bucket only: PutObject, GetObject and "
                "AbortMultipartUpload on its objects (Firehose developer guide, access to "
                "an Amazon S3 destination); no delete.",
            )
        )
        return role

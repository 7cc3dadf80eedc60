"""Capture records from the function's log stream to the capture bucket, off the request path.

The handler writes one JSON log line per captured row, marked ``"capture": 1``; a
CloudWatch Logs subscription filter sends exactly those lines to an Amazon Data Firehose
stream, which decompresses the CloudWatch Logs batches, extracts each message, and writes
gzip-compressed JSON lines partitioned by model, model version and date:
``captures/model=<name>/version=<v>/date=<YYYY-MM-DD>/``. No request waits for any of it.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as destinations
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.capture_bucket import CAPTURE_PREFIX, ERROR_PREFIX
from stacks.constructs.nag_ids import rendered

# inference/capture.py writes records that match this, and no other log line does.
CAPTURE_FILTER_PATTERN = "{ $.capture = 1 }"
PARTITION_KEYS = {"model": ".model_name", "version": ".model_version", "date": ".date"}


class CaptureDelivery(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, log_group: logs.ILogGroup, bucket: s3.IBucket
    ) -> None:
        super().__init__(scope, id_)
        partitions = "/".join(f"{key}=!{{partitionKeyFromQuery:{key}}}" for key in PARTITION_KEYS)
        self.stream = firehose.DeliveryStream(
            self,
            "Stream",
            encryption=firehose.StreamEncryption.aws_owned_key(),
            destination=firehose.S3Bucket(
                bucket,
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
                logging_config=firehose.EnableLogging(
                    logs.LogGroup(
                        self,
                        "DeliveryErrors",
                        retention=logs.RetentionDays.ONE_MONTH,
                        removal_policy=RemovalPolicy.DESTROY,
                    )
                ),
                # Dynamic partitioning needs at least 64 MiB; the interval bounds the delay.
                buffering_size=Size.mebibytes(64),
                buffering_interval=Duration.minutes(5),
            ),
        )
        # The delivery stream construct adds a mapping of Firehose's CIDR blocks for
        # destinations that need an IP allow-list (Redshift, Splunk); S3 does not use it,
        # and an unused mapping is a template warning (W7001).
        Stack.of(self).node.try_remove_child("@aws-cdk--aws-kinesisfirehose.CidrBlocks")
        role_policy = self.stream.node.find_child("S3 Destination Role").node.find_child(
            "DefaultPolicy"
        )
        bucket_objects = f"arn:<AWS::Partition>:s3:::{rendered(self, bucket.bucket_name)}/*"
        grant_reason = (
            "CDK's S3 destination grants the delivery stream's role read/write on the capture "
            "bucket only; Firehose needs AbortMultipartUpload, GetBucketLocation, GetObject, "
            "ListBucket, ListBucketMultipartUploads and PutObject there (Firehose developer "
            "guide, access to an Amazon S3 destination)."
        )
        for finding in (
            "Action::s3:Abort*", "Action::s3:DeleteObject*", "Action::s3:GetBucket*",
            "Action::s3:GetObject*", "Action::s3:List*", f"Resource::{bucket_objects}",
        ):  # fmt: skip
            Validations.of(role_policy).acknowledge(
                Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=grant_reason)
            )
        self.subscription = logs.SubscriptionFilter(
            self,
            "Subscription",
            log_group=log_group,
            destination=destinations.FirehoseDestination(self.stream),
            filter_pattern=logs.FilterPattern.literal(CAPTURE_FILTER_PATTERN),
        )

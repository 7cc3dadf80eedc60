"""Stateful stack: the model bucket, the model version's upload, and the capture bucket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Acknowledgment, CfnElement, CfnOutput, Stack, Validations
from constructs import Construct

from stacks.constructs.capture_bucket import CaptureBucket
from stacks.constructs.data_keys import capture_bucket_key
from stacks.constructs.model_bucket import ModelBucket
from stacks.constructs.model_upload import ModelUpload
from stacks.settings import ModelArtifact


class ModelStoreStack(Stack):
    """Kept apart from the inference stack so that one can be destroyed and rebuilt freely."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        models: Sequence[ModelArtifact],
        bucket_name: str,
        capture_bucket_name: str,
        capture_retention_days: int,
        customer_managed_key: bool = False,
        **stack_props: Any,
    ) -> None:
        super().__init__(scope, id_, **stack_props)
        self.store = ModelBucket(self, "ModelStore", bucket_name=bucket_name)
        # The capture bucket's key lives here, with the bucket it encrypts (retained like
        # it); stacks.constructs.data_keys says why it is not shared with the inference stacks.
        self.capture_key = capture_bucket_key(self, "CaptureKey") if customer_managed_key else None
        # Always there, capture on or off: switching capture off keeps what was captured
        # under the bucket's lifecycle instead of orphaning it.
        self.captures = CaptureBucket(
            self,
            "Captures",
            bucket_name=capture_bucket_name,
            access_logs=self.store.access_logs,
            retention_days=capture_retention_days,
            encryption_key=self.capture_key,
        )
        if self.capture_key is not None:
            CfnOutput(
                self,
                "CaptureKeyArn",
                value=self.capture_key.key_arn,
                description="Encrypts the capture bucket: readers of captures need "
                "kms:Decrypt on it.",
            )
        CfnOutput(
            self,
            "CaptureBucketName",
            value=self.captures.bucket.bucket_name,
            description="Captured predictions (customer data): captures/model=/version=/date=/",
        )
        # The first model's upload keeps the construct ID of a one-model app.
        self.uploads = [
            ModelUpload(
                self,
                "ModelUpload" if index == 0 else f"ModelUpload-{model.model_name}",
                bucket=self.store.bucket,
                directory=model.directory,
                files=model.upload_files,
                prefix=model.prefix,
            )
            for index, model in enumerate(models)
        ]
        self._acknowledge_bucket_deployment_handler()

    def _acknowledge_bucket_deployment_handler(self) -> None:
        """BucketDeployment's singleton copy function (CDK's code) lives at stack level."""
        bucket = self.store.bucket.node.default_child
        assert isinstance(bucket, CfnElement)
        copy_grants = "the copy function reads CDK's staging bucket and writes the upload "
        reasons = {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]": "CDK's BucketDeployment handler writes its logs "
            "with the AWS managed basic execution policy; its role is not configurable.",
            "AwsSolutions-L1": "CDK pins the BucketDeployment handler's runtime to the AWS CLI "
            "layer it bundles; it runs only during deployments.",
            "AwsSolutions-IAM5[Action::s3:GetBucket*]": copy_grants + "(CDK's grantRead).",
            "AwsSolutions-IAM5[Action::s3:GetObject*]": copy_grants + "(CDK's grantRead).",
            "AwsSolutions-IAM5[Action::s3:List*]": copy_grants + "(CDK's grantRead/Write).",
            "AwsSolutions-IAM5[Action::s3:Abort*]": copy_grants + "(multipart uploads).",
            "AwsSolutions-IAM5[Action::s3:DeleteObject*]": copy_grants + "(CDK's grantWrite; "
            "with prune=False and retain_on_delete it deletes nothing).",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
            "<AWS::AccountId>-<AWS::Region>/*]": copy_grants + "(the staged asset's key is "
            "a content hash, known only after synth).",
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(bucket)}.Arn>/*]": copy_grants
            + "(CDK grants the destination bucket's objects; the upload is confined to one "
            "version prefix by its destination_key_prefix).",
        }
        for child in self.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                for rule_id, reason in reasons.items():
                    Validations.of(child).acknowledge(Acknowledgment(id=rule_id, reason=reason))

"""Upload of one model version's artifacts into the model bucket."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct


class ModelUpload(Construct):
    """Copies ``<directory>/<files>`` to ``<prefix>`` and never deletes anything.

    ``prefix`` is content-addressed (``models/<model>/<version>/<content id>/``): other
    bytes, another prefix, so an upload never overwrites what a published Lambda version
    pins. ``prune=False`` keeps everything else under the model's prefix, and
    ``retain_on_delete=True`` keeps this upload when the next deploy uploads to another
    prefix: a published Lambda version pins its artifact's key and checksum and must keep
    finding both.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bucket: s3.IBucket,
        directory: Path,
        files: Sequence[str],
        prefix: str,
    ) -> None:
        super().__init__(scope, id_)
        # Only the files the runtime loads and the manifest: model cards and plots are
        # for people and stay in git.
        exclude = ["*", *(f"!{name}" for name in files)]
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deployment",
            sources=[s3deploy.Source.asset(str(directory), exclude=exclude)],
            destination_bucket=bucket,
            destination_key_prefix=prefix,
            prune=False,
            retain_on_delete=True,
            extract=True,
            # The copy runs the AWS CLI in Lambda; 128 MB (the default) is tight for
            # artifacts of a few hundred MB.
            memory_limit=512,
        )

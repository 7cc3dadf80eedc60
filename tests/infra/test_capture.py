"""Data capture in the templates: the bucket, the delivery stream and the subscription filter."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from stacks.config import load_config
from stacks.constructs.capture_delivery import CAPTURE_FILTER_PATTERN
from stacks.settings import ConfigError
from tests.infra.conftest import Synth, cdk_context

SynthContext = Callable[[Mapping[str, Any]], Synth]


def only(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (resource,) = resources.values()
    return resource


def capture_bucket(synth: Synth) -> dict[str, Any]:
    (bucket,) = [
        r for r in synth.resources("model-store", "AWS::S3::Bucket").values()
        if "captures" in json.dumps(r["Properties"].get("BucketName"))
    ]  # fmt: skip
    return bucket


@pytest.mark.parametrize(("env", "days"), [("dev", 30), ("prod", 90)])
def test_the_capture_bucket_is_private_encrypted_logged_expiring_and_retained(
    synth: Callable[..., Synth], env: str, days: int
) -> None:
    result = synth(env=env)
    bucket = capture_bucket(result)
    assert bucket["DeletionPolicy"] == "Retain"
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert properties["LoggingConfiguration"]["LogFilePrefix"] == "capture-bucket/"
    (rule,) = properties["LifecycleConfiguration"]["Rules"]
    assert (rule["ExpirationInDays"], rule["Status"]) == (days, "Enabled")
    (bucket_id,) = [
        k for k, r in result.resources("model-store", "AWS::S3::Bucket").items() if r is bucket
    ]
    (policy,) = [
        p for p in result.resources("model-store", "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]  # fmt: skip
    tls_only = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Deny"]  # fmt: skip
    assert [s["Condition"] for s in tls_only] == [{"Bool": {"aws:SecureTransport": "false"}}]


def test_capture_records_go_through_firehose_partitioned_by_model_version_and_date(
    dev: Synth,
) -> None:
    stream = only(dev.resources("inference", "AWS::KinesisFirehose::DeliveryStream"))
    properties = stream["Properties"]
    assert properties["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    s3 = properties["ExtendedS3DestinationConfiguration"]
    assert s3["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["Prefix"] == (
        "captures/model=!{partitionKeyFromQuery:model}/version=!{partitionKeyFromQuery:version}"
        "/date=!{partitionKeyFromQuery:date}/"
    )
    assert s3["ErrorOutputPrefix"].startswith("capture-errors/")
    processors = s3["ProcessingConfiguration"]["Processors"]
    assert [p["Type"] for p in processors] == [
        "Decompression", "CloudWatchLogProcessing", "MetadataExtraction",
        "AppendDelimiterToRecord",
    ]  # fmt: skip
    (query,) = [
        p["ParameterValue"] for p in processors[2]["Parameters"]
        if p["ParameterName"] == "MetadataExtractionQuery"
    ]  # fmt: skip
    assert query == '{"model":.model_name,"version":.model_version,"date":.date}'
    assert "captures-" in json.dumps(s3["BucketARN"])


def test_only_capture_lines_of_the_functions_log_group_are_subscribed(dev: Synth) -> None:
    subscription = only(dev.resources("inference", "AWS::Logs::SubscriptionFilter"))
    properties = subscription["Properties"]
    assert properties["FilterPattern"] == CAPTURE_FILTER_PATTERN
    (log_group_id,) = dev.resources("inference", "AWS::Logs::LogGroup").keys() & {
        properties["LogGroupName"]["Ref"]
    }
    function = next(
        f["Properties"] for f in dev.resources("inference", "AWS::Lambda::Function").values()
        if "MODEL_KEY" in json.dumps(f)
    )  # fmt: skip
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": log_group_id}
    (stream_id,) = dev.resources("inference", "AWS::KinesisFirehose::DeliveryStream")
    assert properties["DestinationArn"] == {"Fn::GetAtt": [stream_id, "Arn"]}


@pytest.mark.parametrize(("env", "rate"), [("dev", "1"), ("prod", "0.1")])
def test_the_function_samples_at_the_configured_rate(
    synth: Callable[..., Synth], env: str, rate: str
) -> None:
    function = next(
        f["Properties"] for f in synth(env=env).resources("inference", "AWS::Lambda::Function")
        .values() if "MODEL_KEY" in json.dumps(f)
    )  # fmt: skip
    variables = function["Environment"]["Variables"]
    assert (variables["CAPTURE_SAMPLE_RATE"], variables["CAPTURE_MAX_ROWS"]) == (rate, "100")


def test_capture_switched_off_keeps_the_bucket_and_writes_nothing(
    synth_context: SynthContext,
) -> None:
    context = cdk_context()
    context["environments"]["dev"]["capture"]["enabled"] = False
    result = synth_context(context)
    assert result.resources("inference", "AWS::KinesisFirehose::DeliveryStream") == {}
    assert result.resources("inference", "AWS::Logs::SubscriptionFilter") == {}
    assert capture_bucket(result)["DeletionPolicy"] == "Retain"
    function = next(
        f["Properties"] for f in result.resources("inference", "AWS::Lambda::Function").values()
        if "MODEL_KEY" in json.dumps(f)
    )  # fmt: skip
    assert function["Environment"]["Variables"]["CAPTURE_SAMPLE_RATE"] == "0"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("sample_rate", 1.5, r"capture.sample_rate=1.5 is not allowed: the share of requests"),
        ("sample_rate", "often", r"capture.sample_rate='often' is not allowed: expected a number"),
        ("max_rows_per_request", 0, r"max_rows_per_request=0 is not allowed: an integer from 1"),
        ("retention_days", 0, r"retention_days=0 is not allowed: an integer from 1 to 3650"),
        ("enabled", "yes", r"capture.enabled='yes' is not allowed: use true, false"),
        ("bucket", "x", r"unknown key\(s\) environments.dev.capture.bucket"),
    ],
)
def test_bad_capture_settings_are_refused_by_name(key: str, value: Any, message: str) -> None:
    context = cdk_context()
    context["environments"]["dev"]["capture"][key] = value
    with pytest.raises(ConfigError, match=message):
        load_config({**context, "env": "dev"})

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
from tools.transitions import checks
from tools.transitions.changes import Action, State, apply, plan

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
    # prod: a customer-managed key (encryption.customer_managed_key, test_capture_encryption)
    assert (
        properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == {"dev": "AES256", "prod": "aws:kms"}[env]
    )
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


# ---------------------------------------------------------------------------- delivery role


def delivery_role(synth: Synth) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """The stream's role: (logical ID, role, every statement of every policy it holds)."""
    template = synth.template("inference")
    stream = only(synth.resources("inference", "AWS::KinesisFirehose::DeliveryStream"))
    (role_id, _) = stream["Properties"]["ExtendedS3DestinationConfiguration"]["RoleARN"][
        "Fn::GetAtt"
    ]
    role = template["Resources"][role_id]
    statements = [s for p in role["Properties"].get("Policies", [])
                  for s in p["PolicyDocument"]["Statement"]]  # fmt: skip
    for resource in template["Resources"].values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {
            "Ref": role_id
        } in resource["Properties"].get("Roles", []):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    assert role["Properties"].get("ManagedPolicyArns") is None
    return role_id, role, statements


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_delivery_role_has_exactly_what_firehose_needs_for_s3_and_no_delete(
    synth: Callable[..., Synth], env: str
) -> None:
    # Firehose developer guide, "Grant Firehose access to an Amazon S3 destination".
    _, _, statements = delivery_role(synth(env=env))
    granted = {(a, json.dumps(s["Resource"])) for s in statements for a in actions(s)}
    bucket = f":s3:::sklearn-serving-{env}-captures-"
    by_action: dict[str, list[str]] = {}
    for action, resource in granted:
        by_action.setdefault(action, []).append(resource)
    # prod's bucket is SSE-KMS: S3 uses its key for the writer (test_capture_encryption).
    kms = ["kms:Decrypt", "kms:GenerateDataKey"] if env == "prod" else []
    assert sorted(by_action) == [
        *kms, "logs:PutLogEvents",
        "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
        "s3:ListBucketMultipartUploads", "s3:PutObject",
    ]  # fmt: skip
    for action in ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"):
        (resource,) = by_action[action]
        assert bucket in resource and "/*" not in resource
    for action in ("s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"):
        (resource,) = by_action[action]
        assert bucket in resource and resource.endswith('"/*"]]}')
    assert by_action["logs:PutLogEvents"] == ['{"Fn::GetAtt": ["CaptureDeliveryErrorsF8D8E7F5", '
                                              '"Arn"]}']  # fmt: skip
    assert all(s["Effect"] == "Allow" for s in statements)
    assert all("Condition" not in s for s in statements if not actions(s)[0].startswith("kms:"))


def test_only_firehose_for_this_account_can_assume_the_delivery_role(dev: Synth) -> None:
    _, role, _ = delivery_role(dev)
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Action": "sts:AssumeRole",
        "Effect": "Allow",
        "Principal": {"Service": "firehose.amazonaws.com"},
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
    }


def test_moving_the_stream_to_its_own_role_updates_it_in_place(dev: Synth) -> None:
    """The stream of the previous release used CDK's S3 destination role; a changed RoleARN
    inside ExtendedS3DestinationConfiguration is not create-only in CloudFormation's schema,
    so the stream (and the captures it buffers) is updated, not replaced."""
    current = dev.template("inference")
    role_id, _, _ = delivery_role(dev)
    previous = json.loads(json.dumps(current))
    stream_id, stream = next(
        (k, r) for k, r in previous["Resources"].items()
        if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"
    )  # fmt: skip
    old_role, old_policy = (
        "CaptureStreamS3DestinationRoleDA28735D",
        "CaptureStreamS3DestinationRoleDefaultPolicy957214CD",
    )
    del previous["Resources"][role_id]
    previous["Resources"][old_role] = {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": {"Statement": [{
            "Action": "sts:AssumeRole", "Effect": "Allow",
            "Principal": {"Service": "firehose.amazonaws.com"}}], "Version": "2012-10-17"}},
    }  # fmt: skip
    previous["Resources"][old_policy] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {"PolicyName": old_policy, "Roles": [{"Ref": old_role}],
                       "PolicyDocument": {"Statement": [{
                           "Action": "s3:DeleteObject*", "Effect": "Allow", "Resource": "*"}],
                           "Version": "2012-10-17"}},
    }  # fmt: skip
    destination = stream["Properties"]["ExtendedS3DestinationConfiguration"]
    destination["RoleARN"] = {"Fn::GetAtt": [old_role, "Arn"]}
    stream["DependsOn"] = [old_policy]
    first = plan({"Resources": {}}, previous, State())
    upgrade = plan(previous, current, apply(first))
    assert upgrade.changes[stream_id].action is Action.UPDATE
    assert upgrade.changes[role_id].action is Action.CREATE
    assert {upgrade.changes[k].action for k in (old_role, old_policy)} == {Action.DELETE}
    assert checks.problems(upgrade) == []

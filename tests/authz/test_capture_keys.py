"""The proof's cases for customer-managed capture keys bite: a grant that is missing or
names something else is DENIED (the walks in test_authorization prove the real stacks)."""

from __future__ import annotations

import copy
from typing import Any

from tests.authz.iam import statements
from tests.authz.sar import ACCOUNT
from tests.authz.services import BucketKey, capture_cases, log_group_key_cases
from tests.authz.world import World

STACK = "sklearn-serving-prod-inference"
ROOT = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*", "Resource": "*"}  # fmt: skip
BUCKET = f"sklearn-serving-prod-captures-{ACCOUNT}-eu-west-1"


def _log_group_template(pattern: str) -> dict[str, Any]:
    logs = {
        "Effect": "Allow",
        "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                   "kms:Describe*"],
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                  f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{pattern}"}},
    }  # fmt: skip
    return {"Resources": {
        "DataKey": {"Type": "AWS::KMS::Key",
                    "Properties": {"KeyPolicy": {"Statement": [ROOT, logs]}}},
        "InferenceLogsC1F7CC05": {"Type": "AWS::Logs::LogGroup",
                                  "Properties": {"KmsKeyId": {"Fn::GetAtt": ["DataKey", "Arn"]}}},
    }}  # fmt: skip


def test_cloudwatch_logs_may_use_the_key_only_for_the_named_log_group() -> None:
    ours = World(STACK, _log_group_template(f"{STACK}-InferenceLogsC1F7CC05-*"), {})
    cases = log_group_key_cases(ours)
    assert [c.action for c in cases] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert all(c.decision.allowed for c in cases)
    other = World(STACK, _log_group_template(f"{STACK}-OtherLogs-*"), {})
    assert not any(c.decision.allowed for c in log_group_key_cases(other))


def _delivery_template(with_key_use: bool) -> dict[str, Any]:
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    grants: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
         "Resource": bucket_arn},
        {"Effect": "Allow", "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
         "Resource": f"{bucket_arn}/*"},
    ]  # fmt: skip
    if with_key_use:
        grants.append({
            "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/*",
            "Condition": {
                "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn,
                                                                    f"{bucket_arn}/*"]},
            },
        })  # fmt: skip
    trust = {"Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"},
             "Action": "sts:AssumeRole"}  # fmt: skip
    return {"Resources": {
        "DeliveryRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Statement": [trust]},
            "Policies": [{"PolicyName": "Delivery", "PolicyDocument": {"Statement": grants}}],
        }},
        "Stream": {"Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": {
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": {"Fn::GetAtt": ["DeliveryRole", "Arn"]},
                "BucketARN": bucket_arn, "Prefix": "captures/",
            },
        }},
    }}  # fmt: skip


KEY = BucketKey(
    f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/key-CaptureKey",
    statements("capture key policy", {"Statement": [ROOT]}),
)


def _kms_cases(template: dict[str, Any], key: BucketKey | None) -> list[Any]:
    world = World(STACK, template, {})
    return [c for c in capture_cases(world, key) if c.action.startswith("kms:")]


def test_the_delivery_role_writes_an_sse_kms_bucket_through_s3_with_its_key() -> None:
    cases = _kms_cases(_delivery_template(with_key_use=True), KEY)
    assert sorted({c.role for c in cases}) == ["DeliveryRole", "capture key policy (account)"]
    assert len(cases) == 4 and all(c.decision.allowed for c in cases)


def test_without_the_key_grant_the_delivery_is_denied() -> None:
    cases = _kms_cases(_delivery_template(with_key_use=False), KEY)
    denied = sorted(c.action for c in cases if not c.decision.allowed)
    assert denied == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_a_key_policy_without_the_account_statement_denies_the_delivery() -> None:
    no_delegation = copy.deepcopy(KEY)
    no_delegation.policy.clear()
    cases = _kms_cases(_delivery_template(with_key_use=True), no_delegation)
    assert [c.decision.allowed for c in cases if c.role.startswith("capture key")] == [
        False, False,
    ]  # fmt: skip


def test_an_sse_s3_bucket_needs_no_key() -> None:
    assert _kms_cases(_delivery_template(with_key_use=False), None) == []

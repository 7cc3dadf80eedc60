"""encryption.customer_managed_key: customer-managed keys for captured customer data.

Captured rows are in two places: the inference function's log group (one log line per row,
kept for function.log_retention_days) and the capture bucket (kept for
capture.retention_days). With the option on (prod in the committed cdk.json) both are
encrypted with customer-managed keys, and switching it on or off for a deployed
environment updates the bucket and the log group in place.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.infra.conftest import Synth, cdk_context
from tools.transitions.changes import Action, State, apply, plan

SynthContext = Callable[[Mapping[str, Any]], Synth]
LOG_GROUP = "InferenceLogsC1F7CC05"


def _capture_bucket(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, r) for k, r in synth.resources("model-store", "AWS::S3::Bucket").items()
        if "captures" in json.dumps(r["Properties"].get("BucketName"))
    ]  # fmt: skip
    return found


def _keys(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    return synth.resources(kind, "AWS::KMS::Key")


def _data_key(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, r) for k, r in _keys(synth, "inference").items() if k.startswith("DataKey")
    ]  # fmt: skip
    return found


def _statements(key: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = key["Properties"]["KeyPolicy"]["Statement"]
    return statements


ROOT = {"AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::",
                                  {"Ref": "AWS::AccountId"}, ":root"]]}}  # fmt: skip


def test_prod_encrypts_the_capture_bucket_with_a_retained_rotated_key_and_a_bucket_key(
    prod: Synth,
) -> None:
    (key_id, key), *others = _keys(prod, "model-store").items()
    assert not others
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert key["Properties"]["EnableKeyRotation"] is True
    # The account administers it and delegates reading captures to IAM policies.
    assert _statements(key) == [
        {"Action": "kms:*", "Effect": "Allow", "Principal": ROOT, "Resource": "*"}
    ]
    _, bucket = _capture_bucket(prod)
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "BucketKeyEnabled": True,
        "ServerSideEncryptionByDefault": {
            "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
            "SSEAlgorithm": "aws:kms",
        },
    }


def test_prod_encrypts_the_log_group_and_the_stream_with_the_inference_stacks_key(
    prod: Synth,
) -> None:
    key_id, key = _data_key(prod)
    assert key["DeletionPolicy"] == "Retain", "old log events stay readable after a switch"
    assert key["Properties"]["EnableKeyRotation"] is True
    log_group = prod.template("inference")["Resources"][LOG_GROUP]
    assert log_group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (stream,) = prod.resources("inference", "AWS::KinesisFirehose::DeliveryStream").values()
    assert stream["Properties"]["DeliveryStreamEncryptionConfigurationInput"] == {
        "KeyARN": {"Fn::GetAtt": [key_id, "Arn"]},
        "KeyType": "CUSTOMER_MANAGED_CMK",
    }
    # No role besides the delivery role: Firehose uses a grant for the stream's key.
    roles = prod.resources("inference", "AWS::IAM::Role")
    assert not [k for k in roles if k.startswith("CaptureStream")], sorted(roles)


def test_cloudwatch_logs_may_use_the_key_for_the_function_log_group_only(prod: Synth) -> None:
    """CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using AWS KMS"."""
    _, key = _data_key(prod)
    root, logs = _statements(key)
    assert root == {"Action": "kms:*", "Effect": "Allow", "Principal": ROOT, "Resource": "*"}
    assert logs["Principal"] == {
        "Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
    }
    assert sorted(logs["Action"]) == [
        "kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*",
    ]  # fmt: skip
    assert logs["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":logs:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":log-group:sklearn-serving-prod-inference-InferenceLogsC1F7CC05-*",
                    ],
                ]
            }
        }
    }


def test_the_delivery_role_uses_the_bucket_key_only_through_s3_for_the_capture_bucket(
    prod: Synth,
) -> None:
    (role,) = [
        r for k, r in prod.resources("inference", "AWS::IAM::Role").items()
        if k.startswith("CaptureDeliveryRole")
    ]  # fmt: skip
    (policy,) = role["Properties"]["Policies"]
    (kms,) = [s for s in policy["PolicyDocument"]["Statement"] if "kms:Decrypt" in s["Action"]]
    assert sorted(kms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms["Condition"]["StringEquals"] == {
        "kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
    }
    bucket, objects = kms["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]
    assert ":s3:::sklearn-serving-prod-captures-" in json.dumps(bucket)
    assert objects["Fn::Join"][1] == [*bucket["Fn::Join"][1], "/*"]


def test_dev_keeps_s3_managed_and_aws_owned_keys(dev: Synth) -> None:
    assert not _keys(dev, "model-store")
    assert [k for k in _keys(dev, "inference") if k.startswith("DataKey")] == []
    _, bucket = _capture_bucket(dev)
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    assert "KmsKeyId" not in dev.template("inference")["Resources"][LOG_GROUP]["Properties"]


def _prod_with(synth_context: SynthContext, customer_managed_key: bool) -> Synth:
    context = copy.deepcopy(cdk_context())
    context["env"] = "prod"
    context["environments"]["prod"]["encryption"] = {"customer_managed_key": customer_managed_key}
    return synth_context(context)


@pytest.mark.parametrize("switch", ["on", "off"])
def test_switching_the_option_updates_the_bucket_and_the_log_group_in_place(
    synth_context: SynthContext, switch: str
) -> None:
    """Neither the retained capture bucket nor the log group (captured rows for 90 days in
    prod) is replaced; the keys are created, or retained when switched off."""
    off, on = _prod_with(synth_context, False), _prod_with(synth_context, True)
    before, after = (off, on) if switch == "on" else (on, off)
    for kind, watched in (
        ("model-store", _capture_bucket(on)[0]),
        ("inference", LOG_GROUP),
    ):
        first = plan({"Resources": {}}, before.template(kind), State())
        deploy = plan(before.template(kind), after.template(kind), apply(first))
        assert deploy.changes[watched].action is Action.UPDATE, (kind, deploy.changes[watched])
        assert not deploy.by_action(Action.REPLACE), (kind, deploy.by_action(Action.REPLACE))
        assert not deploy.by_action(Action.DELETE), (kind, deploy.by_action(Action.DELETE))
        keys = [c for c in deploy.changes.values() if c.type == "AWS::KMS::Key"
                and c.logical_id.startswith(("CaptureKey", "DataKey"))]  # fmt: skip
        assert [c.action for c in keys] == [Action.CREATE if switch == "on" else Action.RETAIN]

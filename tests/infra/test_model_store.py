"""Model store stack: a retained, locked-down bucket and a non-pruning upload."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk.assertions import Match

from stacks.config import load_config
from tests.infra.conftest import Synth, cdk_context

REPO = Path(__file__).resolve().parents[2]


def model_bucket(synth: Synth) -> tuple[str, dict]:
    buckets = synth.resources("model-store", "AWS::S3::Bucket")
    (item,) = [
        (k, v)
        for k, v in buckets.items()
        if "-models-" in json.dumps(v["Properties"].get("BucketName"))
    ]
    return item


def test_bucket_is_retained_versioned_encrypted_and_private(dev: Synth) -> None:
    _, bucket = model_bucket(dev)
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["LifecycleConfiguration"]["Rules"][0]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["Status"] == "Enabled"


def test_access_logs_go_to_a_separate_retained_bucket(dev: Synth) -> None:
    logical_id, bucket = model_bucket(dev)
    target = bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert target != logical_id
    logs = dev.template("model-store")["Resources"][target]
    assert logs["DeletionPolicy"] == "Retain"
    assert "LoggingConfiguration" not in logs["Properties"]


def test_every_bucket_refuses_plain_http(dev: Synth) -> None:
    policies = dev.resources("model-store", "AWS::S3::BucketPolicy")
    buckets = dev.resources("model-store", "AWS::S3::Bucket")
    denied = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                assert statement["Effect"] == "Deny"
                denied.add(policy["Properties"]["Bucket"]["Ref"])
    assert denied == set(buckets)


def test_bucket_name_is_fixed_per_environment(dev: Synth, prod: Synth) -> None:
    for synth, env in ((dev, "dev"), (prod, "prod")):
        _, bucket = model_bucket(synth)
        joined = bucket["Properties"]["BucketName"]["Fn::Join"][1]
        assert joined[0] == f"sklearn-serving-{env}-models-"
        assert {"Ref": "AWS::AccountId"} in joined and {"Ref": "AWS::Region"} in joined


def test_upload_never_deletes_older_versions(dev: Synth) -> None:
    dev.assertions("model-store").has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketKeyPrefix": load_config(cdk_context()).model.prefix,
            "Prune": False,
            "RetainOnDelete": True,
        },
    )


def upload_prefix(synth: Synth) -> str:
    (upload,) = synth.resources("model-store", "Custom::CDKBucketDeployment").values()
    prefix: str = upload["Properties"]["DestinationBucketKeyPrefix"]
    return prefix


def test_upload_is_content_addressed_and_matches_the_pinned_key(
    dev: Synth, dev_canary: Synth
) -> None:
    """The function's MODEL_KEY lies under exactly the prefix this stack uploads to."""
    for synth, version in ((dev, "v1"), (dev_canary, "v2")):
        prefix = upload_prefix(synth)
        assert re.fullmatch(rf"models/churn/{version}/[0-9a-f]{{16}}/", prefix)
        functions = synth.resources("inference", "AWS::Lambda::Function").values()
        (key,) = [
            f["Properties"]["Environment"]["Variables"]["MODEL_KEY"]
            for f in functions
            if "MODEL_KEY" in f["Properties"].get("Environment", {}).get("Variables", {})
        ]
        assert key == f"{prefix}model.compiled.npz"


def test_uploaded_asset_holds_artifacts_and_manifest_only(dev: Synth) -> None:
    (name,) = [n for n in dev.assets if n.endswith("-model-store")]
    (staged,) = [
        dev.directory / f["source"]["path"]
        for f in dev.assets[name]["files"].values()
        if (dev.directory / f["source"]["path"] / "manifest.json").exists()
    ]
    manifest = json.loads((REPO / "model_artifacts/churn/v1/manifest.json").read_text())
    expected = {a["file"] for a in manifest["artifacts"].values()} | {"manifest.json"}
    assert {p.name for p in staged.iterdir()} == expected
    assert "model_card.png" not in expected


def test_model_store_is_termination_protected_in_prod_only(dev: Synth, prod: Synth) -> None:
    for synth, expected in ((dev, False), (prod, True)):
        manifest = json.loads((synth.directory / "manifest.json").read_text())
        (props,) = [
            a["properties"]
            for name, a in manifest["artifacts"].items()
            if name.endswith("-model-store") and a["type"] == "aws:cloudformation:stack"
        ]
        assert props.get("terminationProtection", False) is expected


def test_no_lambda_version_or_alias_in_the_stateful_stack(dev: Synth) -> None:
    template = dev.assertions("model-store")
    template.resource_count_is("AWS::Lambda::Version", 0)
    template.resource_count_is("AWS::Lambda::Alias", 0)
    template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": Match.exact("Retain")})

"""Least privilege and exposure, proven on the synthesized templates of every configuration.

Adds to tests/infra (which checks the function role in dev, the model bucket's public
access block and TLS policy in dev, and the Function URL's auth per setting): here every
role, bucket, URL and function of dev, prod and both canaries is scanned. Synthesizes
with tests/infra's own helpers; conftest fixtures are per directory in pytest, so this
module builds its four configurations once more (about 3 s each).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.conftest import CANARY, Synth, cdk_context, run_synth

pytestmark = pytest.mark.infra

CONFIGURATIONS = {
    "dev": {"env": "dev"},
    "prod": {"env": "prod"},
    "dev-canary": {"env": "dev", **CANARY},
    "prod-canary": {"env": "prod", **CANARY},
}

# Every Allow on Resource "*" must be one of these, each with the reason it cannot be
# scoped. A new one fails test_wildcard_resources_are_only_the_acknowledged_ones.
WILDCARD_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions (tracing on)",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions (tracing on)",
    "application-autoscaling:DescribeScalableTargets": "no resource-level permissions; read only",
    "logs:GetQueryResults": "query ids are not resources (drift monitor)",
    "logs:StopQuery": "query ids are not resources (drift monitor)",
    "cloudwatch:PutMetricData": "no resource-level permissions; limited by namespace condition",
}


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def synthesized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    context = {**cdk_context(), **CONFIGURATIONS[request.param]}
    return run_synth(tmp_path_factory.mktemp("cdk-out"), context)


def resources(synth: Synth, type_: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for stack, template in synth.templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == type_:
                yield stack, logical_id, resource.get("Properties", {})


def identity_statements(synth: Synth) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) of every identity policy: AWS::IAM::Policy and inline role policies."""
    for stack, logical_id, props in resources(synth, "AWS::IAM::Policy"):
        for statement in props["PolicyDocument"]["Statement"]:
            yield f"{stack}/{logical_id}", statement
    for stack, logical_id, props in resources(synth, "AWS::IAM::Role"):
        for policy in props.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield f"{stack}/{logical_id}/{policy['PolicyName']}", statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_statement_allows_every_action_of_a_service(synthesized: Synth) -> None:
    statements = list(identity_statements(synthesized))
    assert statements, "nothing scanned"
    for where, statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{where} allows {action}"


def test_wildcard_resources_are_only_the_acknowledged_ones(synthesized: Synth) -> None:
    for where, statement in identity_statements(synthesized):
        if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"]):
            unacknowledged = set(as_list(statement["Action"])) - set(WILDCARD_RESOURCE_ACTIONS)
            assert not unacknowledged, f"{where} allows {unacknowledged} on every resource"


def test_the_inference_role_reads_its_model_prefix_and_nothing_else(synthesized: Synth) -> None:
    (function,) = [
        props
        for stack, _, props in resources(synthesized, "AWS::Lambda::Function")
        if stack.endswith("-inference") and "MODEL_KEY" in json.dumps(props)
    ]
    role_id = function["Role"]["Fn::GetAtt"][0]
    (role,) = [p for _, lid, p in resources(synthesized, "AWS::IAM::Role") if lid == role_id]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    granted = [
        statement
        for _, _, props in resources(synthesized, "AWS::IAM::Policy")
        if {"Ref": role_id} in props["Roles"]
        for statement in props["PolicyDocument"]["Statement"]
    ]
    s3 = [s for s in granted if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    assert [s["Action"] for s in s3] == ["s3:GetObject"]
    key = function["Environment"]["Variables"]["MODEL_KEY"]
    prefix = s3[0]["Resource"]["Fn::Join"][1][-1]
    assert prefix.endswith("/*") and key.startswith(prefix.removeprefix("/").removesuffix("*"))
    assert prefix == f"/models/{function['Environment']['Variables']['MODEL_NAME']}/*"
    # Only its logs, X-Ray and the model: nothing in another service.
    services = {a.split(":")[0] for s in granted for a in as_list(s["Action"])}
    assert services == {"s3", "logs", "xray"}


def test_every_bucket_is_private_and_tls_only(synthesized: Synth) -> None:
    buckets = {lid: props for _, lid, props in resources(synthesized, "AWS::S3::Bucket")}
    assert buckets
    tls_only: set[str] = set()
    for _, logical_id, props in resources(synthesized, "AWS::S3::BucketPolicy"):
        for statement in props["PolicyDocument"]["Statement"]:
            principal = statement.get("Principal")
            if statement["Effect"] == "Allow":
                assert principal not in ("*", {"AWS": "*"}), f"{logical_id} allows anyone"
            if statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                assert statement["Effect"] == "Deny" and principal == {"AWS": "*"}
                assert statement["Action"] == "s3:*"
                tls_only.add(props["Bucket"]["Ref"])
    assert tls_only == set(buckets)
    for logical_id, props in buckets.items():
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id


def test_every_function_url_requires_iam_auth_unless_opened_in_config(
    synthesized: Synth,
) -> None:
    # None of cdk.json's environments opens its URL, so none may be open.
    urls = [props for _, _, props in resources(synthesized, "AWS::Lambda::Url")]
    assert urls and all(url["AuthType"] == "AWS_IAM" for url in urls)
    for _, logical_id, props in resources(synthesized, "AWS::Lambda::Permission"):
        assert props["Principal"] != "*", f"{logical_id} lets anyone invoke"
        assert props.get("FunctionUrlAuthType") != "NONE", logical_id


def test_reserved_concurrency_caps_the_blast_radius(synthesized: Synth) -> None:
    for stack, logical_id, props in resources(synthesized, "AWS::Lambda::Function"):
        if stack.endswith("-inference") and "MODEL_KEY" in json.dumps(props):
            assert props.get("ReservedConcurrentExecutions", 0) >= 1, logical_id


SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY", re.IGNORECASE
)
SECRET_VALUE = [
    re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),  # secret key shape
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(ghp|gho|xox[bap])_?[A-Za-z0-9-]{20,}"),  # GitHub, Slack tokens
]


def secret_findings(variables: dict[str, Any]) -> list[str]:
    """Names and values in a function's environment that look like credentials."""
    findings = []
    for name, value in variables.items():
        if SECRET_NAME.search(name):
            findings.append(f"{name}: the name suggests a secret")
        text = value if isinstance(value, str) else json.dumps(value)
        if any(pattern.search(text) for pattern in SECRET_VALUE):
            findings.append(f"{name}: the value looks like a credential")
    return findings


def test_the_secret_scan_finds_what_it_is_for() -> None:
    assert secret_findings({"DB_PASSWORD": "x"}) == ["DB_PASSWORD: the name suggests a secret"]
    assert secret_findings({"X": "AKIAIOSFODNN7EXAMPLE"}) == [
        "X: the value looks like a credential"
    ]
    assert secret_findings({"X": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
    assert secret_findings({"X": {"Fn::Join": ["", ["-----BEGIN RSA PRIVATE KEY-----"]]}})
    sha256 = "336a52d80feb956b9841e93a72701ab3b16f84766a2d51275ec7fb0d73b6efdb"
    key = "models/churn/v1/24dae53ad9b68219/model.compiled.npz"  # a content-addressed key
    assert secret_findings({"MODEL_SHA256": sha256, "MODEL_KEY": key}) == []


def test_no_function_environment_carries_a_secret(synthesized: Synth) -> None:
    scanned = 0
    for stack, logical_id, props in resources(synthesized, "AWS::Lambda::Function"):
        variables = props.get("Environment", {}).get("Variables", {})
        scanned += len(variables)
        assert secret_findings(variables) == [], f"{stack}/{logical_id}"
    assert scanned >= 8, "the inference function's MODEL_* settings were not scanned"

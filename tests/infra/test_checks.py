"""Snapshots, cfn-lint and cdk-nag over every synthesized stack, dev and prod."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk import aws_s3 as s3
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from stacks.application import build_app
from stacks.config import load_config
from tests.infra.conftest import CANARY, Synth, cdk_context, validation_findings

REPO = Path(__file__).resolve().parents[2]
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "dev": {"env": "dev"},
    "prod": {"env": "prod"},
    "prod-canary": {"env": "prod", **CANARY},
}

# What changes without the infrastructure changing: content hashes of assets (image tag,
# zip keys, the BucketDeployment source key) and the hash suffix of version logical IDs.
_HASH = re.compile(r"\b[0-9a-f]{64}\b")
_VERSION_ID = re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32,}")


def masked(template: dict[str, Any]) -> Any:
    text = json.dumps(template, sort_keys=True)
    text = _VERSION_ID.sub(r"\1<version-hash>", text)
    text = _HASH.sub("<asset-hash>", text)
    return json.loads(text)


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
@pytest.mark.parametrize("kind", ["model-store", "inference"])
def test_snapshot(
    synth: Callable[..., Synth], snapshot_json: SnapshotAssertion, configuration: str, kind: str
) -> None:
    assert masked(synth(**CONFIGURATIONS[configuration]).template(kind)) == snapshot_json


def test_masking_keeps_what_matters(prod: Synth) -> None:
    text = json.dumps(masked(prod.template("inference")))
    assert "<version-hash>" in text and "<asset-hash>" in text
    assert '"FunctionWeight"' not in text  # prod has no canary: nothing masked it away
    assert '"Executions": "4"' in text


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_cfn_lint_finds_nothing(synth: Callable[..., Synth], configuration: str) -> None:
    result = synth(**CONFIGURATIONS[configuration])
    templates = sorted(str(p) for p in result.directory.glob("*.template.json"))
    assert len(templates) == 2
    lint = subprocess.run(
        [
            CFN_LINT,
            "--config-file",
            str(REPO / ".cfnlintrc.yaml"),
            *templates,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_cfn_lint_would_catch_pc_on_a_weighted_alias(prod_canary: Synth, tmp_path: Path) -> None:
    """The check above can fail: E3020 is what our design avoids."""
    template = json.loads(json.dumps(prod_canary.template("inference")))
    (alias,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Alias"]
    alias["Properties"]["ProvisionedConcurrencyConfig"] = {"ProvisionedConcurrentExecutions": 1}
    path = tmp_path / "bad.template.json"
    path.write_text(json.dumps(template))
    lint = subprocess.run(
        [
            CFN_LINT,
            "--config-file",
            str(REPO / ".cfnlintrc.yaml"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "E3020" in lint.stdout


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_cdk_nag_has_no_unacknowledged_finding(
    synth: Callable[..., Synth], configuration: str
) -> None:
    # The fixtures synthesize with AwsSolutionsChecks attached, as app.py does, and a
    # finding fails synth; the report proves the pack ran and passed.
    result = synth(**CONFIGURATIONS[configuration])
    # Construct warnings join the report too (@aws-cdk/core:annotationsInValidationReport);
    # the only one allowed is the placeholder alarm address of the committed prod.
    assert validation_findings(result.directory) == [], "a passing pack reports nothing"


def test_cdk_nag_fails_synth_on_a_new_finding(tmp_path: Path) -> None:
    """The check above can fail: an unacknowledged finding stops synth."""
    app = App(context=cdk_context(), outdir=str(tmp_path))
    stacks = build_app(app, load_config(app.node.get_all_context()))
    s3.Bucket(stacks.model_store, "Careless")  # no TLS policy, no access logs
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_every_acknowledgement_names_a_resource_and_a_reason(
    synth: Callable[..., Synth], configuration: str
) -> None:
    result = synth(**CONFIGURATIONS[configuration])
    acknowledged = []
    for path in result.directory.glob("*.metadata.json"):
        for construct_path, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    acknowledged.extend((construct_path, *item) for item in entry["data"].items())
    assert acknowledged, "the BucketDeployment handler at least needs acknowledgements"
    for construct_path, rule, reason in acknowledged:
        assert construct_path.count("/") >= 2, f"{rule} on a whole stack: {construct_path}"
        # A '*' resource only for actions that have no resource-level permissions.
        assert "AwsSolutions-" in rule
        assert "[Resource::*]" not in rule or (
            "xray" in reason or "no resource-level permissions" in reason
        )
        assert len(reason) > 40, f"{rule} at {construct_path} needs a real reason"

"""Each manual step on a copy of cdk.json: the written block, and the alias it synthesizes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.config import CDK_JSON
from tests.infra.conftest import Synth
from tests.rollout.conftest import Result, Run, block

START = ("start", "--env", "prod", "--version", "v2", "--weight", "0.1", "--stable", "7")


@pytest.fixture
def canary(config: Path, rollout: Run, synth_config: Callable[..., Synth]) -> Synth:
    """Prod synthesized after ``START``: the canary the other commands act on."""
    result = rollout(config, *START)
    assert result.code == 0, result.err
    return synth_config(config, "prod")


def canary_block(weight: float) -> dict[str, Any]:
    """Prod's rollout block with v2 on ``weight`` of the traffic beside version 7 (v1)."""
    return {
        "mode": "manual",
        "model_version": "v2",
        "stable_version": 7,
        "canary_weight": weight,
        "stable_model_version": "v1",
    }


def alias(synth: Synth) -> dict[str, Any]:
    (resource,) = synth.resources("inference", "AWS::Lambda::Alias").values()
    props: dict[str, Any] = resource["Properties"]
    return props


def dashboard_widgets(synth: Synth) -> list[dict[str, Any]]:
    (dashboard,) = synth.resources("inference", "AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    widgets: list[dict[str, Any]] = json.loads(text)["widgets"]
    return widgets


def settle_allocations(synth: Synth) -> list[dict[str, Any]]:
    (settle,) = [
        r["Properties"]
        for r in synth.resources("inference", "Custom::ProvisionedConcurrency").values()
        if r["Properties"]["Phase"] == "settle"
    ]
    allocations: list[dict[str, Any]] = settle["Allocations"]
    return allocations


def test_start_writes_the_canary_and_nothing_else(config: Path, rollout: Run) -> None:
    original = config.read_text()
    result = rollout(config, *START)
    assert result.code == 0, result.err
    assert block(config, "prod") == canary_block(0.1)
    # Everything but prod's rollout block is byte-for-byte what it was.
    document = json.loads(original)
    document["context"]["environments"]["prod"]["rollout"] = block(config, "prod")
    assert config.read_text() == render(document)
    assert render(json.loads(original)) == original, "the file round-trips unchanged"
    assert CDK_JSON.read_text() != config.read_text(), "the real cdk.json is not the copy"


def test_start_prints_the_plan_and_the_cdk_commands(config: Path, rollout: Run) -> None:
    out = rollout(config, *START).out
    assert "90.0% -> stable = Lambda version 7 running churn v1" in out
    assert "10.0% -> candidate = churn v2" in out
    assert "provisioned concurrency (total 4): stable version 7: 3, candidate: 1" in out
    assert f"cd {config.parent} && npx cdk diff -c env=prod" in out
    assert f"cd {config.parent} && npx cdk deploy --all -c env=prod" in out


def test_started_canary_synthesizes_the_weighted_alias(canary: Synth) -> None:
    props = alias(canary)
    assert props["FunctionVersion"] == "7"
    (weight,) = props["RoutingConfig"]["AdditionalVersionWeights"]
    assert weight["FunctionWeight"] == 0.1
    assert weight["FunctionVersion"]["Fn::GetAtt"][0] in canary.version_ids()
    assert "ProvisionedConcurrencyConfig" not in props


def test_dashboard_and_alarm_name_both_model_versions(canary: Synth) -> None:
    widgets = dashboard_widgets(canary)
    header = widgets[0]["properties"]["markdown"]
    assert "stable (version 7, model v1)" in header
    # Mean predicted probability: one line per model version, side by side, by name.
    (probability,) = [
        w for w in widgets if w["properties"].get("title") == "Mean predicted probability"
    ]
    lines = {(m[1], m[2], m[3], m[4]["label"]) for m in probability["properties"]["metrics"]}
    assert lines == {
        ("PredictionProbability", "ModelVersion", "v1", "stable (model v1)"),
        ("PredictionProbability", "ModelVersion", "v2", "candidate (model v2)"),
    }
    (latency,) = [
        a["Properties"]
        for a in canary.resources("inference", "AWS::CloudWatch::Alarm").values()
        if "latency" in a["Properties"]["AlarmDescription"]
    ]
    assert "v1 or v2" in latency["AlarmDescription"]
    expression = next(m for m in latency["Metrics"] if "Expression" in m)
    assert expression["Expression"] == "MAX([stable, candidate])"
    watched = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
        for m in latency["Metrics"]
        if "MetricStat" in m
    }
    assert watched == {"v1", "v2"}


def test_set_weight_ramps_only_the_weight(config: Path, rollout: Run) -> None:
    rollout(config, *START)
    before = block(config, "prod")
    result = rollout(config, "set-weight", "0.5", "--env", "prod")
    assert result.code == 0, result.err
    assert block(config, "prod") == {**before, "canary_weight": 0.5}
    assert "stable version 7: 2, candidate: 2" in result.out
    assert "no new Lambda version" in result.out


def run_and_synth(
    config: Path, rollout: Run, synth_config: Callable[..., Synth], command: str
) -> tuple[Result, Synth]:
    """``command`` on prod, which must succeed, and what prod synthesizes after it."""
    result = rollout(config, command, "--env", "prod")
    assert result.code == 0, result.err
    return result, synth_config(config, "prod")


def test_promote_gives_the_candidate_all_traffic_without_a_new_version(
    config: Path, rollout: Run, synth_config: Callable[..., Synth], canary: Synth
) -> None:
    result, promoted = run_and_synth(config, rollout, synth_config, "promote")
    assert block(config, "prod") == {
        "mode": "manual",
        "model_version": "v2",
        "stable_version": None,
        "canary_weight": 0,
        "stable_model_version": None,
    }
    props = alias(promoted)
    assert "RoutingConfig" not in props
    assert props["FunctionVersion"]["Fn::GetAtt"][0] in promoted.version_ids()
    assert promoted.version_ids() == canary.version_ids(), "no new Lambda version"
    assert [a["Executions"] for a in settle_allocations(promoted)] == ["4"]
    assert "100 % -> the deployed version, running churn v2" in result.out


def test_rollback_sends_everything_back_to_the_stable_version(
    config: Path, rollout: Run, synth_config: Callable[..., Synth], canary: Synth
) -> None:
    result, rolled_back = run_and_synth(config, rollout, synth_config, "rollback")
    assert block(config, "prod")["stable_version"] == 7
    assert block(config, "prod")["canary_weight"] == 0
    assert block(config, "prod")["stable_model_version"] == "v1"
    props = alias(rolled_back)
    assert props["FunctionVersion"] == "7"
    assert "RoutingConfig" not in props
    assert settle_allocations(rolled_back) == [
        {"Qualifier": "7", "Executions": "4", "Maximum": "20", "Weight": "1"}
    ]
    assert rolled_back.version_ids() == canary.version_ids(), "instant: nothing published"
    assert "100 % -> stable = Lambda version 7 running churn v1" in result.out


def test_start_after_a_rollback_keeps_the_stable_version(config: Path, rollout: Run) -> None:
    rollout(config, *START)
    rollout(config, "rollback", "--env", "prod")
    # No --stable and no credentials: the rolled-back config already names the stable side.
    result = rollout(config, "start", "--env", "prod", "--version", "v2", "--weight", "0.2")
    assert result.code == 0, result.err
    assert block(config, "prod") == canary_block(0.2)


def test_status_without_credentials_prints_the_configured_part(config: Path, rollout: Run) -> None:
    rollout(config, *START)
    result = rollout(config, "status", "--env", "prod")
    assert result.code == 0
    assert "state: canary" in result.out
    assert "stable = Lambda version 7 running churn v1" in result.out
    assert "python -m tools.rollout promote --env prod" in result.out
    assert "live status needs AWS credentials (none found:" in result.out
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_status_of_the_committed_config(rollout: Run, env: str) -> None:
    # Read-only, so the real cdk.json is fine here; it must stay as committed.
    before = CDK_JSON.read_bytes()
    result = rollout(CDK_JSON, "status", "--env", env)
    assert result.code == 0
    assert "state: steady" in result.out and "churn v1" in result.out
    assert CDK_JSON.read_bytes() == before


def render(document: Any) -> str:
    """The committed cdk.json's format: two-space indent, key order kept, trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

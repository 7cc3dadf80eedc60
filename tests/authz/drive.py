"""One deploy, as the functions live it: what each one calls, and on whose role.

``deploy`` runs, in CloudFormation's order: the reconciler's ``scale_up``, the traffic
gate (custom resource, or CodeDeploy's hook in automated mode), the alias update, the
reconciler's ``settle``; then one run of each scheduled monitor. ``teardown`` runs the
Deletes of a stack deletion. Every call is returned with the function and role that made
it; see ``functions`` for the calls made on a function's behalf.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from serving.reserved import GATE_KEY
from tests.authz.account import Account, local_file
from tests.authz.functions import (
    Made,
    alias_routing,
    custom_resource_event,
    environment,
    golden_answers,
    handler_module,
    hook_function,
    inference_function,
    run,
    service_token_of,
)
from tests.authz.sar import Call
from tests.authz.world import World

PC = "Custom::ProvisionedConcurrency"
GATE = "Custom::TrafficGate"
UPLOAD = "Custom::CDKBucketDeployment"
SCALING_ROLE = (
    "aws-service-role/lambda.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency"
)


class GateAccount(Account):
    """Versions answer the golden rows as recorded, as a healthy candidate does."""

    def invoke(self, p: Mapping[str, Any]) -> Any:
        answers = _golden()
        payload = json.loads(p["Payload"])
        # The gate marks its golden rows, and the handler takes the mark only on a version
        # invoked by number (docs/calling.md): the grant proved is on function:NAME:VERSION.
        version = str(p["FunctionName"]).rsplit(":", 1)[-1]
        assert payload.get(GATE_KEY) is True and version.isdigit(), (p["FunctionName"], payload)
        rows = [answers[json.dumps(row, sort_keys=True)] for row in payload["instances"]]
        return {"statusCode": 200, "predictions": rows}


_GOLDEN: dict[str, Any] = {}


def _golden() -> dict[str, Any]:
    if not _GOLDEN:
        _GOLDEN.update(golden_answers())
    return _GOLDEN


def _made(world: World, function: str, calls: list[Call], why: str) -> list[Made]:
    role = world.role_of_function(function)
    return [Made(function, role, call, why) for call in calls]


def _reconcile(
    world: World, account: Account, patch: pytest.MonkeyPatch, phase: str, request: str
) -> list[Made]:
    found = []
    reconciler = handler_module("reconciler/index.py")
    for resource, function in service_token_of(world, PC):
        if world.props(resource).get("Phase") != phase:
            continue
        event = custom_resource_event(world, resource, request, PC)
        calls, answers = run(patch, account, reconciler, event)
        assert answers and answers[0][0] == "SUCCESS", answers
        found += _made(world, function, _with_scaling_calls(account, calls), f"{phase} {request}")
    return found


def _with_scaling_calls(account: Account, calls: list[Call]) -> list[Call]:
    """The reconciler's calls, plus those Application Auto Scaling makes as the caller."""
    found = []
    for call in calls:
        if call.service == "application-autoscaling" and "ResourceId" in call.params:
            qualifier = str(call.params["ResourceId"]).rsplit(":", 1)[1]
            call = Call(call.service, call.operation, call.params,
                        ids={"ResourceId": account.target_id(qualifier)})  # fmt: skip
            found.append(call)
            alarm = f"TargetTracking-function:{account.function_name}:{qualifier}-AlarmHigh-0a1b"
            if call.operation == "PutScalingPolicy":
                found += [Call("cloudwatch", op, {"AlarmName": alarm})
                          for op in ("PutMetricAlarm", "DescribeAlarms")]  # fmt: skip
            if call.operation == "DeregisterScalableTarget":
                found.append(Call("cloudwatch", "DeleteAlarms", {"AlarmNames": [alarm]}))
            if call.operation == "RegisterScalableTarget":
                found.append(
                    Call("iam", "CreateServiceLinkedRole",
                         {"AWSServiceName": "lambda.application-autoscaling.amazonaws.com"},
                         ids={"RoleNameWithPath": SCALING_ROLE})
                )  # fmt: skip
        else:
            found.append(call)
    return found


def _gate(world: World, account: GateAccount, patch: pytest.MonkeyPatch) -> list[Made]:
    gate = handler_module("traffic_gate/index.py")
    found = []
    for resource, function in service_token_of(world, GATE):
        event = custom_resource_event(world, resource, "Update", GATE)
        calls, answers = run(patch, account, gate, event)
        assert answers and answers[0][0] == "SUCCESS", answers
        found += _made(world, function, calls, "traffic gate (custom resource)")
    hook = hook_function(world)
    if hook is not None:
        found += _hook(world, account, patch, hook)
    return found


def _hook(world: World, account: GateAccount, patch: pytest.MonkeyPatch, hook: str) -> list[Made]:
    gate = handler_module("traffic_gate/index.py")
    (application,) = world.of_type("AWS::CodeDeploy::Application")
    (group,) = world.of_type("AWS::CodeDeploy::DeploymentGroup")
    ids = {"ApplicationName": world.ref(application), "DeploymentGroupName": world.ref(group)}
    # CodeDeploy shifts from the version the alias serves now to the one this deploy routes.
    routing = alias_routing(world)
    target = max(routing, key=routing.__getitem__)
    before = account.alias or routing
    current = max(before, key=before.__getitem__)
    spec = {"version": 0.0, "Resources": [{"Inference": {"Type": "AWS::Lambda::Function",
            "Properties": {"Name": account.function_name, "Alias": "production",
                           "CurrentVersion": current, "TargetVersion": target}}}]}  # fmt: skip
    account.deployment = {
        "applicationName": ids["ApplicationName"],
        "deploymentGroupName": ids["DeploymentGroupName"],
        "revision": {"revisionType": "AppSpecContent",
                     "appSpecContent": {"content": json.dumps(spec)}},
    }  # fmt: skip
    found = []
    # GetDeployment may leave the AppSpec's content out ("Required: No"): both answers.
    for omit in (False, True):
        account.omit_content = omit
        event = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-1"}
        calls, _ = run(patch, account, gate, event, environment(world, hook))
        calls = [Call(c.service, c.operation, c.params, ids=ids) for c in calls]
        found += _made(world, hook, calls, "traffic gate (CodeDeploy hook)")
    return found


def _monitors(world: World, account: Account, patch: pytest.MonkeyPatch) -> list[Made]:
    found = []
    for function in world.of_type("AWS::Lambda::Function"):
        env = environment(world, function)
        if "MANIFEST_KEY" in env:
            module, why = handler_module("monitors/index.py"), "drift monitor run"
        elif "ALIAS_NAME" in env and "LOG_GROUP" in env:
            module, why = handler_module("monitors/canary.py"), "canary evaluator run"
        else:
            continue
        view = Account(**{**account.__dict__, "queries": {}})
        if why.startswith("canary"):
            # Two versions behind the alias, so that the whole evaluation runs.
            view.alias = {"1": 0.9, "2": 0.1}
        calls, _ = run(patch, view, module, {}, env)
        # A query still running when the run's time is up is stopped.
        view.queries_running = True
        late, _ = run(patch, view, module, {}, env, remaining_ms=10_000, raises=TimeoutError)
        calls = [
            Call(c.service, c.operation, c.params,
                 ids={"LogGroupName": view.queries[c.params["queryId"]]})
            if c.operation in ("GetQueryResults", "StopQuery") else c
            for c in calls + late
        ]  # fmt: skip
        found += _made(world, function, calls, why)
    return found


def deploy(
    world: World, account: GateAccount, patch: pytest.MonkeyPatch, history: Mapping[str, str]
) -> list[Made]:
    """``history``: version number -> the MODEL_KEY it was published with."""
    account.function_name = world.function_name(inference_function(world))
    made = _reconcile(world, account, patch, "scale_up", "Update")
    made += _gate(world, account, patch)
    account.alias = alias_routing(world)
    made += _reconcile(world, account, patch, "settle", "Update")
    made += _monitors(world, account, patch)
    made += _inference(world, history)
    return made


def teardown(world: World, account: GateAccount, patch: pytest.MonkeyPatch) -> list[Made]:
    made = _reconcile(world, account, patch, "settle", "Delete")
    return made + _reconcile(world, account, patch, "scale_up", "Delete")


def _inference(world: World, history: Mapping[str, str]) -> list[Made]:
    function = inference_function(world)
    env = environment(world, function)
    keys = {history[version] for version in alias_routing(world) if version in history}
    keys.add(env["MODEL_KEY"])
    calls = [Call("s3", "GetObject", {"Bucket": env["MODEL_BUCKET"], "Key": key})
             for key in sorted(keys)]  # fmt: skip
    for key in keys:
        local_file(key)  # the key names a committed artifact
    return _made(world, function, calls, "model download at init")

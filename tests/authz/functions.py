"""Every deployed function of a stack, run against the test account; its calls recorded.

Each function is found in the template by what it is (the service token of a custom
resource, the hook of the alias's update policy, its environment) and run through its
real entry point (``handler(event, context)``) with ``boto3.client`` recording, fed the
event and environment CloudFormation, EventBridge or CodeDeploy would give it after this
deploy (the template's values, resolved). A function the walk cannot classify fails the
proof: a new deployed function must be driven here before it ships.

Calls not made through boto3, each with its source:

* Lambda itself, as the execution role: ``logs:CreateLogStream`` and ``PutLogEvents`` to
  the function's log group, ``xray:PutTraceSegments``/``PutTelemetryRecords`` with active
  tracing, and ``sqs:SendMessage``/``sns:Publish`` to an asynchronous on-failure
  destination (Lambda Developer Guide: "Lambda execution role", "Adding a destination");
* the inference image's model download: a GetObject of ``MODEL_BUCKET``/``MODEL_KEY``
  (the compiled runtime signs it with the standard library, so boto3 never sees it;
  tests/handler proves the request against an S3 server on loopback);
* Application Auto Scaling, as the caller, for target tracking: ``cloudwatch:
  PutMetricAlarm``/``DescribeAlarms`` (PutScalingPolicy), ``DeleteAlarms``
  (DeregisterScalableTarget) and ``iam:CreateServiceLinkedRole`` (the first
  RegisterScalableTarget) (Application Auto Scaling User Guide, "Identity-based policy
  examples");
* CDK's BucketDeployment (the model upload) runs the AWS CLI: GetObject of its source
  asset, then ``s3 sync`` to the destination prefix (ListBucket, PutObject).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from serving import golden_sets
from tests.authz.account import ARTIFACTS, Account
from tests.authz.record import recording
from tests.authz.sar import Call
from tests.authz.world import World

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Made:
    """A call ``function`` (logical ID) made with ``role`` (logical ID)."""

    function: str
    role: str
    call: Call
    why: str


class Context:
    """The Lambda context the handlers read: only the remaining time."""

    def __init__(self, remaining_ms: int = 600_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


# The deployed functions' entry modules (lambda_src/), by the file name their asset runs.
ENTRY_MODULES = {
    "reconciler/index.py": "reconciler.handler",
    "traffic_gate/index.py": "traffic_gate.handler",
    "monitors/index.py": "monitors.drift",
    "monitors/canary.py": "monitors.canary",
}


def handler_module(entry: str) -> ModuleType:
    return importlib.import_module(ENTRY_MODULES[entry])


def service_token_of(world: World, custom_type: str) -> list[tuple[str, str]]:
    """(custom resource, function) logical IDs for each resource of ``custom_type``."""
    return [
        (logical_id, resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0])
        for logical_id, resource in world.of_type(custom_type).items()
    ]


def hook_function(world: World) -> str | None:
    for resource in world.of_type("AWS::Lambda::Alias").values():
        hook = (
            resource.get("UpdatePolicy", {})
            .get("CodeDeployLambdaAliasUpdate", {})
            .get("BeforeAllowTrafficHook")
        )
        if hook is not None:
            return str(hook["Ref"])
    return None


def alias_routing(world: World) -> dict[str, float]:
    (alias,) = world.of_type("AWS::Lambda::Alias").values()
    props = world.resolve(alias["Properties"])
    extra = {
        str(w["FunctionVersion"]): float(w["FunctionWeight"])
        for w in props.get("RoutingConfig", {}).get("AdditionalVersionWeights", [])
    }
    return {str(props["FunctionVersion"]): 1 - sum(extra.values()), **extra}


def inference_function(world: World) -> str:
    (found,) = [
        k
        for k, v in world.of_type("AWS::Lambda::Function").items()
        if "MODEL_KEY" in v["Properties"].get("Environment", {}).get("Variables", {})
    ]
    return found


def environment(world: World, function_id: str) -> dict[str, str]:
    variables = world.props(function_id).get("Environment", {}).get("Variables", {})
    return {k: str(v) for k, v in world.resolve(variables).items()}


def run(
    monkeypatch: pytest.MonkeyPatch,
    account: Account,
    module: ModuleType,
    event: Mapping[str, Any],
    env: Mapping[str, str] = {},
    entry: str = "handler",
    *,
    remaining_ms: int = 600_000,
    raises: type[Exception] | None = None,
) -> tuple[list[Call], list[tuple[str, str]]]:
    """Calls the entry point made, and the CloudFormation answers it sent (status, reason)."""
    answers: list[tuple[str, str]] = []

    def respond(event: Any, status: str, reason: str, *args: Any) -> None:
        answers.append((status, reason))

    with monkeypatch.context() as patch:
        for name in ("respond", "_respond"):
            if hasattr(module, name):
                patch.setattr(module, name, respond)
        if hasattr(module, "time"):
            patch.setattr(module.time, "sleep", lambda seconds: None)
        for key, value in env.items():
            patch.setenv(key, value)
        with recording(monkeypatch, account.answer) as recorder:
            if raises is None:
                getattr(module, entry)(dict(event), Context(remaining_ms))
            else:
                with pytest.raises(raises):
                    getattr(module, entry)(dict(event), Context(remaining_ms))
    return recorder.calls, answers


def custom_resource_event(
    world: World, logical_id: str, request_type: str, resource_type: str
) -> dict[str, Any]:
    props = world.resolve(world.props(logical_id))
    return {
        "RequestType": request_type,
        "ResourceProperties": props,
        "OldResourceProperties": props,
        "StackId": f"arn:aws:cloudformation:eu-west-1:123456789012:stack/{world.stack}/id",
        "RequestId": "request",
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/",
        "PhysicalResourceId": f"{logical_id}-physical",
        "ServiceToken": props["ServiceToken"],
    }


def golden_answers() -> dict[str, Any]:
    """Each committed golden row (as a request instance) -> the answer recorded for it."""
    found: dict[str, Any] = {}
    for path in sorted(ARTIFACTS.glob("*/*/golden.json")):
        golden = json.loads(path.read_text())
        recorded = golden_sets.recorded_answers(golden, "compiled")
        for row, output, label in zip(
            golden_sets.instances(golden), recorded.outputs, recorded.labels or [], strict=False
        ):
            found[json.dumps(row, sort_keys=True)] = {"probability": output, "prediction": label}
    return found

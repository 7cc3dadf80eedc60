"""The zip-asset custom-resource handlers, run the way Lambda runs them.

Each task root is its asset directory (stacks/function_code.py, what CDK zips); the handler
and the resource properties are the synthesized templates'. Create, Update and Delete
events go through the real runtime interface client; the CloudFormation response is PUT
to a loopback ResponseURL that the test reads. AWS calls: Lambda's GetAlias, Invoke and
provisioned-concurrency calls by a loopback stand-in (moto does not serve them), the
rest (Application Auto Scaling, S3) by moto. The traffic gate's Invoke is routed to the
compiled inference image running in its own execution environment (test_inference's), so
the gate scores the golden set through the real handler and runtime client end to end.

Assumption: the templates declare these functions ``python3.14``; this machine has no
Python 3.14 (pyenv: 3.11 to 3.13), so they run on 3.12, the images' version, with
``AWS_EXECUTION_ENV=AWS_Lambda_python3.14``. Syntax or library changes of 3.14 are not
covered. The runtime's boto3 is requirements-dev.txt's pin, not the one Lambda ships.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stacks import function_code
from tests.lambda_runtime import build, deployed, sandbox
from tests.lambda_runtime.conftest import Launch
from tests.lambda_runtime.standin import StandIn
from tests.lambda_runtime.test_inference import function as inference_function

pytestmark = pytest.mark.integration


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def zip_function(stack: str, prefix: str, directory: str) -> sandbox.Function:
    config = deployed.function(stack, prefix)
    assert config.handler is not None
    root = build.zip_task_root(function_code.stage(directory), config.handler, name=directory)
    return sandbox.Function(
        name=config.logical_id,
        task_root=root.path,
        handler=root.cmd[0],
        environment=config.environment,
        memory_mb=config.memory_mb,
        timeout_s=config.timeout_s,
        runtime=config.runtime,
    )


def cfn_event(
    standin: StandIn, request: str, stack: str, prefix: str, kind: str, **properties: Any
) -> dict[str, Any]:
    logical_id, resolved = deployed.resource(stack, prefix, kind)
    event: dict[str, Any] = {
        "RequestType": request,
        "ServiceToken": resolved["ServiceToken"],
        "ResponseURL": f"{standin.endpoint}/cfn/{uuid.uuid4()}",
        "StackId": f"arn:aws:cloudformation:{sandbox.REGION}:{sandbox.ACCOUNT}:stack/{stack}/1",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
        "ResourceProperties": {**resolved, **properties},
    }
    if request != "Create":
        event["PhysicalResourceId"] = f"{logical_id}-physical"
    if request == "Update":
        event["OldResourceProperties"] = event["ResourceProperties"]
    return event


def answer(environment: sandbox.Environment, standin: StandIn, event: dict[str, Any]) -> Any:
    outcome = environment.invoke(event)
    assert outcome.kind == "response", (outcome, environment.logs())
    key = event["ResponseURL"].rsplit("/", 1)[1]
    assert key in standin.responses, f"no CloudFormation response:\n{environment.logs()}"
    response = standin.responses[key]
    assert response["RequestId"] == event["RequestId"]
    assert response["LogicalResourceId"] == event["LogicalResourceId"]
    return response


def test_provisioned_concurrency_reconciler(
    launch: Launch, standin: StandIn, moto_endpoint: str, aws: Callable[[str], Any]
) -> None:
    stack = "inference-prod-canary"
    function = zip_function(stack, "ReleaseProvisionedConcurrencyReconciler", "reconciler")
    name = deployed.function(stack, "InferenceFunction").logical_id
    standin.aliases[(name, "production")] = {
        "AliasArn": f"arn:aws:lambda:{sandbox.REGION}:{sandbox.ACCOUNT}:function:{name}:production",
        "Name": "production",
        "FunctionVersion": "7",
        "RoutingConfig": {"AdditionalVersionWeights": {deployed.PUBLISHED_VERSION: 0.1}},
    }
    endpoints = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_LAMBDA": standin.endpoint}
    kind = "Custom::ProvisionedConcurrency"
    with launch(function, extra_env=endpoints) as environment:
        up = answer(
            environment,
            standin,
            cfn_event(standin, "Create", stack, "ReleaseProvisionedConcurrencyScaleUp", kind),
        )
        assert up["Status"] == "SUCCESS", up
        # The template's allocations: 3 on the stable version 7, 1 on the candidate.
        assert standin.allocations == {(name, "7"): 3, (name, deployed.PUBLISHED_VERSION): 1}
        settle = answer(
            environment,
            standin,
            cfn_event(standin, "Update", stack, "ReleaseProvisionedConcurrencySettle", kind),
        )
        assert settle["Status"] == "SUCCESS", settle
        targets = aws("application-autoscaling").describe_scalable_targets(
            ServiceNamespace="lambda"
        )
        assert {t["ResourceId"] for t in targets["ScalableTargets"]} == {
            f"function:{name}:7",
            f"function:{name}:{deployed.PUBLISHED_VERSION}",
        }
        gone = answer(
            environment,
            standin,
            cfn_event(standin, "Delete", stack, "ReleaseProvisionedConcurrencySettle", kind),
        )
        assert gone["Status"] == "SUCCESS", gone


def test_traffic_gate(
    launch: Launch,
    standin: StandIn,
    moto_endpoint: str,
    model_store: Callable[[str, str], None],
) -> None:
    stack = "inference-dev"
    function = zip_function(stack, "TrafficGateFunction", "traffic_gate")
    kind = "Custom::TrafficGate"
    _, properties = deployed.resource(stack, "TrafficGateCheck", kind)
    golden = deployed.artifact_file(properties["GoldenKey"])
    manifest = json.loads((golden.parent / "manifest.json").read_text())
    candidate = inference_function("compiled")
    env = candidate.environment
    model_store(env["MODEL_BUCKET"], env["MODEL_KEY"])
    model_store(properties["GoldenBucket"], properties["GoldenKey"])
    arn = f"arn:aws:lambda:{sandbox.REGION}:{sandbox.ACCOUNT}:function:churn:8"
    fixed = {"FunctionArn": arn, "GoldenSha256": manifest["artifacts"]["golden"]["sha256"]}
    s3 = {"AWS_ENDPOINT_URL_S3": moto_endpoint}
    endpoints = {**s3, "AWS_ENDPOINT_URL_LAMBDA": standin.endpoint}
    with (
        launch(candidate, extra_env=s3) as inference,
        launch(function, extra_env=endpoints) as gate,
    ):

        def invoke(name: str, payload: bytes) -> tuple[bytes, str | None]:
            assert name == arn
            # Invoked by its qualified ARN, as the gate's marked requests must be.
            outcome = inference.invoke(json.loads(payload), invoked_arn=name)
            error = outcome.headers.get("lambda-runtime-function-error-type")
            return outcome.body, "Unhandled" if outcome.kind == "error" or error else None

        standin.invoke = invoke
        for request in ("Create", "Update"):
            response = answer(
                gate, standin, cfn_event(standin, request, stack, "TrafficGateCheck", kind, **fixed)
            )
            assert response["Status"] == "SUCCESS", (response, gate.logs())
            assert response["PhysicalResourceId"] == arn
        invocations = [c for c in standin.calls if c[1].endswith("/invocations")]
        assert len(invocations) == 2 * 5  # 1,000 golden rows, 200 per request, twice
        # Answered as the gate's (marked) requests: no prediction line, request metric or
        # capture record (init's ModelLoadTime is the only EMF).
        written = [json.loads(x) for x in inference.logs().splitlines() if x.startswith("{")]
        messages = [line.get("message") for line in written]
        assert messages.count("gate request") == 10 and "prediction" not in messages
        per_request = [line for line in written if "_aws" in line and "request_id" in line]
        assert not per_request and not [line for line in written if "capture" in line]
        deleted = answer(
            gate, standin, cfn_event(standin, "Delete", stack, "TrafficGateCheck", kind, **fixed)
        )
        assert deleted["Status"] == "SUCCESS" and deleted["Reason"] == "nothing to undo"
        assert len([c for c in standin.calls if c[1].endswith("/invocations")]) == 10

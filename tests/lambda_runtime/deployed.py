"""Each function's configuration as the stacks deploy it, read from the committed templates.

The template snapshots (tests/infra/__snapshots__, kept equal to a fresh synth by the infra
suite) hold every function's environment, memory, timeout, handler or image command, and
every custom resource's properties; reading them costs no synth. CloudFormation's
intrinsic functions are resolved as a deploy would: pseudo parameters to this suite's
account and region, a ``Ref`` to a resource to its logical ID (standing in for the
physical name). The model fields masked in the snapshots (``<asset-hash>``) come from
the model's manifest through ``stacks.model_artifact``, the stacks' own reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from serving.runtimes import ModelRuntime
from stacks.model_artifact import load_model_artifact
from tests.lambda_runtime.build import ROOT
from tests.lambda_runtime.sandbox import ACCOUNT, REGION

SNAPSHOTS = ROOT / "tests" / "infra" / "__snapshots__" / "test_checks"
ARTIFACTS = ROOT / "model_artifacts"
# What a Lambda::Version's Version attribute resolves to (the stable side is "7" in the
# canary templates, as their context sets it).
PUBLISHED_VERSION = "8"


@dataclass(frozen=True)
class Deployed:
    logical_id: str
    environment: dict[str, str]
    memory_mb: int
    timeout_s: int
    handler: str | None  # a zip function's Handler
    command: tuple[str, ...] | None  # an image function's ImageConfig.Command, if set
    runtime: str  # "Image" or the managed runtime (python3.14)


@cache
def template(stack: str) -> dict[str, Any]:
    path = SNAPSHOTS / f"test_snapshot[{stack}].json"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::URLSuffix": "amazonaws.com"}


def resolve(value: Any) -> Any:
    intrinsic = isinstance(value, dict) and len(value) == 1 and next(iter(value)) == "Ref"
    if intrinsic or (isinstance(value, dict) and len(value) == 1 and "Fn::" in next(iter(value))):
        ((name, argument),) = value.items()
        if name == "Ref":
            return PSEUDO.get(argument, argument)
        if name == "Fn::Sub" and isinstance(argument, str):
            for pseudo, actual in PSEUDO.items():
                argument = argument.replace(f"${{{pseudo}}}", actual)
            return argument
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve(part)) for part in parts)
        if name == "Fn::GetAtt" and argument[1] == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{argument[0]}"
        if name == "Fn::GetAtt" and argument[1] == "Version":
            return PUBLISHED_VERSION
        raise ValueError(f"intrinsic {name} is not resolved by tests/lambda_runtime")
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def resource(stack: str, prefix: str, kind: str) -> tuple[str, dict[str, Any]]:
    """(logical ID, resolved properties) of the one ``kind`` whose ID starts with prefix."""
    resources = template(stack)["Resources"].items()
    found = [(k, r) for k, r in resources if k.startswith(prefix) and r["Type"] == kind]
    if len(found) != 1:
        raise LookupError(f"{stack}: {len(found)} resources start with {prefix!r}")
    logical_id, body = found[0]
    return logical_id, resolve(body.get("Properties", {}))


def function(stack: str, prefix: str) -> Deployed:
    logical_id, p = resource(stack, prefix, "AWS::Lambda::Function")
    variables = p.get("Environment", {}).get("Variables", {})
    command = p.get("ImageConfig", {}).get("Command")
    return Deployed(
        logical_id=logical_id,
        environment={k: str(v) for k, v in variables.items()},
        memory_mb=int(p.get("MemorySize", 128)),
        timeout_s=int(p.get("Timeout", 3)),
        handler=p.get("Handler"),
        command=tuple(command) if command else None,
        runtime=str(p.get("Runtime", "Image")),
    )


def model_environment(runtime: str, version: str = "v1") -> dict[str, str]:
    """The model fields the stack sets for ``runtime`` (MODEL_KEY, MODEL_SHA256, ...)."""
    model = load_model_artifact(ARTIFACTS, "churn", version, ModelRuntime(runtime))
    return {
        "MODEL_RUNTIME": runtime,
        "MODEL_VERSION": version,
        "MODEL_KEY": model.key,
        "MODEL_SHA256": model.sha256,
        "MODEL_SIZE_BYTES": str(model.size_bytes),
    }


def inference(runtime: str, stack: str = "inference-dev") -> Deployed:
    """The inference function of ``stack`` with the model fields of ``runtime``."""
    deployed = function(stack, "InferenceFunction")
    environment = {**deployed.environment, **model_environment(runtime)}
    return Deployed(
        deployed.logical_id,
        environment,
        deployed.memory_mb,
        deployed.timeout_s,
        deployed.handler,
        deployed.command,
        deployed.runtime,
    )


def artifact_file(key: str) -> Path:
    """The committed file behind a model store key (``models/churn/v1/<id>/<file>``)."""
    _, model, version, _, name = key.split("/")
    return ARTIFACTS / model / version / name

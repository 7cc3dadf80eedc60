"""Every case of a walk of deploys: each function's calls and each service's access."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tests.authz.drive import GateAccount, deploy, teardown
from tests.authz.functions import environment, inference_function
from tests.authz.proof import (
    Case,
    caller_cases,
    identity_cases,
    lambda_runtime_calls,
    upload_calls,
)
from tests.authz.services import BucketKey, capture_bucket_key, service_cases
from tests.authz.world import World
from tools.transitions.scenarios import Transition


@dataclass(frozen=True)
class StepCases:
    step: str
    stack: str
    cases: list[Case]
    # After the step: provisioned executions per version, and the alias's routing.
    provisioned: dict[str, int] = field(default_factory=dict)
    routing: dict[str, float] = field(default_factory=dict)


def walk_cases(
    env: str, transitions: Sequence[Transition], patch: pytest.MonkeyPatch
) -> list[StepCases]:
    account = GateAccount()
    history: dict[str, str] = {}  # version number -> the MODEL_KEY it was published with
    found = []
    world = None
    # The capture bucket's key (model-store stack), as last deployed: the inference stack's
    # delivery role writes through it.
    bucket_key: BucketKey | None = None
    for transition in transitions:
        for kind, planned in transition.deploys.items():
            stack = f"sklearn-serving-{env}-{kind}"
            world = World(stack, planned.template, planned.after.versions)
            made = lambda_runtime_calls(world) + upload_calls(world)
            if kind == "model-store":
                bucket_key = capture_bucket_key(world)
            cases = service_cases(world, bucket_key)
            if kind == "inference":
                function = inference_function(world)
                key = environment(world, function)["MODEL_KEY"]
                for logical_id in world.of_type("AWS::Lambda::Version"):
                    history.setdefault(str(world.versions.get(logical_id, 0)), key)
                made += deploy(world, account, patch, history)
                cases += caller_cases(world)
            found.append(
                StepCases(transition.step, stack, identity_cases(world, made) + cases,
                          dict(account.provisioned), dict(account.alias or {}))
            )  # fmt: skip
    if world is not None:
        final = transitions[-1].deploys["inference"]
        world = World(f"sklearn-serving-{env}-inference", final.template, final.after.versions)
        made = teardown(world, account, patch)
        found.append(StepCases("stack deletion", world.stack, identity_cases(world, made)))
    return found

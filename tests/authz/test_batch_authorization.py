"""Batch scoring's role and operator policy (tests/authz/batch.py): every call a run and
python -m tools.batch make is allowed, and the role reaches nothing more than the run needs."""

from __future__ import annotations

import pytest

from tests.authz.batch import (
    INPUT_BUCKET,
    INPUT_KEY,
    OUTPUT_BUCKET,
    batch_cases,
    batch_world,
    machine_ids,
)
from tests.authz.iam import Request, evaluate
from tests.authz.sar import Call, resource_arns


@pytest.mark.infra
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_call_of_a_run_and_of_its_operator_is_allowed(env: str) -> None:
    (step,) = batch_cases(env)
    denied = [case.line() for case in step.cases if not case.decision.allowed]
    assert not denied, "\n".join(denied)
    principals = {case.principal for case in step.cases}
    assert {"states.amazonaws.com", "operator"} <= principals
    actions = {case.action for case in step.cases}
    assert {"lambda:InvokeFunction", "states:StartExecution", "s3:PutObject",
            "states:DescribeMapRun", "states:RedriveExecution"} <= actions  # fmt: skip


@pytest.mark.infra
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_role_may_not_reach_what_a_run_does_not_need(env: str) -> None:
    """The proof above can fail: calls outside the grants are refused, naming the ARN."""
    world = batch_world(env)
    _, role, _ = machine_ids(world)
    policies = world.identity_policies(role)
    (function,) = [f for f in world.of_type("AWS::Lambda::Function") if f.startswith("Inference")]
    arn = str(world.get_att(function, "Arn"))
    refused = [
        # The alias would let a canary move a run between models: only versions.
        Call("lambda", "Invoke", {"FunctionName": f"{arn}:production"}),
        Call("lambda", "Invoke", {"FunctionName": arn}),
        Call("s3", "GetObject", {"Bucket": "someone-elses-bucket", "Key": INPUT_KEY}),
        Call("s3", "PutObject", {"Bucket": INPUT_BUCKET, "Key": INPUT_KEY}),
        Call("s3", "DeleteObject", {"Bucket": OUTPUT_BUCKET, "Key": "scores/x.json"}),
        Call("states", "StartExecution", {}, ids={"StateMachineName": "another-machine"}),
    ]
    for call in refused:
        for resource in resource_arns(call):
            decision = evaluate(policies, Request(call.action, resource, {}))
            assert not decision.allowed, f"{call.action} on {resource} is allowed"

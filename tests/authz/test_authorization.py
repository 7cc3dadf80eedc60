"""The first deploy succeeds: every call a deployed function makes is one its role may make.

Each rollout walk (dev and prod; canary, ramp, promote, rollback; autoscaling off;
provisioned concurrency off; automated mode) is deployed step by step; at each step every
deployed function runs through its real entry point against the test account (see
``drive``), and each call it makes is evaluated against its role's synthesized policies
on the ARN the Service Authorization Reference names for it. AWS services acting on the
stacks' resources (alarms, schedules, CodeDeploy, Logs, Firehose, the documented caller)
are evaluated against the resource policies and roles they use.
"""

from __future__ import annotations

import json

import pytest

from stacks.settings import REPO_ROOT
from tests.authz.batch import BATCH_RUNS, batch_cases
from tests.authz.iam import Request, evaluate, statements
from tests.authz.report import covered_operations, render
from tests.authz.walk import StepCases, walk_cases
from tests.conftest import Walk
from tools.transitions import scenarios

DOC = REPO_ROOT / "docs" / "authorization.md"


@pytest.fixture(scope="session")
def proof(walks: dict[tuple[str, str], Walk]) -> dict[tuple[str, str], list[StepCases]]:
    with pytest.MonkeyPatch.context() as patch:
        found = {key: walk_cases(key[1], walk.transitions, patch) for key, walk in walks.items()}
    # Batch scoring is off in the committed cdk.json: its role and operator, with it on.
    return {**found, **{key: batch_cases(key[1]) for key in BATCH_RUNS}}


@pytest.mark.infra
@pytest.mark.parametrize("run", scenarios.RUNS, ids=lambda run: f"{run[0]}-{run[1]}")
def test_every_call_and_service_access_is_allowed(
    proof: dict[tuple[str, str], list[StepCases]], run: tuple[str, str]
) -> None:
    denied = [
        f"{step.step} ({step.stack}): {case.line()}"
        for step in proof[run]
        for case in step.cases
        if not case.decision.allowed
    ]
    assert not denied, "\n".join(denied)


@pytest.mark.infra
def test_without_autoscaling_promote_and_rollback_release_the_old_version(
    proof: dict[tuple[str, str], list[StepCases]],
) -> None:
    """Finding 8: releasing a version deregisters its scalable target first; without the
    grant that call was refused and the allocation stayed, billed. Every call of this walk
    is allowed (above), and after each step only the routed versions hold capacity."""
    steps = {
        s.step: s for s in proof[("without autoscaling", "prod")] if s.stack.endswith("-inference")
    }
    for label in ("promote v2", "roll back"):
        step = steps[label]
        assert set(step.provisioned) == set(step.routing), (label, step.provisioned, step.routing)
        assert len(step.routing) == 1, step.routing
    deregistered = [
        c
        for c in steps["promote v2"].cases
        if c.action == "application-autoscaling:DeregisterScalableTarget"
    ]
    assert deregistered and all(c.decision.allowed for c in deregistered)


# The reconciler's statements before the fix (stacks/constructs/provisioned_concurrency.py
# as the review found it), for a stack without autoscaling.
FN = "arn:aws:lambda:eu-west-1:123456789012:function:{name}"
BEFORE_THE_FIX = [
    {"Effect": "Allow", "Action": "lambda:ListProvisionedConcurrencyConfigs", "Resource": FN},
    {"Effect": "Allow", "Resource": FN + ":*", "Action": [
        "lambda:DeleteProvisionedConcurrencyConfig", "lambda:GetAlias",
        "lambda:GetProvisionedConcurrencyConfig", "lambda:PutProvisionedConcurrencyConfig"]},
]  # fmt: skip


@pytest.mark.infra
def test_the_proof_refuses_the_grants_the_review_found(
    proof: dict[tuple[str, str], list[StepCases]],
) -> None:
    """Findings 1, 2 and 8, replayed: the reconciler's calls of the walk without autoscaling
    against its statements before the fix are refused, naming action and resource."""
    denied = set()
    for step in proof[("without autoscaling", "prod")]:
        for case in step.cases:
            if "Reconciler" not in case.principal or case.action.startswith(("logs:", "xray:")):
                continue
            name = case.resource.split(":")[6] if ":function:" in case.resource else ""
            old = statements("before", {"Statement": json.loads(
                json.dumps(BEFORE_THE_FIX).replace("{name}", name))})  # fmt: skip
            if not evaluate(old, Request(case.action, case.resource, case.context)).allowed:
                denied.add((case.action, case.resource.split(":")[-1] if name else case.resource))
    assert ("lambda:GetAlias", name_of_function(proof)) in denied
    assert ("application-autoscaling:DescribeScalableTargets", "*") in denied
    assert any(a == "application-autoscaling:DeregisterScalableTarget" for a, _ in denied)
    assert not any(a.startswith("lambda:") and a != "lambda:GetAlias" for a, _ in denied)


def name_of_function(proof: dict[tuple[str, str], list[StepCases]]) -> str:
    for step in proof[("without autoscaling", "prod")]:
        for case in step.cases:
            if case.action == "lambda:GetAlias":
                return case.resource.split(":")[-1]
    raise AssertionError("no GetAlias in the walk")


@pytest.mark.infra
def test_the_proof_drives_every_operation_the_handlers_can_call(
    proof: dict[tuple[str, str], list[StepCases]],
) -> None:
    """Each AWS operation named in a deployed handler's source is made in some walk, so
    a new call cannot ship without its authorization being checked."""
    made = {case.action for steps in proof.values() for step in steps for case in step.cases}
    missing = sorted(covered_operations() - made)
    assert not missing, f"operations in the handlers that no walk makes: {missing}"


@pytest.mark.infra
def test_the_documented_list_is_the_proved_one(
    proof: dict[tuple[str, str], list[StepCases]],
) -> None:
    assert DOC.read_text() == render(proof), "run python -m tests.authz.report"

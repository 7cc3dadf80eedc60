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

import pytest

from stacks.settings import REPO_ROOT
from tests.authz.report import covered_operations, render
from tests.authz.walk import StepCases, walk_cases
from tests.conftest import Walk
from tools.transitions import scenarios

DOC = REPO_ROOT / "docs" / "authorization.md"


@pytest.fixture(scope="session")
def proof(walks: dict[tuple[str, str], Walk]) -> dict[tuple[str, str], list[StepCases]]:
    with pytest.MonkeyPatch.context() as patch:
        return {key: walk_cases(key[1], walk.transitions, patch) for key, walk in walks.items()}


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

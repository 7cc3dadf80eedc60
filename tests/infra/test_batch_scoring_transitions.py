"""Turning batch scoring on and off is a deploy like any other (tools.transitions): it adds
or removes the state machine, its role, policy and log group and nothing else; it
publishes no version and leaves the alias, its routing and provisioned concurrency alone,
also in the middle of a canary."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tools.transitions import checks, scenarios
from tools.transitions.changes import Action, Deploy
from tools.transitions.scenarios import Step, Transition

BLOCK = {"enabled": True, "input_buckets": ["churn-tables"], "output_buckets": ["churn-scores"]}
BATCH_TYPES = {"AWS::StepFunctions::StateMachine", "AWS::IAM::Role", "AWS::IAM::Policy",
               "AWS::Logs::LogGroup"}  # fmt: skip
WALK = (
    Step("first deploy (v1)", scenarios.keep(), publishes=True),
    Step("batch scoring on", scenarios.settings("batch_scoring", BLOCK)),
    Step("canary v2 at 10 %", scenarios.start("v2", 0.1), publishes=True),
    Step("batch scoring off during the canary",
         scenarios.settings("batch_scoring", {**BLOCK, "enabled": False})),
    Step("batch scoring back on", scenarios.settings("batch_scoring", BLOCK)),
)  # fmt: skip


@pytest.fixture(scope="module", params=["dev", "prod"])
def walk(request: pytest.FixtureRequest) -> Sequence[Transition]:
    return scenarios.run(request.param, WALK)


def _changed(deploy: Deploy) -> dict[Action, set[str]]:
    found: dict[Action, set[str]] = {}
    for change in deploy.changes.values():
        if change.action is not Action.NONE:
            found.setdefault(change.action, set()).add(change.logical_id)
    return found


@pytest.mark.infra
def test_batch_on_and_off_add_and_remove_only_the_state_machine(
    walk: Sequence[Transition],
) -> None:
    steps = {t.step: t for t in walk}
    for label, action in (("batch scoring on", Action.CREATE),
                          ("batch scoring off during the canary", Action.DELETE),
                          ("batch scoring back on", Action.CREATE)):  # fmt: skip
        deploy = steps[label].deploys["inference"]
        changed = _changed(deploy)
        assert set(changed) == {action}, (label, changed)
        assert all(i.startswith("BatchScoring") for i in changed[action]), changed
        types = {deploy.changes[i].type for i in changed[action]}
        assert types == BATCH_TYPES, (label, types)
        assert deploy.published() == [], label
        assert checks.problems(deploy) == [], label
        assert _changed(steps[label].deploys["model-store"]) == {}, label
        outputs = (deploy.template if action is Action.CREATE else deploy.previous)["Outputs"]
        assert "BatchScoringStateMachineArn" in outputs


@pytest.mark.infra
def test_switching_batch_off_mid_canary_keeps_the_routing_and_capacity(
    walk: Sequence[Transition],
) -> None:
    steps = {t.step: t for t in walk}
    canary = steps["canary v2 at 10 %"].deploys["inference"]
    off = steps["batch scoring off during the canary"].deploys["inference"]
    assert checks.routing(off) == checks.routing(canary)
    assert checks.allocations(off) == checks.allocations(canary)

"""Every rollout step, deployed after the one before: what CloudFormation would do.

The walks go through first deploy, canary, ramp, promote, rollback, re-canary after a
rollback, canary after a promote, a model change without a canary, provisioned
concurrency and autoscaling changes, the warmer on and off, and manual <-> automated
mode (tools/transitions/scenarios.py). Each deploy is planned from CloudFormation's
resource provider schemas and checked for identities that change hands, retained
resources that would be deleted, references to versions that do not exist, and the
capacity ordering around the alias.
"""

from __future__ import annotations

import pytest

from tests.conftest import Walk
from tools.transitions import checks, scenarios
from tools.transitions.changes import VERSION_TYPE, Action

STEPS = [
    pytest.param(name, env, index, id=f"{env}: {name}: {step.label}")
    for name, env in scenarios.RUNS
    for index, step in enumerate(scenarios.SCENARIOS[name])
]


@pytest.mark.infra
@pytest.mark.parametrize(("scenario", "env", "index"), STEPS)
def test_step_deploys_without_a_collision_or_a_loss(
    walks: dict[tuple[str, str], Walk], scenario: str, env: str, index: int
) -> None:
    transition = walks[(scenario, env)].transitions[index]
    found = [
        f"{kind}: {problem}"
        for kind, deploy in transition.deploys.items()
        for problem in checks.problems(deploy)
    ]
    assert found == []


@pytest.mark.infra
@pytest.mark.parametrize(("scenario", "env", "index"), STEPS)
def test_step_publishes_a_version_only_for_a_new_model(
    walks: dict[tuple[str, str], Walk], scenario: str, env: str, index: int
) -> None:
    step = scenarios.SCENARIOS[scenario][index]
    deploy = walks[(scenario, env)].transitions[index].deploys["inference"]
    assert len(deploy.published()) == (1 if step.publishes else 0)
    # Published versions are never deleted: a later canary calls one of them stable.
    assert not [c for c in deploy.by_action(Action.DELETE) if c.type == VERSION_TYPE]


@pytest.mark.infra
@pytest.mark.parametrize(("scenario", "env", "index"), [p for p in STEPS if p.values[1] == "prod"])
def test_every_version_taking_traffic_has_provisioned_concurrency(
    walks: dict[tuple[str, str], Walk], scenario: str, env: str, index: int
) -> None:
    deploy = walks[(scenario, env)].transitions[index].deploys["inference"]
    assert checks.cold_versions(deploy) == []


@pytest.mark.infra
def test_canary_routes_the_stable_version_the_previous_deploy_published(
    walks: dict[tuple[str, str], Walk],
) -> None:
    transitions = walks[("manual lifecycle", "prod")].transitions
    first, canary = transitions[0], transitions[1]
    assert checks.routing(canary.deploys["inference"]) == {
        alias: {str(first.published_version): 0.9, str(canary.published_version): 0.1}
        for alias in checks.routing(canary.deploys["inference"])
    }
    assert checks.allocations(canary.deploys["inference"]) == {
        str(first.published_version): 3,
        str(canary.published_version): 1,
    }

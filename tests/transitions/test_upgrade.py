"""Upgrading a stack deployed by the first release (commit 98eb6c6) to this code.

tests/transitions/released/<env>.json hold the templates that release synthesized from the
committed cdk.json (churn v1, steady). The upgrade is one more deploy: it must not pass a
physical identity between logical IDs (the alarm topic, its policy and the dashboard keep
their logical IDs), delete a retained resource or move the alias before capacity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.transitions import checks, scenarios
from tools.transitions.changes import Action, State, apply, plan

RELEASED = Path(__file__).parent / "released"


@pytest.mark.infra
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_upgrading_from_the_first_release(env: str, tmp_path: Path) -> None:
    released = json.loads((RELEASED / f"{env}.json").read_text())
    context = scenarios.committed_context()
    context["env"] = env
    current = scenarios.synthesize(context, tmp_path)
    found = []
    for kind in scenarios.STACK_KINDS:
        first = plan({"Resources": {}}, released[kind], State())
        upgrade = plan(released[kind], current[kind], apply(first))
        found += checks.problems(upgrade)
        if kind == "inference":
            kept = {c.logical_id for c in upgrade.changes.values() if c.action is Action.NONE
                    or c.action is Action.UPDATE}  # fmt: skip
            for logical_id in ("MonitoringAlarmTopicAF62D4F1", "MonitoringDashboard0C3675C6",
                               "ReleaseAliasF96F0146", "InferenceFunction05D34FA4"):  # fmt: skip
                assert logical_id in kept, f"{logical_id} would be replaced or removed"
            assert len(upgrade.published()) == 1, "new handler code: one new version"
    # This release changes the handler, so the upgrade publishes a new version: the
    # reconciler registers its target, and the first release's CloudFormation target of
    # version 1 goes with version 1's allocation. (An upgrade that published no version
    # would lose version 1's target in the cleanup: docs/rollout-transitions.md.)
    assert found == []

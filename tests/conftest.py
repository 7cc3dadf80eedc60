"""Session fixtures shared by suites: every rollout scenario walked once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.transitions import scenarios
from tools.transitions.scenarios import Transition


@dataclass(frozen=True)
class Walk:
    # Each step's cloud assembly stays in workdir/step-<n>, for the CDK CLI to diff.
    workdir: Path
    transitions: list[Transition]


@pytest.fixture(scope="session")
def walks(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Walk]:
    """(scenario, env) -> its walk."""
    found = {}
    for name, env in scenarios.RUNS:
        workdir = tmp_path_factory.mktemp(f"{name.replace(' ', '-')}-{env}")
        found[(name, env)] = Walk(
            workdir, scenarios.run(env, scenarios.SCENARIOS[name], workdir=workdir)
        )
    return found

"""docs/rollout-transitions.md shows what the planner derives for every step, exactly."""

from __future__ import annotations

import pytest

from stacks.settings import REPO_ROOT
from tests.conftest import Walk
from tools.transitions.__main__ import documented, render

DOC = REPO_ROOT / "docs" / "rollout-transitions.md"


@pytest.mark.infra
def test_the_documented_tables_are_the_planned_ones(walks: dict[tuple[str, str], Walk]) -> None:
    planned = render({key: walk.transitions for key, walk in walks.items()})
    assert documented(DOC.read_text()) == planned, "run python -m tools.transitions"

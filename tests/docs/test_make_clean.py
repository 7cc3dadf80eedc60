"""`make clean` removes everything the targets create, and nothing the project keeps.

What the targets create is what .gitignore ignores; each ignored entry must be removed
by the clean recipe (read with `make -n clean`, nothing is deleted here) unless it is
listed below with the reason it stays.
"""

from __future__ import annotations

import subprocess

from stacks.settings import REPO_ROOT

KEPT = {
    # The CDK CLI's cache of context lookups for a real account; no target creates it.
    "cdk.context.json": "written by the CLI on lookups against an account, not by make",
    # Compiled files live in __pycache__ directories, which clean removes.
    "*.pyc": "inside __pycache__/",
    # A version set aside by a crash between two renames is restored on the next run;
    # deleting it could lose a model version.
    "model_artifacts/**/.v*": "a set-aside model version, restored by training",
    # A writer's lock (training/tracked.py) is removed by its holder; deleting one that a
    # running command holds would let a second writer in beside it.
    ".*.lock": "cdk.json's lock, removed by the command that holds it",
    "model_artifacts/*/.lock": "a model's lock, removed by the writer that holds it",
}


def ignored_entries() -> list[str]:
    lines = (REPO_ROOT / ".gitignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def test_clean_removes_every_ignored_entry() -> None:
    recipe = subprocess.run(
        ["make", "-n", "clean"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    words = set(recipe.replace("\n", " ").split())
    missing = [entry for entry in ignored_entries() if entry not in KEPT and entry not in words]
    assert not missing, f"make clean leaves {missing}: add them to the clean recipe or KEPT"


def test_the_exceptions_are_still_ignored() -> None:
    assert set(KEPT) <= set(ignored_entries())

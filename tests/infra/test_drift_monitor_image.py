"""The drift monitor image's build context (IMAGE_FILES) and its Dockerfile name the same
files: a file copied but left out of the context fails the build, and a file in the context
but not copied only churns the asset hash."""

from __future__ import annotations

import re

from stacks.constructs.drift_monitor import IMAGE_FILES
from stacks.settings import REPO_ROOT

DOCKERFILE = REPO_ROOT / "stacks/handlers/drift_monitor/Dockerfile"


def copied() -> set[str]:
    files = set()
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"COPY (.+) \S+$", line)
        if match:
            files.update(match.group(1).split())
    return files


def test_the_context_is_exactly_what_the_dockerfile_copies() -> None:
    dockerfile = "stacks/handlers/drift_monitor/Dockerfile"
    assert copied() == set(IMAGE_FILES) - {dockerfile}
    assert all((REPO_ROOT / path).is_file() for path in IMAGE_FILES)

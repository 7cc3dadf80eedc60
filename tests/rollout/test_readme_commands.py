"""Every rollout command the README shows is one the command's parser accepts."""

from __future__ import annotations

import re
import shlex

import pytest

from stacks.config import REPO_ROOT
from tools.rollout.__main__ import parser

README = (REPO_ROOT / "README.md").read_text()
# Inline (`python -m tools.rollout ...`) and code-block lines (comment after '#' dropped);
# a span with a <placeholder> is a pattern, not a command.
COMMANDS = sorted(
    {
        command.strip()
        for command in [
            *re.findall(r"`(python -m tools\.rollout [^`]+)`", README),
            *re.findall(r"^(python -m tools\.rollout [^#\n]+)", README, re.MULTILINE),
        ]
        if "<" not in command
    }
)


def test_the_readme_shows_rollout_commands() -> None:
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        parser().parse_args(shlex.split(command)[3:])
    except SystemExit:
        pytest.fail(
            f"README shows `{command}`, which the parser refuses: {capsys.readouterr().err}"
        )

"""The real CDK CLI agrees with the transition planner on what a deploy does.

``cdk diff --app <assembly> --template <previous template>`` runs offline: it compares
the synthesized template with the one given, using the CLI's own diff engine (which
marks replacements from CloudFormation's specification). For the steps that matter most
(the first canary, a promote, a canary after a promote, a mode switch), the resources it
adds, removes, orphans and replaces must be the ones the planner derives.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Walk
from tools.transitions.changes import Action

REPO = Path(__file__).resolve().parents[2]
# "[+] TYPE [construct path] LOGICAL_ID [note]": the path is absent for a resource that
# only the previous template has; the note says "orphan" or "replace".
HEADER = re.compile(r"^\[(?P<sign>[+~-])\] (?P<type>\S+) (?P<rest>.*)$")

CROSS_CHECKED = [
    ("manual lifecycle", "prod", 1),  # first canary
    ("manual lifecycle", "prod", 3),  # promote
    ("manual lifecycle", "prod", 4),  # canary after a promote
    ("mode switches", "prod", 1),  # manual -> automated
]


def cli_diff(
    assembly: Path, stack: str, previous: Path, logical_ids: set[str]
) -> dict[str, set[str]]:
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "CI": "true", "FORCE_COLOR": "0"}
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "diff", stack, "--exclusively", "--app", str(assembly),
         "--template", str(previous)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, set[str]] = {a.value: set() for a in Action}
    section = ""
    for line in (result.stdout + result.stderr).splitlines():
        if re.fullmatch(r"[A-Z][A-Za-z ]*", line):
            section = line  # "Resources", "Outputs", ...
            continue
        match = HEADER.match(line)  # resource headers start the line; property lines do not
        if match is None or section != "Resources":
            continue
        sign, words = match["sign"], match["rest"].split()
        (logical_id,) = [w for w in words if w in logical_ids]
        note = " ".join(words[words.index(logical_id) + 1 :])
        if sign == "+":
            action = Action.CREATE
        elif sign == "-":
            action = Action.RETAIN if "orphan" in note else Action.DELETE
        else:
            action = Action.REPLACE if "replace" in note else Action.UPDATE
        found[action.value].add(logical_id)
    return found


@pytest.mark.infra
@pytest.mark.parametrize(("scenario", "env", "index"), CROSS_CHECKED)
def test_cli_diff_classifies_resources_as_the_planner_does(
    walks: dict[tuple[str, str], Walk], tmp_path: Path, scenario: str, env: str, index: int
) -> None:
    walk = walks[(scenario, env)]
    deploy = walk.transitions[index].deploys["inference"]
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(deploy.previous))
    stack = f"sklearn-serving-{env}-inference"
    cli = cli_diff(walk.workdir / f"step-{index}", stack, previous, set(deploy.changes))
    planned = {
        a.value: {c.logical_id for c in deploy.by_action(a) if c.type != "AWS::CDK::Metadata"}
        for a in Action
        if a is not Action.NONE
    }
    for action in (Action.CREATE, Action.DELETE, Action.RETAIN, Action.REPLACE):
        assert cli[action.value] == planned[action.value], action
    assert cli[Action.UPDATE.value] == planned[Action.UPDATE.value]

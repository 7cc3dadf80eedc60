"""Impossible steps are refused with the value named, and cdk.json stays byte-identical."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from serving.runtimes import ModelRuntime
from stacks.settings import DEFAULT_ARTIFACTS_ROOT
from tests.rollout.conftest import Run, edit
from tools.rollout import steps
from tools.rollout.config_file import RefusedError

CANARY = {"model_version": "v2", "stable_version": 7, "canary_weight": 0.1,
          "stable_model_version": "v1"}  # fmt: skip
ROLLED_BACK = {**CANARY, "canary_weight": 0}
AUTOMATED = {"mode": "automated", "canary_weight": 0, "deployment": "canary10-5min"}

CASES: dict[str, tuple[dict[str, Any], tuple[str, ...], str]] = {
    "promote with no canary": ({}, ("promote",), r"promote needs a canary.*stable_version is null"),
    "rollback with no canary": ({}, ("rollback",), r"rollback needs a canary"),
    "set-weight with no canary": ({}, ("set-weight", "0.2"), r"set-weight 0.2 needs a canary"),
    "weight 1": (CANARY, ("set-weight", "1"), r"weight 1 is not allowed.*above 0 and below 1"),
    "weight 0": (CANARY, ("set-weight", "0"), r"weight 0 is not allowed.*`rollback`"),
    "weight nan": (CANARY, ("set-weight", "nan"), r"weight nan is not allowed"),
    "negative weight": (CANARY, ("set-weight", "-0.1"), r"weight -0.1 is not allowed"),
    "start weight 1.5": (
        {}, ("start", "--version", "v2", "--weight", "1.5", "--stable", "7"),
        r"weight 1.5 is not allowed",
    ),
    "unknown model": (
        {}, ("start", "--version", "v9", "--weight", "0.1", "--stable", "7"),
        r"--version 'v9' cannot be deployed: model_version='v9' has no artifact: "
        r".*model_artifacts/churn/v9/manifest.json does not exist.*churn': v1, v2",
    ),
    "malformed model": (
        {}, ("start", "--version", "2", "--weight", "0.1", "--stable", "7"),
        r"--version '2' is not allowed: 'v' and a number",
    ),
    "model with a trailing newline": (
        {}, ("start", "--version", "v2\n", "--weight", "0.1", "--stable", "7"),
        r"--version 'v2\\n' is not allowed: 'v' and a number",
    ),
    "start while a canary runs": (
        CANARY, ("start", "--version", "v1", "--weight", "0.1", "--stable", "8"),
        r"a canary is already running: candidate v2 takes 10% next to stable version 7",
    ),
    "start of the configured model": (
        {}, ("start", "--version", "v1", "--weight", "0.1", "--stable", "7"),
        r"--version v1 is already the configured model.*candidate would be the stable version",
    ),
    "start without weight": (
        {}, ("start", "--version", "v2", "--stable", "7"), r"start needs --weight W in manual mode",
    ),
    "start without stable or credentials": (
        {}, ("start", "--version", "v2", "--weight", "0.1"),
        r"PublishedVersion output of stack sklearn-serving-prod-inference, and reading it "
        r"needs AWS credentials \(none found:.*pass --stable N",
    ),
    "other stable after rollback": (
        ROLLED_BACK, ("start", "--version", "v2", "--weight", "0.1", "--stable", "9"),
        r"--stable 9 is not allowed after a rollback: the alias serves stable version 7",
    ),
    "promote after rollback": (
        ROLLED_BACK, ("promote",), r"promote is not allowed after a rollback",
    ),
    "rollback twice": (ROLLED_BACK, ("rollback",), r"already rolled back: stable version 7"),
    "automated set-weight": (
        AUTOMATED, ("set-weight", "0.5"),
        r"set-weight 0.5 is not allowed in automated mode.*deployment=canary10-5min",
    ),
    "automated start with weight": (
        AUTOMATED, ("start", "--version", "v2", "--weight", "0.1"),
        r"--weight 0.1 is not allowed in automated mode",
    ),
    "automated start with stable": (
        AUTOMATED, ("start", "--version", "v2", "--stable", "7"),
        r"--stable 7 is not allowed in automated mode",
    ),
    "automated start of the same model": (
        AUTOMATED, ("start", "--version", "v1"), r"--version v1 is already the configured model",
    ),
    "automated promote": (AUTOMATED, ("promote",), r"CodeDeploy promotes the new version"),
    "automated rollback": (AUTOMATED, ("rollback",), r"CodeDeploy rolls back by itself"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_and_config_unchanged(config: Path, rollout: Run, case: str) -> None:
    setup, argv, message = CASES[case]
    if setup:
        edit(config, "prod", **setup)
    before = config.read_bytes()
    result = rollout(config, argv[0], "--env", "prod", *argv[1:])
    assert result.code == 2
    assert result.err.startswith("refused: ")
    assert re.search(message, result.err), result.err
    assert "Traceback" not in result.err
    assert config.read_bytes() == before
    assert list(config.parent.glob(".cdk.json.*")) == [], "no temporary file left behind"


def test_unknown_environment_is_refused(config: Path, rollout: Run) -> None:
    before = config.read_bytes()
    result = rollout(config, "promote", "--env", "staging")
    assert result.code == 2
    assert "--env 'staging' is not an environment in" in result.err
    assert "use one of dev, prod" in result.err
    assert config.read_bytes() == before


def test_a_config_the_app_would_refuse_is_never_written(config: Path, rollout: Run) -> None:
    # One provisioned execution cannot keep both sides of a canary warm: the app's parser
    # refuses it, so the command must refuse before writing.
    document_edit = config.read_text().replace('"total": 4,', '"total": 1,', 1)
    document_edit = document_edit.replace('"max_total": 20', '"max_total": 1', 1)
    config.write_text(document_edit)
    before = config.read_bytes()
    result = rollout(config, "start", "--env", "prod", "--version", "v2", "--weight", "0.1",
                     "--stable", "7")  # fmt: skip
    assert result.code == 2
    assert "start would write a configuration the app refuses" in result.err
    assert "provisioned_concurrency.total=1 cannot keep both sides of a canary warm" in result.err
    assert config.read_bytes() == before


def test_a_crash_while_writing_leaves_the_old_file(
    config: Path, rollout: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    before = config.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        rollout(config, "start", "--env", "prod", "--version", "v2", "--weight", "0.1",
                "--stable", "7")  # fmt: skip
    assert config.read_bytes() == before
    assert list(config.parent.glob(".cdk.json.*")) == []


def test_start_checks_the_model_as_the_app_does(tmp_path: Path) -> None:
    """The same check as synth: a manifest without the configured runtime's artifact."""
    directory = tmp_path / "churn" / "v3"
    shutil.copytree(DEFAULT_ARTIFACTS_ROOT / "churn" / "v2", directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["model_version"] = "v3"
    manifest["artifacts"] = {"sklearn": manifest["artifacts"]["sklearn"]}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert steps.check_model(tmp_path, "churn", "v3", ModelRuntime.SKLEARN) == "v3"
    with pytest.raises(
        RefusedError,
        match=r"--version 'v3' cannot be deployed: runtime='compiled' is not available for "
        r"churn v3: its manifest has artifacts for sklearn",
    ):
        steps.check_model(tmp_path, "churn", "v3", ModelRuntime.COMPILED)

"""The real CDK CLI, as CI and operators run it: `npx cdk synth` per environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cdk_synth(outdir: Path, *context: str) -> subprocess.CompletedProcess[str]:
    args = ["npx", "--no-install", "cdk", "synth", "--quiet", "-o", str(outdir)]
    for item in context:
        args += ["-c", item]
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "CI": "true"}
    return subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.infra
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cli_synthesizes_each_environment(tmp_path: Path, env: str) -> None:
    result = cdk_synth(tmp_path, f"env={env}")
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    stacks = sorted(
        name for name, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"
    )
    assert stacks == [f"sklearn-serving-{env}-inference", f"sklearn-serving-{env}-model-store"]


@pytest.mark.infra
def test_cli_refuses_a_bad_value_with_a_clear_message(tmp_path: Path) -> None:
    result = cdk_synth(tmp_path, "env=dev", "canary_weight=0.2")
    assert result.returncode != 0
    assert "canary_weight='0.2' needs stable_version" in result.stdout + result.stderr

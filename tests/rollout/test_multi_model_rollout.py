"""The rollout command on an environment with several models: --model picks whose block moves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stacks.config import CDK_JSON
from tests.infra.conftest import artifacts_with
from tools.rollout.__main__ import main
from tools.rollout.live import Live, LiveUnavailableError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts_root(tmp_path: Path) -> Path:
    return artifacts_with(tmp_path / "artifacts", "fraud")


@pytest.fixture
def two_model_config(tmp_path: Path) -> Path:
    document = json.loads(CDK_JSON.read_text())
    document["context"]["environments"]["dev"]["models"] = {
        "fraud": {"runtime": "sklearn", "rollout": {"model_version": "v1"}}
    }
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def offline(region: str | None) -> Live:
    raise LiveUnavailableError("needs AWS credentials (this test has none)")


def run(
    capsys: pytest.CaptureFixture[str], config: Path, artifacts_root: Path, *argv: str
) -> tuple[int, str, str]:
    code = main(
        [*argv, "--config", str(config)],
        live_factory=offline,
        artifacts_root=artifacts_root,
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def environment(config: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(config.read_text())["context"]["environments"]["dev"]
    return value


def test_start_with_model_moves_that_models_block_only(
    capsys: pytest.CaptureFixture[str], two_model_config: Path, artifacts_root: Path
) -> None:
    before = environment(two_model_config)
    code, out, err = run(
        capsys, two_model_config, artifacts_root,
        "start", "--env", "dev", "--model", "fraud", "--version", "v2", "--weight", "0.1",
        "--stable", "3",
    )  # fmt: skip
    assert code == 0, err
    after = environment(two_model_config)
    assert after["models"]["fraud"]["rollout"] == {
        "model_version": "v2",
        "stable_version": 3,
        "canary_weight": 0.1,
        "stable_model_version": "v1",
    }
    assert after["rollout"] == before["rollout"]
    assert "wrote environments.dev.models.fraud.rollout" in out
    assert "fraud v2" in out

    # The next step names the model too, and promote moves fraud's block again.
    code, out, err = run(
        capsys, two_model_config, artifacts_root, "status", "--env", "dev", "--model", "fraud"
    )
    assert code == 0, err
    assert "python -m tools.rollout promote --env dev --model fraud" in out
    code, out, err = run(
        capsys, two_model_config, artifacts_root, "promote", "--env", "dev", "--model", "fraud"
    )
    assert code == 0, err
    promoted = environment(two_model_config)["models"]["fraud"]["rollout"]
    assert (promoted["model_version"], promoted["stable_version"]) == ("v2", None)
    assert environment(two_model_config)["rollout"] == before["rollout"]


def test_without_model_the_first_model_moves(
    capsys: pytest.CaptureFixture[str], two_model_config: Path, artifacts_root: Path
) -> None:
    code, _, err = run(
        capsys, two_model_config, artifacts_root,
        "start", "--env", "dev", "--version", "v2", "--weight", "0.1", "--stable", "3",
    )  # fmt: skip
    assert code == 0, err
    after = environment(two_model_config)
    assert after["rollout"]["model_version"] == "v2"
    assert after["models"]["fraud"]["rollout"] == {"model_version": "v1"}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nope", r"--model 'nope' is not a model of environment dev \(it has: churn, fraud\)"),
        ("v2", r"to canary model version v2, use --version v2"),
    ],
)
def test_an_unknown_model_is_refused_naming_the_models(
    capsys: pytest.CaptureFixture[str],
    two_model_config: Path,
    artifacts_root: Path,
    model: str,
    message: str,
) -> None:
    before = two_model_config.read_text()
    code, _, err = run(
        capsys, two_model_config, artifacts_root,
        "start", "--env", "dev", "--model", model, "--version", "v2", "--weight", "0.1",
        "--stable", "3",
    )  # fmt: skip
    assert code == 2
    assert re.search(message, err), err
    assert two_model_config.read_text() == before

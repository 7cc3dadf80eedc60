"""Drive the rollout command on a copy of cdk.json; synthesize what it wrote, once each."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stacks.config import CDK_JSON
from tests.infra.conftest import Synth, run_synth
from tools.rollout.__main__ import main
from tools.rollout.live import Live, from_environment


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine with no AWS credentials anywhere botocore looks (and no IMDS wait)."""
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A private copy of the committed cdk.json; the real one is never touched."""
    copy = tmp_path / "cdk.json"
    shutil.copyfile(CDK_JSON, copy)
    return copy


@pytest.fixture
def rollout(capsys: pytest.CaptureFixture[str], no_aws: None) -> Run:
    def run(config: Path, *argv: str, live: Live | None = None) -> Result:
        factory = from_environment if live is None else (lambda region: live)
        code = main([*argv, "--config", str(config)], live_factory=factory)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def edit(config: Path, env: str, **rollout: Any) -> None:
    document = json.loads(config.read_text())
    document["context"]["environments"][env]["rollout"].update(rollout)
    config.write_text(json.dumps(document, indent=2) + "\n")


def block(config: Path, env: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(config.read_text())["context"]["environments"][env][
        "rollout"
    ]
    return value


@pytest.fixture(scope="session")
def synth_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Synth]]:
    """Synthesize the app from a written cdk.json as `npx cdk deploy -c env=...` would."""
    cache: dict[str, Synth] = {}

    def build(config: Path, env: str) -> Synth:
        text = config.read_text()
        key = f"{env}\n{text}"
        if key not in cache:
            context = {**json.loads(text)["context"], "env": env}
            cache[key] = run_synth(tmp_path_factory.mktemp("rollout-out"), context)
        return cache[key]

    yield build

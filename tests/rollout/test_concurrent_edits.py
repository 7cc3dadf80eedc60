"""Two rollout commands at once, a symlinked cdk.json, a hand-formatted one: no change is
lost, the link stays a link, and every byte outside the edited block stays as it was."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import race
from tests.rollout.conftest import Run, block, edit

ROOT = Path(__file__).resolve().parents[2]
CANARY = {"model_version": "v2", "stable_version": 7, "canary_weight": 0.1,
          "stable_model_version": "v1"}  # fmt: skip
RACES = 50
SET_WEIGHT = ("set-weight", "--env", "dev", "0.2")


def test_two_concurrent_commands_never_lose_a_change(config: Path, no_aws: None) -> None:
    edit(config, "dev", **CANARY)
    edit(config, "prod", **CANARY)
    prepared = config.read_bytes()
    commands = {
        "dev": ["set-weight", "--env", "dev", "0.2", "--config", str(config)],
        "prod": ["set-weight", "--env", "prod", "0.3", "--config", str(config)],
    }
    wanted = {"dev": 0.2, "prod": 0.3}
    outcomes: dict[str, int] = {"both wrote": 0, "one refused": 0}
    for _ in range(RACES):
        config.write_bytes(prepared)
        outcomes_now = race.race(race.rollout, *((argv,) for argv in commands.values()))
        results = dict(zip(commands, outcomes_now, strict=True))
        wrote = [env for env, (code, out, _) in results.items() if code == 0]
        for code, out, err in results.values():
            if code == 0:
                assert "wrote environments." in out
            else:
                assert code == 2, err
                assert "nothing written" in err, err
                # Refused by the lock, naming the other writer (or, had it finished before
                # this one read, by nothing: this one would have read its change).
                assert re.search(r"is being changed by another command: pid \d+ on \S+ \(", err), (
                    err
                )
        assert wrote, results
        # Every change that printed "wrote" is in the file; a refused one left no trace.
        for env in commands:
            weight = block(config, env)["canary_weight"]
            assert weight == (wanted[env] if env in wrote else 0.1), (env, results)
        outcomes["both wrote" if len(wrote) == 2 else "one refused"] += 1
    assert sum(outcomes.values()) == RACES


def test_a_held_lock_refuses_the_command_and_names_the_holder(config: Path, no_aws: None) -> None:
    edit(config, "dev", **CANARY)
    before = config.read_bytes()
    lock = config.parent / ".cdk.json.lock"
    holder = {
        "pid": os.getpid(),
        "host": "build-7",
        "command": "python -m tools.rollout rollback --env dev",
        "since": "2026-12-07T19:00:00Z",
    }
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.truncate(0)
        held.write(json.dumps(holder) + "\n")
        held.flush()
        result = subprocess.run(
            [sys.executable, "-m", "tools.rollout", *SET_WEIGHT, "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result
    assert f"pid {os.getpid()}" in result.stderr
    assert "python -m tools.rollout rollback --env dev" in result.stderr
    assert "2026-12-07T19:00:00Z" in result.stderr and "build-7" in result.stderr
    assert "nothing written" in result.stderr
    assert "wrote" not in result.stdout
    assert config.read_bytes() == before


def test_a_symlinked_config_stays_a_link_and_its_target_changes(
    config: Path, rollout: Run, tmp_path: Path
) -> None:
    edit(config, "dev", **CANARY)
    real = tmp_path / "shared" / "cdk.json"
    real.parent.mkdir()
    config.rename(real)
    real.chmod(0o640)
    link = tmp_path / "checkout" / "cdk.json"
    link.parent.mkdir()
    link.symlink_to(Path("..") / "shared" / "cdk.json")
    result = rollout(link, "set-weight", "--env", "dev", "0.2")
    assert result.code == 0, result.err
    assert link.is_symlink()
    assert os.readlink(link) == str(Path("..") / "shared" / "cdk.json")
    assert block(real, "dev")["canary_weight"] == 0.2
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["cdk.json"], "no temp/lock left"
    assert sorted(p.name for p in link.parent.iterdir()) == ["cdk.json"]


def _hand_formatted(committed: str) -> str:
    """The committed cdk.json as a person might have left it: a note with non-ASCII text,
    compact lists, odd spacing; the same configuration to the app."""
    text = committed.replace(
        '"app": "python app.py",', '"app":"python app.py" ,\n  "//": "modèle é, ünïcode ✓",', 1
    )
    text = text.replace('"memory_mb": 1024', '"memory_mb"  :   1024')
    text = text.replace('"aws",\n      "aws-cn"\n    ]', '"aws", "aws-cn"]')
    assert text.count("é") == 1 and '"memory_mb"  :' in text
    json.loads(text)
    return text


def _prod_rollout_span(text: str) -> tuple[int, int]:
    start = text.index('"rollout"', text.index('"prod": {'))
    return start, text.index("}", start) + 1


def test_an_edit_leaves_every_byte_outside_the_rollout_block(config: Path, rollout: Run) -> None:
    original = _hand_formatted(config.read_text(encoding="utf-8"))
    config.write_bytes(original.encode("utf-8"))
    result = rollout(
        config, "start", "--env", "prod", "--version", "v2", "--weight", "0.1", "--stable", "7"
    )
    assert result.code == 0, result.err
    written = config.read_bytes().decode("utf-8")
    start, end = _prod_rollout_span(original)
    new_start, new_end = _prod_rollout_span(written)
    assert new_start == start
    assert written[:start] == original[:start]
    assert written[new_end:] == original[end:]
    assert "\\u00e9" not in written and "modèle é, ünïcode ✓" in written
    assert written[new_start:new_end] == (
        '"rollout": {\n'
        '          "mode": "manual",\n'
        '          "model_version": "v2",\n'
        '          "stable_version": 7,\n'
        '          "canary_weight": 0.1,\n'
        '          "stable_model_version": "v1"\n'
        "        }"
    )


def test_a_file_changed_while_the_command_ran_is_refused_and_kept(
    config: Path, rollout: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor saves cdk.json (without the lock) while start reads the stack: the saved
    change is kept, and start writes nothing."""
    from tests.rollout.test_live import OUTPUTS, FakeCloudFormation, fake_live

    monkeypatch.setitem(OUTPUTS, "ModelVersion", "v1")

    class EditorSavesMeanwhile(FakeCloudFormation):
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            edit(config, "dev", canary_weight=0, model_version="v2")
            return super().describe_stacks(StackName)

    result = rollout(
        config, "start", "--env", "prod", "--version", "v2", "--weight", "0.1",
        live=fake_live(EditorSavesMeanwhile()),
    )  # fmt: skip
    assert result.code == 2, result.out
    assert f"{config} was changed by another command since it was read; nothing written" in (
        result.err
    )
    assert "wrote" not in result.out
    assert block(config, "dev")["model_version"] == "v2", "the editor's change is kept"
    assert block(config, "prod")["stable_version"] is None

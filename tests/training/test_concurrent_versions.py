"""Two writers of the same version at once (training.train, training.package): without
--force exactly one lands and the other is refused; nothing is half-written or lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving import artifacts
from tests import race
from training import tracked, versions

RACES = 10
COMMITTED = Path(__file__).resolve().parents[2] / "model_artifacts"


def _leftovers(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if p.name != "v1")


def test_two_writers_without_force_one_lands_the_other_exits_2(tmp_path: Path) -> None:
    for attempt in range(RACES):
        root = tmp_path / f"race-{attempt}"
        results = race.race(
            race.write_version, (root, b"first writer", False), (root, b"second writer", False)
        )
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 2], results
        (refused,) = [err for code, _, err in results if code == 2]
        assert "m/v1" in refused and "nothing written" in refused, refused
        (winner,) = [
            payload
            for (code, _, _), payload in zip(
                results, (b"first writer", b"second writer"), strict=True
            )
            if code == 0
        ]
        final = root / "m" / "v1"
        assert artifacts.verify_version(final) == []
        assert (final / "model.bin").read_bytes() == winner
        assert _leftovers(root / "m") == [], "no temporary or set-aside directory left"


def test_two_writers_with_force_both_land_whole(tmp_path: Path) -> None:
    versions.write_version(
        tmp_path,
        "m",
        "v1",
        lambda tmp: (
            (tmp / "model.bin").write_bytes(b"old"),
            {"model_name": "m", "artifacts": {"raw": {"file": "model.bin"}}},
        )[1],
    )
    results = race.race(
        race.write_version, (tmp_path, b"first writer", True), (tmp_path, b"second writer", True)
    )
    assert [code for code, _, _ in results] == [0, 0], results
    final = tmp_path / "m" / "v1"
    assert artifacts.verify_version(final) == []
    assert (final / "model.bin").read_bytes() in (b"first writer", b"second writer")
    manifest = json.loads((final / artifacts.MANIFEST).read_text())
    assert manifest["artifacts"]["raw"]["size_bytes"] == len((final / "model.bin").read_bytes())
    assert _leftovers(tmp_path / "m") == []


@pytest.mark.parametrize("force", [False, True])
def test_a_held_lock_refuses_the_writer_and_names_the_holder(tmp_path: Path, force: bool) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    with (
        tracked.exclusive(model_dir / tracked.DIRECTORY_LOCK, wait_seconds=0),
        pytest.raises(tracked.BusyError, match=r"pid \d+ .*nothing written"),
    ):
        versions.write_version(
            tmp_path,
            "m",
            "v1",
            lambda tmp: {"model_name": "m", "artifacts": {}},
            force=force,
            wait_seconds=0,
        )
    assert _leftovers(model_dir) == [], "the lock file goes with its holder"


def test_adding_the_skops_file_is_refused_while_the_model_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python -m training.skops_artifact edits a version in place: under the model's lock,
    so a --force retrain cannot swap the directory out under it."""
    from training import skops_artifact

    version = tmp_path / "churn" / "v1"
    shutil.copytree(COMMITTED / "churn" / "v1", version)
    monkeypatch.setattr(versions, "LOCK_WAIT_SECONDS", 0.0)
    before = {p.name: p.read_bytes() for p in version.iterdir()}
    with tracked.exclusive(version.parent / tracked.DIRECTORY_LOCK, wait_seconds=0):
        code = skops_artifact.main([str(version)])
    assert code == 2
    assert {p.name: p.read_bytes() for p in version.iterdir()} == before

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from serving import artifacts
from training import versions
from training.versions import ArtifactExistsError, write_version


def writer(content: bytes) -> Any:
    def write_files(tmp: Path) -> dict[str, Any]:
        (tmp / "model.bin").write_bytes(content)
        return {"model_name": "m", "artifacts": {"raw": {"file": "model.bin"}}}

    return write_files


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def fail_rename(
    monkeypatch: pytest.MonkeyPatch, *, call: int, error: BaseException, after_renaming: bool
) -> None:
    """Make write_version's ``call``-th rename raise ``error``, before or after renaming."""
    real_rename = os.rename
    calls = 0

    def rename(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if after_renaming or calls != call:
            real_rename(src, dst)
        if calls == call:
            raise error

    monkeypatch.setattr(versions.os, "rename", rename)


def test_version_appears_complete_with_checksums(tmp_path: Path) -> None:
    final = write_version(tmp_path, "m", "v1", writer(b"abc"))
    manifest = artifacts.load_manifest(final)
    assert manifest["artifacts"]["raw"]["size_bytes"] == 3
    assert manifest["artifacts"]["raw"]["sha256"] == artifacts.sha256_file(final / "model.bin")
    assert listing(tmp_path) == ["m", "m/v1", "m/v1/manifest.json", "m/v1/model.bin"]


def test_crash_while_writing_leaves_nothing(tmp_path: Path) -> None:
    def crash(tmp: Path) -> dict[str, Any]:
        (tmp / "model.bin").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        write_version(tmp_path, "m", "v1", crash)
    assert listing(tmp_path) == ["m"]


def test_crash_while_replacing_keeps_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = write_version(tmp_path, "m", "v1", writer(b"old"))
    # The second rename moves the new version into place: it fails.
    fail_rename(monkeypatch, call=2, error=OSError("disk gone"), after_renaming=False)
    with pytest.raises(OSError, match="disk gone"):
        write_version(tmp_path, "m", "v1", writer(b"new"), force=True)
    monkeypatch.undo()
    assert (final / "model.bin").read_bytes() == b"old"
    assert artifacts.verify_version(final) == []
    assert listing(tmp_path) == ["m", "m/v1", "m/v1/manifest.json", "m/v1/model.bin"]


def test_version_set_aside_by_a_crash_between_the_renames_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = write_version(tmp_path, "m", "v1", writer(b"old"))
    # The first rename sets the old version aside; the process dies right after it.
    fail_rename(monkeypatch, call=1, error=KeyboardInterrupt(), after_renaming=True)
    with pytest.raises(KeyboardInterrupt):
        write_version(tmp_path, "m", "v1", writer(b"new"), force=True)
    monkeypatch.undo()
    assert not final.exists()
    assert versions.recover_set_aside(final) is True
    assert (final / "model.bin").read_bytes() == b"old"
    assert artifacts.verify_version(final) == []
    assert listing(tmp_path) == ["m", "m/v1", "m/v1/manifest.json", "m/v1/model.bin"]


def test_existing_version_needs_force(tmp_path: Path) -> None:
    final = write_version(tmp_path, "m", "v1", writer(b"old"))
    with pytest.raises(ArtifactExistsError, match="already exists"):
        write_version(tmp_path, "m", "v1", writer(b"new"))
    assert (final / "model.bin").read_bytes() == b"old"
    write_version(tmp_path, "m", "v1", writer(b"new"), force=True)
    assert (final / "model.bin").read_bytes() == b"new"
    assert listing(tmp_path) == ["m", "m/v1", "m/v1/manifest.json", "m/v1/model.bin"]


def test_verify_version_detects_a_changed_artifact(tmp_path: Path) -> None:
    final = write_version(tmp_path, "m", "v1", writer(b"abc"))
    (final / "model.bin").write_bytes(b"abd")
    assert verify_version_problems(final) == ["SHA-256 does not match the manifest"]


def verify_version_problems(final: Path) -> list[str]:
    return [p.split(": ", 1)[1] for p in artifacts.verify_version(final)]


def test_committed_reference_versions_match_their_manifests() -> None:
    root = Path(__file__).resolve().parents[2] / "model_artifacts" / "churn"
    for version in ("v1", "v2"):
        assert artifacts.verify_version(root / version) == [], version

"""Versioned model artifacts: ``model_artifacts/<model>/<version>/``.

A version directory is built completely in a hidden temporary sibling, flushed to
disk, then renamed into place, so a crash leaves either the old version or the new
one, never a half-written mix. An existing version is replaced only when asked to, and
that is decided under the model's lock (``model_artifacts/<model>/.lock``, see
``training.tracked``) immediately before the rename: of two writers of one version without
``--force``, one lands and the other is refused; neither ever replaces the other's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.artifacts import (
    MANIFEST,
    MANIFEST_SCHEMA_VERSION,
    check_artifact_files,
    check_identity,
    sha256_file,
)
from training import tracked

# The model's lock is held only for a check and a rename or two: wait that long, not forever.
LOCK_WAIT_SECONDS = 10.0


class ArtifactExistsError(FileExistsError):
    """The version already exists and overwriting was not requested."""


def write_version(
    root: Path,
    model_name: str,
    version: str,
    write_files: Callable[[Path], dict[str, Any]],
    *,
    force: bool = False,
    wait_seconds: float | None = None,
) -> Path:
    """Create ``root/model_name/version`` atomically.

    ``write_files(tmp_dir)`` writes every file of the version into ``tmp_dir`` and
    returns the manifest (without checksums of the files it wrote: they are added
    here from the bytes on disk). Returns the final directory. Raises
    ``ArtifactExistsError`` (nothing written) when the version exists, or appeared while
    this one was being written, and ``force`` is false; ``tracked.BusyError`` when
    another writer holds the model's lock for more than ``wait_seconds``.
    """
    check_identity(model_name, version)
    model_dir = root / model_name
    final = model_dir / version
    model_dir.mkdir(parents=True, exist_ok=True)
    with model_lock(model_dir, wait_seconds):
        _recover_set_aside(final)
        _refuse_existing(final, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=model_dir))
    try:
        manifest = write_files(tmp)
        check_artifact_files(tmp, manifest)
        for artifact in manifest["artifacts"].values():
            path = tmp / artifact["file"]
            artifact["sha256"] = sha256_file(path)
            artifact["size_bytes"] = path.stat().st_size
        manifest = {"schema_version": MANIFEST_SCHEMA_VERSION, **manifest}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        for path in tmp.iterdir():
            tracked.fsync_path(path)
        # mkdtemp makes the directory private; a version is read by the whole team.
        os.chmod(tmp, 0o755)  # noqa: S103
        with model_lock(model_dir, wait_seconds):
            # Checked again: another writer may have created it since the check above.
            _recover_set_aside(final)
            _refuse_existing(final, force)
            _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tracked.fsync_path(model_dir)
    return final


def model_lock(
    model_dir: Path, wait_seconds: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """The lock every change to ``model_dir``'s versions takes (``tracked.exclusive``);
    waits at most ``wait_seconds`` (default ``LOCK_WAIT_SECONDS``) for another holder."""
    return tracked.exclusive(
        model_dir / tracked.DIRECTORY_LOCK,
        what=str(model_dir),
        wait_seconds=LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds,
    )


def _refuse_existing(final: Path, force: bool) -> None:
    if final.exists() and not force:
        raise ArtifactExistsError(
            f"{final} already exists; choose a new version or pass --force to replace it "
            "(nothing written)"
        )


def recover_set_aside(final: Path, wait_seconds: float | None = None) -> bool:
    """``_recover_set_aside`` under the model's lock (when its directory exists)."""
    if not final.parent.is_dir():
        return False
    with model_lock(final.parent, wait_seconds):
        return _recover_set_aside(final)


def _recover_set_aside(final: Path) -> bool:
    """Put back a version that a crash left set aside between the two renames.

    ``_replace_dir`` moves the old version to ``.<version>.old-<pid>`` before renaming the
    new one in; a crash between the two leaves no ``<version>`` at all. The set-aside copy
    is complete (it was the live version), so it is restored rather than retrained.
    Returns True when it restored one.
    """
    if final.exists():
        return False
    set_aside = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not set_aside:
        return False
    os.rename(set_aside[-1], final)
    return True


def _replace_dir(new: Path, final: Path) -> None:
    if not final.exists():
        os.rename(new, final)
        return
    # Two renames: the old version is set aside, never deleted before the new one is in place.
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)

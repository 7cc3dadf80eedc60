"""The artifact format: ``model_artifacts/<model>/<version>/`` and its manifest.

Names and paths (model and version names, the manifest's file name), checksums (SHA-256 of
each artifact file) and the check that every file a manifest names stays inside its
version. Writing a version is ``training.versions``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from serving.schema import quote

MANIFEST = "manifest.json"


MANIFEST_SCHEMA_VERSION = 1


NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


VERSION_PATTERN = re.compile(r"^v[0-9]+$")


SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_identity(model_name: str, version: str) -> None:
    if not NAME_PATTERN.fullmatch(model_name):
        raise ValueError(
            f"model name {quote(model_name)} is not allowed: use lower-case letters, digits "
            "and '-', starting with a letter (at most 40 characters)"
        )
    if not VERSION_PATTERN.fullmatch(version):
        raise ValueError(
            f"model version {quote(version)} is not allowed: use 'v' and a number, e.g. v3"
        )


def load_manifest(version_dir: Path) -> dict[str, Any]:
    """The version's manifest, its artifact file names checked to stay inside the version
    (``check_artifact_files``)."""
    path = version_dir / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: is {version_dir} a model version?"
        ) from None
    check_artifact_files(version_dir, manifest)
    return manifest


class ManifestError(ValueError):
    """The manifest names something a version cannot hold; the message says what."""


def check_artifact_files(version_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a manifest whose ``artifacts.*.file`` leaves ``version_dir``.

    Every reader joins the name to the version directory and reads (and hashes, and
    uploads) what it finds: ``../../etc/hostname`` would be read from outside the version.
    """
    entries = manifest.get("artifacts")
    if not isinstance(entries, Mapping):
        return  # not this check's business; readers refuse a manifest without artifacts
    for key, entry in entries.items():
        file = entry.get("file") if isinstance(entry, Mapping) else None
        artifact_path(version_dir, file, f"artifacts.{key}.file")


def artifact_path(version_dir: Path, file: object, where: str = "file") -> Path:
    """``version_dir / file`` for a plain relative name whose real path is inside
    ``version_dir`` (no absolute path, no '..', no symbolic link out); else ManifestError."""
    name = file if isinstance(file, str) else None
    parts = PurePosixPath(name).parts if name else ()
    inside = (
        name is not None
        and bool(parts)
        and "\x00" not in name
        and "\\" not in name
        and not PurePosixPath(name).is_absolute()
        and ".." not in parts
    )
    path = version_dir / name if inside and name is not None else version_dir
    if inside:
        base = version_dir.resolve()
        resolved = path.resolve()
        inside = resolved != base and resolved.is_relative_to(base)
    if not inside:
        raise ManifestError(
            f"{version_dir / MANIFEST}: {where}={quote(file)} is not allowed: a file inside the "
            "version directory (a relative name, no '..', no absolute path, no link out)"
        )
    return path


def versions(model_dir: Path) -> list[str]:
    """The model's versions, oldest first by number (``v10`` after ``v9``)."""
    found = [
        p.name
        for p in model_dir.glob("v*")
        if VERSION_PATTERN.fullmatch(p.name) and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda name: int(name[1:]))


def verify_version(version_dir: Path) -> list[str]:
    """Return the problems found (empty when every artifact matches its manifest)."""
    manifest = load_manifest(version_dir)
    problems = []
    for runtime, artifact in manifest["artifacts"].items():
        path = version_dir / artifact["file"]
        if not path.exists():
            problems.append(f"{path}: missing ({runtime} artifact)")
        elif sha256_file(path) != artifact["sha256"]:
            problems.append(f"{path}: SHA-256 does not match the manifest")
    return problems

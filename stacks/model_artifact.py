"""A model version as the stacks deploy it: read its manifest, check it, name its upload.

The checksum and the patterns are the artifact writer's own (serving.artifacts), so
training and deploy agree on what a valid version is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.artifacts import MANIFEST, SHA256_PATTERN, check_artifact_files, sha256_file
from serving.runtimes import ModelRuntime
from serving.tasks import TASKS
from stacks.settings import ConfigError, ModelArtifact


def load_model_artifact(
    artifacts_root: Path, model_name: str, model_version: str, runtime: ModelRuntime
) -> ModelArtifact:
    directory = artifacts_root / model_name / model_version
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        available = sorted(
            p.parent.name for p in (artifacts_root / model_name).glob("v*/manifest.json")
        )
        raise ConfigError(
            f"model_version={model_version!r} has no artifact: {manifest_path} does not exist; "
            f"available versions of {model_name!r}: {', '.join(available) or 'none'}"
        )
    manifest = json.loads(manifest_path.read_bytes())
    if (manifest.get("model_name"), manifest.get("model_version")) != (model_name, model_version):
        raise ConfigError(
            f"{manifest_path} describes {manifest.get('model_name')!r} "
            f"{manifest.get('model_version')!r}, not {model_name!r} {model_version!r}"
        )
    try:
        # Before any file is opened: a name like ../../etc/hostname reads outside the version.
        check_artifact_files(directory, manifest)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    artifacts: Mapping[str, Any] = manifest.get("artifacts", {})
    if runtime.value not in artifacts:
        # Training and packaging record why a model has no compiled form.
        why = manifest.get("compiled_runtime", {}).get("reason")
        raise ConfigError(
            f"runtime={runtime.value!r} is not available for {model_name} {model_version}: its "
            f"manifest has artifacts for {', '.join(sorted(artifacts)) or 'no runtime'}"
            + (f" (not compiled: {why})" if why and runtime.value == "compiled" else "")
            + "; build the artifact or choose one of those runtimes"
            + (
                ' (set "runtime": "sklearn" for this model)'
                if runtime.value == "compiled" and "sklearn" in artifacts
                else ""
            )
        )
    artifact = artifacts[runtime.value]
    sha256 = str(artifact.get("sha256", ""))
    if not SHA256_PATTERN.fullmatch(sha256):
        raise ConfigError(
            f"{manifest_path}: artifacts.{runtime.value}.sha256={sha256!r} is not a SHA-256"
        )
    files = sorted({str(a["file"]) for a in artifacts.values()})
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        raise ConfigError(
            f"{directory}: artifact file(s) {', '.join(missing)} listed in the manifest are missing"
        )
    _check_checksums(manifest_path, artifacts)
    return ModelArtifact(
        model_name=model_name,
        model_version=model_version,
        runtime=runtime,
        file=str(artifact["file"]),
        sha256=sha256,
        # Older manifests carry no size: the file's own, which _check_checksums just read.
        size_bytes=int(
            artifact.get("size_bytes") or (directory / str(artifact["file"])).stat().st_size
        ),
        directory=directory,
        upload_files=(*files, MANIFEST),
        content_id=content_id(manifest),
        golden_file=str(artifacts["golden"]["file"]) if "golden" in artifacts else None,
        golden_sha256=str(artifacts["golden"]["sha256"]) if "golden" in artifacts else None,
        task=_task(manifest_path, manifest),
    )


def _task(manifest_path: Path, manifest: Mapping[str, Any]) -> str:
    # Manifests written before tasks existed are binary classifiers.
    task = manifest.get("task", "binary")
    if task not in TASKS:
        raise ConfigError(f"{manifest_path}: task={task!r} is not one of {', '.join(TASKS)}")
    return str(task)


CONTENT_ID_LENGTH = 16


def content_id(manifest: Mapping[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of the manifest, in canonical JSON.

    The manifest lists every uploaded artifact's SHA-256 (``_check_checksums`` holds the
    files to it), so any changed byte of any artifact changes the id, and the same
    artifacts always give the same id. Canonical JSON (sorted keys, no whitespace) keeps
    the id independent of formatting and line endings, so every checkout synthesizes the
    same key.
    """
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:CONTENT_ID_LENGTH]


def _check_checksums(manifest_path: Path, artifacts: Mapping[str, Any]) -> None:
    """Every artifact file must hold the bytes its manifest names.

    The upload's key is derived from the manifest alone: an artifact changed without its
    manifest would overwrite the bytes that deployed versions pin, and the new version
    would answer 503 (checksum mismatch) at its first cold start. Refuse it at synth.
    """
    for runtime_name, entry in sorted(artifacts.items()):
        expected = str(entry.get("sha256", ""))
        path = manifest_path.parent / str(entry["file"])
        actual = sha256_file(path)
        if actual != expected:
            raise ConfigError(
                f"{path}: SHA-256 {actual} does not match "
                f"artifacts.{runtime_name}.sha256={expected!r} in {manifest_path}: the file "
                "changed without its manifest; restore it (git checkout) or retrain the "
                "version (python -m training.train --version <version> --force)"
            )

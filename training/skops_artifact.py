"""The sklearn runtime's pickle-free artifact: the joblib payload, persisted with skops.

skops writes a zip of JSON and arrays and rebuilds the objects without unpickling; loading
refuses every type that is neither on skops' own safe list nor on the runtime's explicit
``TRUSTED_TYPES`` (``inference/sklearn_model.py``). Before a file is written, the runtime's
own loader reads the bytes back and must predict exactly what the fitted pipeline does.

    python -m training.skops_artifact model_artifacts/churn/v1   # add it to a version
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference import sklearn_model
from inference.frames import FRAME_INPUT, FramePipeline
from inference.validation import schema_from_artifact
from serving import artifacts
from training import tracked, versions

SKOPS_FILE = "model.skops"
SKOPS_FORMAT = sklearn_model.SKOPS_FORMAT
JOBLIB_KEY = "sklearn-joblib"
# Zip entries carry a timestamp; a fixed one makes the same model give the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_SCHEMA = "schema.json"
# An id() as skops writes it: far longer than any other number in its schema.
_OBJECT_ID = re.compile(r"(?<![0-9.])[0-9]{12,}(?![0-9])")


class SkopsParityError(ValueError):
    """The skops artifact does not load, or predicts differently from the pipeline."""


# Attributes whose list holds (name, estimator, ...) tuples, and what each entry is called.
_NAMED_LISTS = {"steps": "step", "transformers": "transformer", "transformers_": "transformer"}


def untrusted_steps(data: bytes) -> list[str]:
    """Each type of skops file ``data`` that the runtime does not trust, with where it sits
    (``numpy.dtype in step 'pre' > transformer 'num' > step 'simpleimputer' (attribute
    '_fit_dtype')``), read from the file's ``schema.json`` without loading anything."""
    import skops.io

    refused = set(skops.io.get_untrusted_types(data=data)) - set(sklearn_model.TRUSTED_TYPES)
    if not refused:
        return []
    schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read(_SCHEMA))
    found: dict[str, None] = {}
    _walk(schema, [], refused, found)
    return list(found)


def _walk(
    node: Any, trail: list[tuple[str, str]], refused: set[str], found: dict[str, None]
) -> None:
    if isinstance(node, list):
        for child in node:
            _walk(child, trail, refused, found)
        return
    if not isinstance(node, dict):
        return
    name = f"{node.get('__module__')}.{node.get('__class__')}"
    if name in refused:
        found.setdefault(f"{name} in {_where(trail)}", None)
    content = node.get("content")
    if node.get("__loader__") == "DictNode" and isinstance(content, dict):
        for key, child in content.items():
            kind = _NAMED_LISTS.get(key)
            if (
                kind is not None
                and isinstance(child, dict)
                and child.get("__loader__") == "ListNode"
            ):
                for entry in child.get("content") or []:
                    _walk_named(entry, kind, [*trail, ("attribute", key)], refused, found)
            else:
                _walk(child, [*trail, ("attribute", str(key))], refused, found)
        return
    for key, child in node.items():
        if key != "__class__" and isinstance(child, dict | list):
            _walk(child, trail, refused, found)


def _walk_named(
    entry: Any, kind: str, trail: list[tuple[str, str]], refused: set[str], found: dict[str, None]
) -> None:
    parts = entry.get("content") if isinstance(entry, dict) else None
    label = None
    if isinstance(parts, list) and parts and isinstance(parts[0], dict):
        try:
            label = json.loads(parts[0].get("content", ""))
        except (TypeError, ValueError):
            label = None
    if not isinstance(label, str) or not isinstance(parts, list):
        _walk(entry, trail, refused, found)
        return
    for part in parts[1:]:
        _walk(part, [*trail, (kind, label)], refused, found)


def _where(trail: list[tuple[str, str]]) -> str:
    named = [f"{kind} {label!r}" for kind, label in trail if kind != "attribute"]
    last = trail[-1] if trail else None
    text = " > ".join(named) or "the file"
    if last is not None and last[0] == "attribute":
        text += f" (attribute {last[1]!r})"
    return text


def dumps(payload: dict[str, Any]) -> bytes:
    import skops.io

    raw = skops.io.dumps(payload, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    source = zipfile.ZipFile(io.BytesIO(raw))
    # skops names objects and array files by id(), which differs between runs: renumber
    # them in order of appearance so that the same model always gives the same bytes.
    schema = source.read(_SCHEMA).decode()
    ids: dict[str, str] = {}
    for match in _OBJECT_ID.finditer(schema):
        ids.setdefault(match.group(0), str(len(ids) + 1))
    files = {_SCHEMA: _OBJECT_ID.sub(lambda m: ids[m.group(0)], schema).encode()}
    for info in source.infolist():
        if info.filename != _SCHEMA:
            stem, dot, suffix = info.filename.partition(".")
            files[f"{ids.get(stem, stem)}{dot}{suffix}"] = source.read(info.filename)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in sorted(files):
            fixed = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, files[name], compresslevel=9)
    return out.getvalue()


def checked_dumps(payload: dict[str, Any], X: NDArray[np.float64], model: Any = None) -> bytes:
    """``payload`` as skops bytes, after the runtime's loader read them back and agreed
    with ``model`` (the pipeline as training calls it: a ``FramePipeline`` for a frame
    model; by default the payload's pipeline, through ``FramePipeline`` when the payload
    says ``"input": "frame"``)."""
    data = dumps(payload)
    try:
        loaded = sklearn_model.load(data)
    except sklearn_model.SklearnModelError as exc:
        raise SkopsParityError(f"the skops artifact does not load: {exc}") from exc
    pipeline = payload["pipeline"] if model is None else model
    if model is None and payload.get("input") == FRAME_INPUT:
        features = schema_from_artifact(payload["features"])
        pipeline = FramePipeline(pipeline, features, payload.get("frame_dtypes"))
    task = payload.get("task", "binary")
    if task == "regression":
        expected = np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1)
    else:
        proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
        expected = proba[:, 1] if task == "binary" else proba
    if not np.array_equal(loaded.outputs(X), expected, equal_nan=True):
        raise SkopsParityError("the skops artifact predicts differently from the pipeline")
    return data


def manifest_entry(data: bytes) -> dict[str, Any]:
    """The manifest's entry; ``trusted_types`` lists the types beyond skops' own safe list
    that this file holds (all of them on the runtime's ``TRUSTED_TYPES``)."""
    import skops.io

    return {
        "file": SKOPS_FILE,
        "format": SKOPS_FORMAT,
        "trusted_types": sorted(skops.io.get_untrusted_types(data=data)),
    }


def add_to_version(version_dir: Path, X: NDArray[np.float64]) -> dict[str, Any]:
    """Write ``model.skops`` next to a version's ``model.joblib`` and repoint its manifest.

    The joblib file is checked against the manifest before it is unpickled, and stays as
    it is (under ``artifacts.sklearn-joblib``); ``artifacts.sklearn`` becomes the skops
    file, which is what a deployment of the sklearn runtime then loads.
    """
    import joblib
    import skops

    # Under the model's lock: a version is never changed by two commands at once (a
    # --force retrain of it would otherwise swap the directory out under this edit).
    with versions.model_lock(version_dir.parent):
        manifest = artifacts.load_manifest(version_dir)
        entries: dict[str, Any] = manifest["artifacts"]
        joblib_entry = entries.get(JOBLIB_KEY) or entries["sklearn"]
        problems = [p for p in artifacts.verify_version(version_dir) if SKOPS_FILE not in p]
        if problems:
            raise SkopsParityError("; ".join(problems))
        payload = joblib.load(version_dir / joblib_entry["file"])
        data = checked_dumps(
            {**payload, "format": SKOPS_FORMAT},
            X,
        )
        path = version_dir / SKOPS_FILE
        tracked.write_atomic(path, data)  # a crash leaves the old file, never half of one
        skops_entry = {
            **manifest_entry(data),
            "sha256": artifacts.sha256_file(path),
            "size_bytes": path.stat().st_size,
        }
        others = {k: v for k, v in entries.items() if k not in ("sklearn", JOBLIB_KEY)}
        manifest["artifacts"] = {"sklearn": skops_entry, JOBLIB_KEY: joblib_entry, **others}
        manifest["library_versions"]["skops"] = skops.__version__
        text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
        tracked.write_atomic(version_dir / artifacts.MANIFEST, text.encode("utf-8"))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.skops_artifact", description=__doc__)
    parser.add_argument("version_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    from training.synthetic import generate

    X, _ = generate(2000, 123)
    for version_dir in args.version_dirs:
        try:
            add_to_version(version_dir, X)
        except tracked.TrackedError as refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return 2
        print(f"{version_dir}: wrote {SKOPS_FILE}, manifest artifacts.sklearn points to it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

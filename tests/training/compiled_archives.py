"""Reading and damaging compiled-model archives (``.npz``) in tests."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np


def arrays(data: bytes) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    """Every array of the archive, loaded without pickle."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def archive(contents: Mapping[str, Any]) -> bytes:
    """The ``.npz`` bytes of ``contents`` (object arrays too: the loader must refuse them)."""
    buffer = io.BytesIO()
    np.savez(buffer, **contents)
    return buffer.getvalue()


def rewrite(data: bytes, **changes: Any) -> bytes:
    """``data`` with arrays replaced (``None``: removed) and, for ``meta_KEY=value``, the
    metadata's ``KEY`` set."""
    contents: dict[str, Any] = arrays(data)
    meta_changes = {k.removeprefix("meta_"): v for k, v in changes.items() if k.startswith("meta_")}
    if meta_changes:
        meta = {**json.loads(contents["meta"].tobytes()), **meta_changes}
        contents["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    for key, value in changes.items():
        if key.startswith("meta_"):
            continue
        if value is None:
            del contents[key]
        else:
            contents[key] = value
    return archive(contents)

"""The "compiled" runtime: gradient-boosted trees evaluated with numpy alone.

The artifact is an ``.npz`` file (read with ``allow_pickle=False``: loading it runs no
code) holding the scaler's mean and scale, the boosting's initial log-odds and every
tree as flat node arrays. Evaluation follows scikit-learn's arithmetic step by step:
scale in float64, cast to float32 (as the trees' ``predict`` does), walk each tree,
then add the leaf contributions in stage order with ``cumsum`` (sequential, like
scikit-learn's loop), so results match bit for bit on typical inputs; the packaging
parity gate enforces the bound whatever happens.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT = "gbm-trees-npz/1"
_ARRAYS = ("mean", "scale", "init_raw", "roots", "feature", "threshold", "left", "right", "value")


class CompiledModelError(ValueError):
    """The bytes are not a compiled model this runtime can evaluate."""


@dataclass(frozen=True)
class CompiledModel:
    model_name: str
    model_version: str
    features: list[dict[str, Any]]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    init_raw: float
    roots: NDArray[np.intp]
    feature: NDArray[np.intp]
    threshold: NDArray[np.float64]
    children: NDArray[np.intp]  # left and right child of node i at 2i and 2i + 1
    value: NDArray[np.float64]
    depth: int

    def predict_proba(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(positive class) for each row of ``X`` (shape ``(n, n_features)``)."""
        rows = X.shape[0]
        n_features = self.mean.shape[0]
        scaled = ((X - self.mean) / self.scale).astype(np.float32).astype(np.float64)
        flat = scaled.ravel()
        row_offset = (np.arange(rows, dtype=np.intp) * n_features)[:, None]
        node = np.broadcast_to(self.roots, (rows, self.roots.shape[0]))
        for _ in range(self.depth):
            # scikit-learn goes left when x <= threshold; NaN never reaches here (validation).
            go_right = flat[row_offset + self.feature[node]] > self.threshold[node]
            node = self.children[node * 2 + go_right]
        contributions = np.empty((rows, self.roots.shape[0] + 1), dtype=np.float64)
        contributions[:, 0] = self.init_raw
        contributions[:, 1:] = self.value[node]
        raw = np.cumsum(contributions, axis=1)[:, -1]
        return _expit(raw)


def _expit(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    # The branch keeps exp() from overflowing and matches scipy.special.expit's accuracy.
    out = np.empty_like(raw)
    positive = raw >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-raw[positive]))
    e = np.exp(raw[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def load(data: bytes) -> CompiledModel:
    """Parse verified artifact bytes. Raises ``CompiledModelError`` on any malformation."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in (*_ARRAYS, "meta")}
    except (OSError, ValueError, KeyError) as exc:
        raise CompiledModelError(f"not a compiled model archive: {exc}") from None
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompiledModelError(f"compiled model metadata is not JSON: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CompiledModelError(f"unsupported compiled format {meta.get('format')!r}")
    nodes = arrays["feature"].shape[0]
    n_features = arrays["mean"].shape[0]
    index_arrays = [arrays[k] for k in ("roots", "left", "right")]
    if (
        any(a.ndim != 1 for a in arrays.values() if a is not arrays["init_raw"])
        or any(arrays[k].shape[0] != nodes for k in ("threshold", "left", "right", "value"))
        or any(a.size and (a.min() < 0 or a.max() >= nodes) for a in index_arrays)
        or (nodes and (arrays["feature"].min() < 0 or arrays["feature"].max() >= n_features))
        or len(meta.get("features", [])) != n_features
        or not math.isfinite(float(arrays["init_raw"]))
    ):
        raise CompiledModelError("compiled model arrays are inconsistent")
    return CompiledModel(
        model_name=str(meta["model_name"]),
        model_version=str(meta["model_version"]),
        features=list(meta["features"]),
        mean=arrays["mean"].astype(np.float64),
        scale=arrays["scale"].astype(np.float64),
        init_raw=float(arrays["init_raw"]),
        roots=arrays["roots"].astype(np.intp),
        feature=arrays["feature"].astype(np.intp),
        threshold=arrays["threshold"].astype(np.float64),
        children=np.stack([arrays["left"], arrays["right"]], axis=1).ravel().astype(np.intp),
        value=arrays["value"].astype(np.float64),
        depth=int(meta["depth"]),
    )

"""The "compiled" runtime: scikit-learn pipelines evaluated with numpy alone.

Two artifact formats. ``sklearn-compiled-npz/2`` (everything ``training/compile.py``
writes today: scalers, one-hot encoding, tree ensembles, linear models, every task) is
evaluated by ``inference/compiled_pipeline.py``. ``gbm-trees-npz/1``, the first format,
is kept as it was because the committed churn v1/v2 artifacts are deployed by checksum:

The artifact is an ``.npz`` file (read with ``allow_pickle=False``: loading it runs no
code) holding the scaler's mean and scale, the boosting's initial log-odds and every
tree as flat node arrays. Evaluation follows scikit-learn's arithmetic step by step:
scale in float64, cast to float32 (as the trees' ``predict`` does), find each tree's leaf
(``tree_forest``: bitvector tables precomputed at load), then add the leaf contributions
to the initial log-odds in stage order, like scikit-learn's loop, so results match bit for
bit on typical inputs; the packaging parity gate enforces the bound whatever happens.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from inference import tree_forest
from inference.compiled_format import (
    ESTIMATOR_ARRAYS,
    FORMAT_V1,
    FORMAT_V2,
    OPTIONAL_TREE_ARRAYS,
    PRE_ARRAYS,
    V1_ARRAYS,
)

if TYPE_CHECKING:
    from inference.compiled_pipeline import CompiledPipeline

FORMAT = FORMAT_V1


class CompiledModelError(ValueError):
    """The bytes are not a compiled model this runtime can evaluate."""


@dataclass(frozen=True)
class CompiledModel:
    model_name: str
    model_version: str
    features: list[dict[str, Any]]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    forest: tree_forest.Forest
    task: str = "binary"
    classes: tuple[Any, ...] | None = (0, 1)

    def outputs(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(positive class) for each row of ``X`` (shape ``(n, n_features)``)."""
        scaled = ((X - self.mean) / self.scale).astype(np.float32).astype(np.float64)
        # NaN never reaches here (validation); scikit-learn goes left when x <= threshold.
        return _expit(self.forest.raw(scaled))


def _expit(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    # exp() of minus the magnitude never overflows; each branch is scipy.special.expit's
    # formula for its sign, so the result matches it to the ulp.
    e = np.exp(-np.abs(raw))
    return np.where(raw >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def load(data: bytes) -> CompiledModel | CompiledPipeline:
    """Parse verified artifact bytes. Raises ``CompiledModelError`` on any malformation.

    ``gbm-trees-npz/1`` (the first churn artifacts, whose bytes are deployed) gives a
    ``CompiledModel``; ``sklearn-compiled-npz/2`` a ``compiled_pipeline.CompiledPipeline``.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = _meta(archive["meta"])
            names = _array_names(meta)
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise CompiledModelError(
                    f"compiled model archive lacks array(s) {', '.join(missing)}"
                )
            arrays = {name: archive[name] for name in names}
            if meta.get("estimator") == "trees" and meta["format"] != FORMAT:
                arrays.update(
                    (name, archive[name]) for name in OPTIONAL_TREE_ARRAYS if name in archive.files
                )
    except CompiledModelError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise CompiledModelError(f"not a compiled model archive: {exc}") from None
    if meta["format"] != FORMAT:
        # Imported only for the second format: the first one's cold start stays as it was.
        from inference import compiled_pipeline

        try:
            return compiled_pipeline.build(meta, arrays)
        except compiled_pipeline.FormatError as exc:
            raise CompiledModelError(f"compiled model is inconsistent: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CompiledModelError(f"compiled model is inconsistent: {exc!r}") from None
    return _load_v1(meta, arrays)


def _meta(raw: NDArray[Any]) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CompiledModelError("compiled model metadata is not JSON bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompiledModelError(f"compiled model metadata is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CompiledModelError("compiled model metadata is not a JSON object")
    return meta


def _array_names(meta: dict[str, Any]) -> tuple[str, ...]:
    if meta.get("format") == FORMAT:
        return V1_ARRAYS
    if meta.get("format") == FORMAT_V2:
        estimator = ESTIMATOR_ARRAYS.get(str(meta.get("estimator")))
        if estimator is None:
            raise CompiledModelError(f"unsupported compiled estimator {meta.get('estimator')!r}")
        return (*PRE_ARRAYS, *estimator)
    raise CompiledModelError(f"unsupported compiled format {meta.get('format')!r}")


def _load_v1(meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> CompiledModel:
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
    try:
        forest = tree_forest.build(
            init_raw=float(arrays["init_raw"]),
            roots=arrays["roots"].astype(np.intp),
            feature=arrays["feature"].astype(np.intp),
            threshold=arrays["threshold"].astype(np.float64),
            left=arrays["left"].astype(np.intp),
            right=arrays["right"].astype(np.intp),
            value=arrays["value"].astype(np.float64),
            depth=int(meta["depth"]),
        )
    except tree_forest.ForestStructureError as exc:
        raise CompiledModelError(f"compiled model arrays are inconsistent: {exc}") from None
    return CompiledModel(
        model_name=str(meta["model_name"]),
        model_version=str(meta["model_version"]),
        features=list(meta["features"]),
        mean=arrays["mean"].astype(np.float64),
        scale=arrays["scale"].astype(np.float64),
        forest=forest,
    )

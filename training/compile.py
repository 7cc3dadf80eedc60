"""Package a fitted pipeline for the "compiled" runtime: the entry of compiling.

The compiled artifact (format ``sklearn-compiled-npz/3``) is evaluated by
``lambda_src/inference/compiled_pipeline.py`` with numpy alone: no scikit-learn import
and no pickle at cold start. ``compile_pipeline`` checks the task and classes against the
estimator, compiles the preprocessing (``training.compile_preprocessing``: given the
schema's features and whether the pipeline was fitted on a DataFrame, so that a
categorical feature's tables are computed from the values the handler sends) and the
estimator (``training.compile_estimators``; see docs/performance.md for the table of what
compiles), writes the archive and loads it back with the runtime's own loader. Anything
that does not compile raises ``UnsupportedModelError`` naming what is not supported, and
the version is served by runtime ``sklearn`` only.

Before the artifact is written, ``training.parity`` compares its outputs with the
pipeline's and refuses a model that misses the bound.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from inference import compiled_model, compiled_pipeline
from inference.frames import FramePipeline, column_mismatch, fitted_on_frame
from inference.validation import Feature, schema_from_artifact
from serving.tasks import TASKS
from training.compile_estimators import compile_estimator, flatten
from training.compile_preprocessing import preprocessing
from training.compile_support import UnsupportedModelError, describe, split_pipeline

COMPILED_FILE = "model.compiled.npz"
COMPILED_FORMAT = compiled_pipeline.FORMAT


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_task(estimator: Any, task: str, classes: Sequence[Any] | None) -> tuple[Any, ...] | None:
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    fitted = getattr(estimator, "classes_", None)
    if task == "regression":
        if fitted is not None:
            raise ValueError("task is regression but the estimator is a classifier")
        return None
    if fitted is None:
        raise ValueError(f"task is {task} but the estimator is a regressor")
    labels = tuple(_json_scalar(c) for c in fitted)
    if (task == "binary") != (len(labels) == 2):
        raise ValueError(f"task is {task} but the estimator has {len(labels)} classes")
    if classes is not None and list(classes) != list(labels):
        raise ValueError(f"classes {list(classes)} differ from the estimator's {list(labels)}")
    return labels


def unwrap(
    pipeline: Any, frame_dtypes: Mapping[str, str] | None = None
) -> tuple[Any, bool, dict[str, str] | None]:
    """(the scikit-learn pipeline, whether it takes a DataFrame, that DataFrame's dtypes)."""
    if isinstance(pipeline, FramePipeline):
        return pipeline.pipeline, True, dict(frame_dtypes or pipeline.dtypes) or None
    frame = fitted_on_frame(pipeline)
    return pipeline, frame, (dict(frame_dtypes) if frame and frame_dtypes else None)


def schema_features(
    features: Sequence[Mapping[str, Any]], pipeline: Any, frame: bool
) -> tuple[Feature, ...]:
    """The artifact's feature entries as the handler reads them; a frame model's columns
    must be the schema's names in order."""
    parsed = schema_from_artifact(list(features))
    if frame:
        problem = column_mismatch(pipeline, [f.name for f in parsed])
        if problem is not None:
            raise ValueError(problem)
    return parsed


def compile_pipeline(
    pipeline: Any,
    *,
    model_name: str,
    model_version: str,
    features: list[dict[str, Any]],
    task: str = "binary",
    classes: Sequence[Any] | None = (0, 1),
    frame_dtypes: Mapping[str, str] | None = None,
) -> bytes:
    """Return the ``.npz`` bytes of the compiled model (format ``sklearn-compiled-npz/3``).

    ``pipeline``: fitted on the codes matrix, or on a DataFrame (``frames.fitted_on_frame``;
    also as a ``frames.FramePipeline``, whose dtypes are then used), ``frame_dtypes``: the
    payload's ``"frame_dtypes"``. Raises ``UnsupportedModelError`` naming the step that does
    not compile (the version is then served by runtime ``sklearn`` only).
    """
    pipeline, frame, dtypes = unwrap(pipeline, frame_dtypes)
    step, estimator = split_pipeline(pipeline)
    labels = _check_task(estimator, task, classes)
    n_inputs = getattr(pipeline, "n_features_in_", len(features))
    if n_inputs != len(features):
        raise ValueError(
            f"the pipeline takes {n_inputs} inputs but the schema lists {len(features)} features"
        )
    pre = preprocessing(
        step, n_inputs, schema_features(features, pipeline, frame), frame=frame, dtypes=dtypes
    )
    # Without a preprocessing step the estimator reads the schema's columns: their values.
    values = [f.get("allowed", {}).get("values") for f in features] if step is None else None
    meta, trees, linear = compile_estimator(estimator, len(pre.input), values)
    arrays = pre.arrays()
    if trees is not None:
        tree_arrays, depth = flatten(trees)
        arrays.update(tree_arrays, init=meta.pop("init"))
        meta["depth"] = depth
    # The linear arrays, or the trees' per-input arrays (their categories).
    arrays.update(linear)
    meta.update(
        format=COMPILED_FORMAT,
        model_name=model_name,
        model_version=model_version,
        features=features,
        task=task,
        classes=None if labels is None else list(labels),
        pipeline=describe(pipeline),
    )
    buffer = io.BytesIO()
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    try:
        compiled_model.load(data)
    except compiled_model.CompiledModelError as exc:
        raise UnsupportedModelError(f"{describe(pipeline)} does not compile: {exc}") from None
    return data

"""The parity gate: the compiled model must answer as the pipeline does before it is written.

``check_parity`` evaluates both on the rows of ``training.parity_inputs`` (holdout, random,
tie and boundary rows), the compiled model in batches of every size class the runtime
treats differently, and compares: every output within ``PARITY_BOUND`` and every label the
same (rows exactly on a linear decision boundary: held to the bound only). A model that
misses is refused with ``ParityError`` naming the figures; the figures that passed go into
the manifest (``parity_record``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference import compiled_model
from inference.frames import FramePipeline
from training.compile import schema_features, unwrap
from training.parity_inputs import boundary_rows, parity_rows, tie_rows

# Measured on the reference models: 2.2e-16 (one ulp); the bound leaves room for
# another numpy build's exp() without admitting any real divergence.
PARITY_BOUND = 1e-12
# The runtime switches method at 16 and 64 rows and works in blocks of 256 (see
# inference/tree_forest.py): the gate evaluates the compiled model in chunks of these sizes
# in turn, so that each path is checked.
PARITY_CHUNK_SIZES = (1, 15, 16, 63, 64, 256, 1000)


class ParityError(ValueError):
    """The compiled model does not reproduce the pipeline's predictions."""


@dataclass(frozen=True)
class ParityReport:
    rows: int
    holdout_rows: int
    random_rows: int
    tie_rows: int  # rows on a split threshold or a linear decision boundary
    max_abs_diff: float
    label_mismatches: int
    bound: float
    # Rows exactly on a linear decision boundary: held to the bound, their labels not
    # compared (see boundary_rows).
    unlabelled_rows: int = 0

    @property
    def passed(self) -> bool:
        return self.label_mismatches == 0 and self.max_abs_diff <= self.bound


def _outputs_in_chunks(model: Any, X: NDArray[np.float64]) -> NDArray[np.float64]:
    sizes = itertools.cycle(PARITY_CHUNK_SIZES)
    parts, start = [], 0
    while start < len(X):
        size = next(sizes)
        parts.append(np.asarray(model.outputs(X[start : start + size]), dtype=np.float64))
        start += size
    return np.concatenate(parts)


def expected_outputs(pipeline: Any, task: str, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """What the runtime protocol's ``outputs`` must give, by scikit-learn itself."""
    if task == "regression":
        return np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1)
    proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
    return proba[:, 1] if task == "binary" else proba


def labels_of(outputs: NDArray[np.float64], task: str) -> NDArray[np.int64]:
    """The handler's decision: binary P >= 0.5, multiclass the first highest column."""
    if task == "binary":
        return (outputs >= 0.5).astype(np.int64)
    if task == "multiclass":
        return np.asarray(np.argmax(outputs, axis=1), dtype=np.int64)
    return np.zeros(outputs.shape[0], dtype=np.int64)


def check_parity(
    pipeline: Any,
    compiled: bytes,
    X_holdout: NDArray[np.float64],
    features: list[dict[str, Any]],
    *,
    task: str | None = None,
    bound: float = PARITY_BOUND,
    frame_dtypes: Mapping[str, str] | None = None,
) -> ParityReport:
    """Compare the compiled model with the pipeline; raise ``ParityError`` if it misses.

    ``task`` defaults to the compiled model's own; given, it must agree with it. A frame
    model (fitted on a DataFrame, or a ``frames.FramePipeline``) answers through
    ``FramePipeline``: the DataFrame the handler's sklearn runtime would build
    (``frame_dtypes``: the payload's ``"frame_dtypes"``).
    """
    model = compiled_model.load(compiled)
    if task is not None and task != model.task:
        raise ParityError(f"compiled model is a {model.task} model, not {task}")
    task = model.task
    sampled = parity_rows(X_holdout, features)
    boundary, on_boundary = boundary_rows(pipeline, sampled, features, frame_dtypes)
    ties = np.vstack([tie_rows(pipeline, features, frame_dtypes), boundary])
    X = np.vstack([sampled, ties])
    labelled = np.concatenate([np.ones(len(X) - len(boundary), dtype=bool), ~on_boundary])
    expected = expected_outputs(_as_called(pipeline, features, frame_dtypes), task, X)
    actual = _outputs_in_chunks(model, X)
    if actual.shape != expected.shape:
        raise ParityError(
            f"compiled model answers shape {actual.shape}, scikit-learn {expected.shape}"
        )
    report = ParityReport(
        rows=len(X),
        holdout_rows=len(X_holdout),
        random_rows=len(sampled) - len(X_holdout),
        tie_rows=len(ties),
        max_abs_diff=float(np.max(np.abs(actual - expected))) if len(X) else 0.0,
        label_mismatches=int(
            np.sum((labels_of(actual, task) != labels_of(expected, task)) & labelled)
        ),
        bound=bound,
        unlabelled_rows=int(np.sum(~labelled)),
    )
    if not report.passed:
        what = "value" if task == "regression" else "P"
        raise ParityError(
            f"compiled model refused: max |{what}(compiled) - {what}(sklearn)| = "
            f"{report.max_abs_diff:.3g} (bound {bound:g}), {report.label_mismatches} of "
            f"{report.rows - report.unlabelled_rows} labels differ"
        )
    return report


def _as_called(
    pipeline: Any, features: list[dict[str, Any]], frame_dtypes: Mapping[str, str] | None
) -> Any:
    """The pipeline as the handler calls it: through ``FramePipeline`` for a frame model."""
    fitted, frame, dtypes = unwrap(pipeline, frame_dtypes)
    if not frame or isinstance(pipeline, FramePipeline):
        return pipeline
    return FramePipeline(fitted, schema_features(features, fitted, frame), dtypes)


def parity_record(report: ParityReport) -> dict[str, Any]:
    """The report as the manifest records it (``artifacts.compiled.parity``)."""
    return {**asdict(report), "passed": report.passed}

"""A pipeline's parts as the compiled runtime sees them, and the error naming what it cannot
evaluate.

A pipeline compiles as its preprocessing (one step, or a chain the compiled runtime can
evaluate as one: see ``training.compile_preprocessing``) and an estimator (a step set to
``None`` or ``"passthrough"`` does nothing); ``describe`` names them for the manifest and the
error messages.
"""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

# Every refusal ends with it: the version is still served, by the other runtime.
FALLBACK = "runtime 'sklearn' serves this model"


class UnsupportedModelError(ValueError):
    """The pipeline has a step the compiled runtime cannot evaluate; the message says which."""


def _active_steps(pipeline: Pipeline) -> list[tuple[str, Any]]:
    return [(n, s) for n, s in pipeline.steps if s is not None and not isinstance(s, str)]


def split_pipeline(pipeline: Any) -> tuple[Any | None, Any]:
    """(the preprocessing or None, the estimator) of a pipeline or a bare estimator.

    Several preprocessing steps come back as one ``Pipeline`` of them (fitted: its
    ``transform`` is theirs in turn)."""
    steps = _active_steps(pipeline) if isinstance(pipeline, Pipeline) else [("", pipeline)]
    if not steps:
        raise UnsupportedModelError(f"the pipeline has no estimator; {FALLBACK}")
    *pre, (_, estimator) = steps
    if len(pre) > 1:
        return Pipeline(pre), estimator
    return (pre[0][1] if pre else None), estimator


def is_identity(step: Any) -> bool:
    """A step that passes its input through: None, "passthrough", or the
    ``FunctionTransformer(func=None)`` that ``remainder="passthrough"`` is fitted as."""
    return (
        step is None
        or (isinstance(step, str) and step == "passthrough")
        or (type(step) is FunctionTransformer and step.func is None)
    )


def chain(step: Any) -> list[Any]:
    """The steps a transformer applies in turn (a ``Pipeline``'s), identities left out."""
    if isinstance(step, Pipeline):
        return [s for _, s in step.steps if not is_identity(s)]
    return [] if is_identity(step) else [step]


def describe(pipeline: Any) -> str:
    """``StandardScaler + GradientBoostingClassifier``: what the manifest and errors name."""
    if isinstance(pipeline, Pipeline):
        return " + ".join(type(s).__name__ for _, s in _active_steps(pipeline))
    return type(pipeline).__name__

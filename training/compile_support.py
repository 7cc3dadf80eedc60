"""A pipeline's parts as the compiled runtime sees them, and the error naming what it cannot
evaluate.

A pipeline compiles as at most one preprocessing step and an estimator (a step set to
``None`` or ``"passthrough"`` does nothing); ``describe`` names them for the manifest and the
error messages.
"""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

# Every refusal ends with it: the version is still served, by the other runtime.
FALLBACK = "runtime 'sklearn' serves this model"


class UnsupportedModelError(ValueError):
    """The pipeline has a step the compiled runtime cannot evaluate; the message says which."""


def _active_steps(pipeline: Pipeline) -> list[Any]:
    return [s for _, s in pipeline.steps if s is not None and not isinstance(s, str)]


def split_pipeline(pipeline: Any) -> tuple[Any | None, Any]:
    """(the preprocessing step or None, the estimator) of a pipeline or a bare estimator."""
    steps = _active_steps(pipeline) if isinstance(pipeline, Pipeline) else [pipeline]
    if not steps:
        raise UnsupportedModelError(f"the pipeline has no estimator; {FALLBACK}")
    *pre, estimator = steps
    if len(pre) > 1:
        raise UnsupportedModelError(
            "the compiled runtime evaluates at most one preprocessing step, not "
            f"{' + '.join(type(s).__name__ for s in pre)}; {FALLBACK}"
        )
    return (pre[0] if pre else None), estimator


def describe(pipeline: Any) -> str:
    """``StandardScaler + GradientBoostingClassifier``: what the manifest and errors name."""
    if isinstance(pipeline, Pipeline):
        return " + ".join(type(s).__name__ for s in _active_steps(pipeline))
    return type(pipeline).__name__

"""The built-in estimators ``--estimator KIND`` names, and the pipelines training builds.

A kind has a classifier and/or a regressor variant; the schema's task picks which. Every
pipeline takes the encoded matrix (one float64 column per feature, a categorical column
holding its value's position in the schema list) and scales the numbers; categorical
columns are one-hot encoded over exactly their codes, so that a code outside the list is
an error, never a silent all-zero row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from serving.schema import Schema

DEFAULT_KIND = "gbm"
SEED = 42
# The churn model's hyperparameters since v1: its committed bytes depend on them.
GBM_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 4,
    "learning_rate": 0.1,
    "random_state": SEED,
}


class EstimatorError(ValueError):
    """An unknown kind, a kind the task cannot use, or a hyperparameter it does not have."""


@dataclass(frozen=True)
class Kind:
    classifier: type[BaseEstimator] | None
    regressor: type[BaseEstimator] | None
    # Defaults on top of scikit-learn's: a fixed seed, so the same data gives the same bytes.
    defaults: Mapping[str, Any]

    @property
    def classes(self) -> tuple[type[BaseEstimator], ...]:
        """The kind's estimator classes: classifier first, then regressor."""
        return tuple(c for c in (self.classifier, self.regressor) if c is not None)


KINDS: dict[str, Kind] = {
    "gbm": Kind(GradientBoostingClassifier, GradientBoostingRegressor, GBM_PARAMS),
    "hist_gbm": Kind(
        HistGradientBoostingClassifier, HistGradientBoostingRegressor, {"random_state": SEED}
    ),
    "random_forest": Kind(
        RandomForestClassifier, RandomForestRegressor, {"n_estimators": 100, "random_state": SEED}
    ),
    "extra_trees": Kind(
        ExtraTreesClassifier, ExtraTreesRegressor, {"n_estimators": 100, "random_state": SEED}
    ),
    "decision_tree": Kind(DecisionTreeClassifier, DecisionTreeRegressor, {"random_state": SEED}),
    "logistic": Kind(LogisticRegression, None, {"max_iter": 1000}),
    "linear": Kind(None, LinearRegression, {}),
    "ridge": Kind(None, Ridge, {}),
}


def estimator_class(kind: str, task: str) -> type[BaseEstimator]:
    if kind not in KINDS:
        raise EstimatorError(f"estimator {kind!r} is not one of {', '.join(KINDS)}")
    spec = KINDS[kind]
    regression = task == "regression"
    cls = spec.regressor if regression else spec.classifier
    if cls is None:
        usable = [k for k, s in KINDS.items() if (s.regressor if regression else s.classifier)]
        raise EstimatorError(
            f"estimator {kind!r} has no {'regressor' if regression else 'classifier'}: for "
            f"task {task} use one of {', '.join(usable)}"
        )
    return cls


def resolve_params(kind: str, task: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The kind's defaults overridden by ``params``; a name the estimator lacks is refused
    with the valid names."""
    cls = estimator_class(kind, task)
    valid = sorted(cls().get_params(deep=False))
    unknown = sorted(set(params or {}) - set(valid))
    if unknown:
        raise EstimatorError(
            f"{cls.__name__} has no parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return {**KINDS[kind].defaults, **(params or {})}


def build_pipeline(
    schema: Schema, kind: str = DEFAULT_KIND, params: Mapping[str, Any] | None = None
) -> Pipeline:
    """The unfitted pipeline for ``schema`` (``params`` are the estimator's, checked)."""
    estimator = estimator_class(kind, schema.task)(**resolve_params(kind, schema.task, params))
    step = "regressor" if schema.task == "regression" else "classifier"
    categorical = list(schema.categorical_indices)
    if not categorical:
        return Pipeline([("scaler", StandardScaler()), (step, estimator)])
    numeric = [i for i in range(len(schema.features)) if i not in categorical]
    encoder = OneHotEncoder(
        categories=[list(range(len(schema.features[i].values or ()))) for i in categorical],
        handle_unknown="error",
        sparse_output=False,
    )
    features = ColumnTransformer(
        [("numeric", StandardScaler(), numeric), ("categorical", encoder, categorical)]
    )
    return Pipeline([("features", features), (step, estimator)])


def describe(pipeline: Any) -> str:
    """``StandardScaler + GradientBoostingClassifier``: what the manifest calls the model."""
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        return type(pipeline).__name__
    return " + ".join(_step_name(step) for _, step in steps)


def _step_name(step: Any) -> str:
    if isinstance(step, ColumnTransformer):
        inner = ", ".join(_step_name(t) for _, t, _ in step.transformers)
        return f"ColumnTransformer({inner})"
    return type(step).__name__


def parse_param_args(file: Path | None, pairs: Iterable[str]) -> dict[str, Any]:
    """``--params FILE`` (a JSON object) then each ``--param key=value`` on top (the value
    read as JSON, else taken as a string: ``max_depth=3``, ``criterion=entropy``)."""
    params: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise EstimatorError(f"{file}: cannot open ({exc.strerror})") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EstimatorError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise EstimatorError(f"{file}: expected a JSON object of parameters, got {loaded!r}")
        params.update(loaded)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise EstimatorError(f"--param {pair!r} is not key=value")
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        params[key.strip()] = value
    return params

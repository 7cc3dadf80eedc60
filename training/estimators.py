"""The built-in estimators ``--estimator KIND`` names, and the pipelines training builds.

A kind has a classifier and/or a regressor variant; the schema's task picks which. Every
pipeline takes the encoded matrix (one float64 column per feature, a categorical column
holding its value's position in the schema list) and scales the numbers; categorical
columns are one-hot encoded over exactly their codes, so that a code outside the list is
an error, never a silent all-zero row.

Where the schema says a feature is ``nullable`` (NaN in the matrix) the pipeline imputes
it, and where a categorical feature passes unknown values (``unknown: pass``, -1 in the
matrix) its encoder ignores them (an all-zero row): see ``build_pipeline``. A schema
with neither gets the pipelines it always got, so the same data gives the same bytes.
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
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from serving.schema import FeatureSpec, Schema

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
    if any(_missing_or_unknown(spec) for spec in schema.features):
        return Pipeline([("features", _imputing_features(schema, kind)), (step, estimator)])
    categorical = list(schema.categorical_indices)
    if not categorical:
        return Pipeline([("scaler", StandardScaler()), (step, estimator)])
    numeric = [i for i in range(len(schema.features)) if i not in categorical]
    features = ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            ("categorical", _one_hot(schema, categorical, unknown=False), categorical),
        ]
    )
    return Pipeline([("features", features), (step, estimator)])


# Kinds whose estimator takes NaN itself: at each split it learns from the training rows
# with a missing value which side a missing value goes (HistGradientBoosting*, and the
# scikit-learn trees and forests on the pinned 1.9), so missingness stays information the
# model can use, where a median would make a missing value look typical. Their nullable
# numbers reach them as NaN (StandardScaler keeps it); the compiled runtime routes NaN
# the same way (``missing_left``, held to parity). A nullable feature with no missing
# value in training sends a null down the larger branch at each split (scikit-learn's
# rule). GradientBoosting*, LogisticRegression, LinearRegression and Ridge refuse NaN:
# they get the training median.
NATIVE_MISSING = frozenset({"hist_gbm", "decision_tree", "random_forest", "extra_trees"})


def _missing_or_unknown(spec: FeatureSpec) -> bool:
    return spec.nullable or (spec.values is not None and spec.unknown == "pass")


def _imputing_features(schema: Schema, kind: str) -> ColumnTransformer:
    """The preprocessing of a schema with nullable or ``unknown: pass`` features.

    Numbers: scaled; a nullable one's NaN first replaced by the training median (not for
    ``NATIVE_MISSING`` kinds). Categorical codes: one-hot over their codes; a nullable
    one's NaN first replaced by the most frequent code (for every kind: the encoder, not
    the estimator, reads them); an ``unknown: pass`` one's -1 encoded as no category
    (``handle_unknown="ignore"``), any other code outside the list still an error. The
    compiled runtime compiles every one of these steps (training.compile_preprocessing):
    the imputer as a fill, the encoders as tables over each feature's codes, null and
    unknown.
    """
    native = kind in NATIVE_MISSING
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(schema.features):
        if spec.values is None:
            name = "numeric_imputed" if spec.nullable and not native else "numeric"
        else:
            name = "categorical" + ("_imputed" if spec.nullable else "")
            name += "_unknown" if spec.unknown == "pass" else ""
        groups.setdefault(name, []).append(i)
    transformers: list[tuple[str, Any, list[int]]] = []
    for name in sorted(groups, key=_GROUP_ORDER.index):
        columns = groups[name]
        if name.startswith("numeric"):
            step: Any = StandardScaler()
        else:
            step = _one_hot(schema, columns, unknown=name.endswith("_unknown"))
        if "_imputed" in name:
            strategy = "median" if name.startswith("numeric") else "most_frequent"
            # keep_empty_features: a column with no value in training keeps its place
            # (filled with 0, a listed code), so the columns stay the schema's.
            imputer = SimpleImputer(strategy=strategy, keep_empty_features=True)
            label = "scaler" if name.startswith("numeric") else "encoder"
            step = Pipeline([("imputer", imputer), (label, step)])
        transformers.append((name, step, columns))
    return ColumnTransformer(transformers)


def missing_values(schema: Schema, kind: str) -> dict[str, str]:
    """What the pipeline of ``kind`` does with each nullable feature's missing value (the
    manifest's ``training.missing_values``; empty when no feature is nullable)."""
    done: dict[str, str] = {}
    for spec in schema.features:
        if not spec.nullable:
            continue
        if spec.values is not None:
            done[spec.name] = "imputed: the most frequent value in training"
        elif kind in NATIVE_MISSING:
            done[spec.name] = "passed to the estimator as NaN (it learns where missing goes)"
        else:
            done[spec.name] = "imputed: the training median"
    return done


_GROUP_ORDER = [
    "numeric",
    "numeric_imputed",
    "categorical",
    "categorical_unknown",
    "categorical_imputed",
    "categorical_imputed_unknown",
]


def _one_hot(schema: Schema, columns: list[int], *, unknown: bool) -> OneHotEncoder:
    """One-hot over exactly the codes of ``columns``: another code is an error, unless
    ``unknown`` (the features pass unknown values: -1 becomes an all-zero row)."""
    return OneHotEncoder(
        categories=[list(range(len(schema.features[i].values or ()))) for i in columns],
        handle_unknown="ignore" if unknown else "error",
        sparse_output=False,
    )


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
    if isinstance(step, Pipeline):
        inner = ", ".join(_step_name(s) for _, s in step.steps)
        return f"Pipeline({inner})"
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

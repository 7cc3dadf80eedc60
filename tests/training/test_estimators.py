"""--estimator and --params: each built-in kind in the variant the task needs, hyperparameters
checked by the estimator's own names, pipelines over the encoded matrix that skops can
load back under the runtime's trusted types."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from serving.schema import Schema
from training import estimators, skops_artifact
from training.estimators import KINDS, EstimatorError, build_pipeline, parse_param_args
from training.schema import CHURN, load_schema
from training.train import GBM_PARAMS


def _schema(tmp_path: Path, task: str) -> Schema:
    path = tmp_path / f"{task}.json"
    path.write_text(
        json.dumps(
            {
                "task": task,
                "label": "y",
                "features": [
                    {"name": "a", "type": "number", "min": -5, "max": 5},
                    {"name": "colour", "type": "categorical", "values": ["r", "g", "b"]},
                    {"name": "b", "type": "integer", "min": 0, "max": 9},
                ],
            }
        )
    )
    return load_schema(path)


def _data(task: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [rng.normal(size=300), rng.integers(0, 3, 300), rng.integers(0, 10, 300)]
    ).astype(np.float64)
    signal = X[:, 0] + (X[:, 1] == 2) + rng.normal(scale=0.3, size=300)
    if task == "regression":
        return X, signal
    if task == "binary":
        return X, np.where(signal > 0.5, "yes", "no").astype(object)
    return X, np.digitize(signal, [0.0, 1.0]).astype(np.int64)


def test_churn_keeps_its_pipeline() -> None:
    pipeline = build_pipeline(CHURN)
    assert [name for name, _ in pipeline.steps] == ["scaler", "classifier"]
    assert isinstance(pipeline.steps[0][1], StandardScaler)
    assert pipeline.steps[1][1].get_params() | GBM_PARAMS == pipeline.steps[1][1].get_params()


def test_categoricals_are_one_hot_encoded_over_exactly_their_codes(tmp_path: Path) -> None:
    pipeline = build_pipeline(_schema(tmp_path, "regression"), "ridge")
    assert [name for name, _ in pipeline.steps] == ["features", "regressor"]
    features = pipeline.steps[0][1]
    assert isinstance(features, ColumnTransformer)
    (_, scaler, numeric), (_, encoder, categorical) = features.transformers
    assert isinstance(scaler, StandardScaler) and numeric == [0, 2]
    assert isinstance(encoder, OneHotEncoder) and categorical == [1]
    assert encoder.categories == [[0, 1, 2]] and encoder.handle_unknown == "error"
    X, y = _data("regression")
    pipeline.fit(X, y)
    with pytest.raises(ValueError, match="unknown categor"):
        pipeline.predict(np.array([[0.0, 3.0, 1.0]]))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_fits_its_task_and_loads_back_from_skops(
    tmp_path: Path, task: str, kind: str
) -> None:
    schema = _schema(tmp_path, task)
    small = {"n_estimators": 5} if "n_estimators" in KINDS[kind].defaults else {}
    if kind == "hist_gbm":
        small = {"max_iter": 5}
    try:
        pipeline = build_pipeline(schema, kind, small)
    except EstimatorError as exc:
        # Only the pairs that make no sense are refused, with the kinds that do.
        assert (kind, task == "regression") in {
            ("logistic", True),
            ("linear", False),
            ("ridge", False),
        }
        assert "use one of" in str(exc)
        return
    X, y = _data(task)
    pipeline.fit(X, y)
    classes = None if task == "regression" else [c for c in pipeline.classes_.tolist()]
    payload = {
        "format": skops_artifact.SKOPS_FORMAT,
        "model_name": "m",
        "model_version": "v1",
        "features": [f.to_json() for f in schema.features],
        "pipeline": pipeline,
        "task": task,
        "classes": classes,
    }
    # Loads under the runtime's trusted types and answers exactly as the pipeline does.
    data = skops_artifact.checked_dumps(payload, X)
    assert set(skops_artifact.manifest_entry(data)["trusted_types"]) <= set(
        skops_artifact.sklearn_model.TRUSTED_TYPES
    )


def test_unknown_parameters_are_refused_with_the_valid_names() -> None:
    with pytest.raises(
        EstimatorError,
        match=r"RandomForestClassifier has no parameter\(s\) depth, trees; valid: bootstrap, ",
    ):
        build_pipeline(CHURN, "random_forest", {"trees": 3, "depth": 2})


def test_an_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(EstimatorError, match=r"'svm' is not one of gbm, hist_gbm, random_forest"):
        build_pipeline(CHURN, "svm")


def test_params_come_from_a_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text('{"max_depth": 3, "criterion": "gini"}')
    params = parse_param_args(path, ["max_depth=5", "criterion=entropy", "max_features=null"])
    assert params == {"max_depth": 5, "criterion": "entropy", "max_features": None}
    with pytest.raises(EstimatorError, match=r"--param 'max_depth' is not key=value"):
        parse_param_args(None, ["max_depth"])
    path.write_text("[1, 2]")
    with pytest.raises(EstimatorError, match=r"params\.json: expected a JSON object"):
        parse_param_args(path, [])


def test_describe_names_the_steps(tmp_path: Path) -> None:
    pipeline = build_pipeline(_schema(tmp_path, "binary"), "extra_trees")
    assert estimators.describe(pipeline) == (
        "ColumnTransformer(StandardScaler, OneHotEncoder) + ExtraTreesClassifier"
    )
    assert estimators.describe(build_pipeline(CHURN)) == (
        "StandardScaler + GradientBoostingClassifier"
    )

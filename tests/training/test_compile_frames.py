"""DataFrame pipelines (string categories, nulls, unknown categories) compile and pass parity.

Each pipeline is fitted on a small generated DataFrame with NaN cells and string (or
integer) categories, compiled, loaded with the runtime's own loader, and compared with
scikit-learn called the way the handler calls it (``inference.frames.FramePipeline``) on
rows with and without nulls and with unknown categories: within 1e-12, identical labels.
The compiled preprocessing alone is also compared with the fitted step's ``transform``,
exactly. The estimators take NaN-free input here (NaN routing in trees is not this file's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from inference import compiled_model, compiled_pipeline
from inference.frames import FramePipeline, to_frame
from inference.validation import schema_from_artifact
from serving.schema import UNKNOWN_CODE
from training.compile import compile_pipeline
from training.compile_preprocessing import preprocessing
from training.compile_support import UnsupportedModelError
from training.parity import PARITY_BOUND, check_parity, expected_outputs, labels_of
from training.parity_inputs import parity_rows

ISLANDS = ["Biscoe", "Dream", "Torgersen"]
SEXES = ["female", "male"]
SIZES = [1, 2, 3, 5]
ROWS = 300


def _feature(name: str, *, values: list[Any] | None = None, **flags: Any) -> dict[str, Any]:
    allowed: dict[str, Any] = (
        {"values": values} if values is not None else {"min": -10.0, "max": 110.0}
    )
    dtype = "categorical" if values is not None else "number"
    return {"name": name, "dtype": dtype, "allowed": allowed, "description": "", **flags}


FEATURES = [
    _feature("bill", nullable=True),
    _feature("mass"),
    _feature("island", values=ISLANDS, unknown="pass"),
    _feature("sex", values=SEXES, nullable=True, unknown="pass"),
    _feature("size", values=SIZES, nullable=True),
]
NUMERIC = ["bill", "mass"]


def _frame(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "bill": rng.normal(45, 5, ROWS).round(1),
            "mass": rng.uniform(30, 60, ROWS).round(2),
            "island": rng.choice(ISLANDS, ROWS).astype(object),
            "sex": rng.choice(SEXES, ROWS).astype(object),
            "size": rng.choice(SIZES, ROWS).astype(float),
        }
    )
    score = (df["bill"] - 45) / 5 + (df["island"] == "Dream") - 0.3 * df["size"] + 0.02 * df["mass"]
    y = (score + rng.normal(0, 0.5, ROWS) > 0).astype(np.int64).to_numpy()
    df.loc[rng.random(ROWS) < 0.15, "bill"] = np.nan
    df.loc[rng.random(ROWS) < 0.15, "sex"] = np.nan
    df.loc[rng.random(ROWS) < 0.1, "size"] = np.nan
    return df, y


def _rows(features: list[dict[str, Any]]) -> np.ndarray:
    """Model input rows: every null and unknown the schema lets through, and clean rows."""
    rng = np.random.default_rng(7)
    columns = []
    for spec in features:
        if spec["dtype"] == "categorical":
            columns.append(rng.integers(0, len(spec["allowed"]["values"]), 200).astype(float))
        else:
            columns.append(rng.uniform(30, 60, 200).round(2))
    X = np.column_stack(columns)
    for j, spec in enumerate(features):
        if spec.get("nullable"):
            X[::4, j] = np.nan
        if spec.get("unknown") == "pass":
            X[1::5, j] = UNKNOWN_CODE
    return X


def _check(pipeline: Any, features: list[dict[str, Any]], *, frame: bool = True) -> Any:
    """Compile, load, compare with scikit-learn; returns the loaded model."""
    data = compile_pipeline(
        pipeline,
        model_name="penguins",
        model_version="v1",
        features=features,
        task="binary" if len(pipeline.classes_) == 2 else "multiclass",
        classes=[c.item() for c in pipeline.classes_],
    )
    model = compiled_model.load(data)
    assert isinstance(model, compiled_pipeline.CompiledPipeline)
    X = _rows(features)
    assert np.isnan(X).any() or not any(f.get("nullable") for f in features)
    called = FramePipeline(pipeline, schema_from_artifact(features)) if frame else pipeline
    expected = expected_outputs(called, model.task, X)
    actual = model.outputs(X)
    assert np.max(np.abs(actual - expected)) <= PARITY_BOUND
    assert np.array_equal(labels_of(actual, model.task), labels_of(expected, model.task))
    # The preprocessing alone: exactly the fitted step's numbers.
    step = pipeline[:-1]
    inputs = to_frame(X, schema_from_artifact(features)) if frame else X
    transformed = step.transform(inputs)
    transformed = np.asarray(
        transformed.toarray() if hasattr(transformed, "toarray") else transformed, dtype=float
    )
    np.testing.assert_array_equal(model.preprocess.apply(X), transformed)
    report = check_parity(pipeline, data, X, features)
    assert report.passed and report.max_abs_diff <= PARITY_BOUND
    return model


def _ct(numeric: Any, categorical: Any, *, cat_columns: Any = None, **options: Any) -> Any:
    return ColumnTransformer(
        [
            ("num", numeric, NUMERIC),
            ("cat", categorical, cat_columns or ["island", "sex", "size"]),
        ],
        **options,
    )


def _fit(preprocess: Any, estimator: Any = None, seed: int = 0) -> Pipeline:
    df, y = _frame(seed)
    estimator = estimator if estimator is not None else LogisticRegression(max_iter=2000)
    return Pipeline([("pre", preprocess), ("model", estimator)]).fit(df, y)


def _impute_then(encoder: Any) -> Any:
    return make_pipeline(SimpleImputer(strategy="most_frequent"), encoder)


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
def test_simple_imputer_on_numeric_columns_fills_before_the_scaler(strategy: str) -> None:
    imputer = SimpleImputer(strategy=strategy, fill_value=40.0)
    pipeline = _fit(
        _ct(make_pipeline(imputer, StandardScaler()), OneHotEncoder(handle_unknown="ignore"))
    )
    model = _check(pipeline, FEATURES)
    bill = _frame()[0]["bill"].dropna()
    expected = {
        "mean": np.mean(bill.to_numpy()),
        "median": np.median(bill.to_numpy()),
        "most_frequent": bill.value_counts().sort_index(kind="stable").idxmax(),
        "constant": 40.0,
    }[strategy]
    # The bill column's fill is the imputer's statistic, before the scaler.
    filled = model.preprocess.fill
    assert filled is not None and filled[0].tolist() == [0, 1]  # bill and mass
    assert float(filled[1][0]) == pytest.approx(float(expected), rel=1e-12)
    assert model.preprocess.groups[0][0] == compiled_pipeline.STANDARD


@pytest.mark.parametrize(
    "encoder",
    [
        OneHotEncoder(handle_unknown="ignore"),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=60),
        OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=2),
        OneHotEncoder(handle_unknown="ignore", drop="if_binary"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=True),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    ],
    ids=[
        "ignore",
        "min-frequency",
        "max-categories",
        "drop-if-binary",
        "sparse",
        "float32",
        "ordinal",
    ],
)
def test_encoders_of_string_and_integer_categories_become_tables(encoder: Any) -> None:
    pipeline = _fit(_ct(make_pipeline(SimpleImputer(), MinMaxScaler()), _impute_then(encoder)))
    model = _check(pipeline, FEATURES)
    kinds = np.asarray(model.preprocess.input)
    assert len(kinds) == pipeline[-1].n_features_in_


def test_encoders_seeing_nan_as_a_category_and_a_sparse_column_transformer() -> None:
    # OneHotEncoder learns NaN as a category of its own; the ColumnTransformer's output is
    # sparse: the estimator receives a sparse matrix of the same numbers.
    pipeline = _fit(
        _ct(
            make_pipeline(SimpleImputer(strategy="median"), RobustScaler()),
            OneHotEncoder(handle_unknown="ignore", sparse_output=True),
            sparse_threshold=1.0,
        )
    )
    assert pipeline[0].sparse_output_
    _check(pipeline, FEATURES)


def test_one_hot_drop_first_with_error_on_unknown_and_features_that_refuse_unknowns() -> None:
    features = [dict(f) for f in FEATURES]
    for spec in features:
        spec.pop("unknown", None)
    pipeline = _fit(
        _ct(
            make_pipeline(SimpleImputer(), StandardScaler()),
            _impute_then(OneHotEncoder(drop="first")),
        )
    )
    _check(pipeline, features)


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=15, random_state=0),
        GradientBoostingClassifier(n_estimators=15, random_state=0),
    ],
    ids=["forest", "boosting"],
)
def test_tree_models_on_ordinal_codes_and_passthrough_remainder(estimator: Any) -> None:
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
    )
    preprocess = ColumnTransformer(
        [
            ("bill", SimpleImputer(strategy="median"), ["bill"]),
            ("cat", encoder, [2, 3, 4]),  # by index
        ],
        remainder="passthrough",
    )
    _check(_fit(preprocess, estimator), FEATURES)


def test_remainder_dropped_and_a_top_level_chain_of_imputer_and_scaler() -> None:
    preprocess = ColumnTransformer(
        [("num", make_pipeline(SimpleImputer(), StandardScaler()), ["bill"])], remainder="drop"
    )
    model = _check(_fit(preprocess), FEATURES)
    assert model.preprocess.input.tolist() == [0]
    numeric = FEATURES[:2]
    df, y = _frame()
    chain = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression())
    _check(chain.fit(df[NUMERIC], y), numeric)


def test_scalers_pass_nan_through_as_scikit_learn_does() -> None:
    # No imputer: a null leaves every scaler as NaN (the estimator's to handle).
    df, _ = _frame()
    features = schema_from_artifact(FEATURES)
    X = _rows(FEATURES)
    for scaler in (StandardScaler(), MinMaxScaler(clip=True), RobustScaler()):
        ct = _ct(scaler, OneHotEncoder(handle_unknown="ignore")).fit(df)
        arrays = preprocessing(ct, len(FEATURES), features, frame=True).arrays()
        actual = compiled_pipeline._Preprocess(arrays, len(FEATURES)).apply(X)
        expected = np.asarray(ct.transform(to_frame(X, features)), dtype=float)
        assert np.isnan(actual[:, 0]).sum() == np.isnan(X[:, 0]).sum() > 0
        np.testing.assert_array_equal(actual, expected)


def test_codes_model_with_nullable_categories_reads_tables_of_its_codes() -> None:
    df, y = _frame()
    codes = np.column_stack(
        [
            df["bill"],
            df["mass"],
            df["island"].map(ISLANDS.index),
            df["sex"].map({s: i for i, s in enumerate(SEXES)}),
            df["size"].map({float(s): i for i, s in enumerate(SIZES)}),
        ]
    ).astype(float)
    preprocess = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1]),
            ("cat", _impute_then(OneHotEncoder(handle_unknown="ignore")), [2, 3, 4]),
        ]
    )
    pipeline = Pipeline([("pre", preprocess), ("lr", LogisticRegression())]).fit(codes, y)
    model = _check(pipeline, FEATURES, frame=False)
    kinds = set(np.unique(model.preprocess.groups[-1][0]).tolist())
    assert compiled_pipeline.TABLE in kinds


def test_parity_rows_hold_nulls_and_unknowns_only_where_the_schema_allows() -> None:
    X = parity_rows(np.empty((0, len(FEATURES))), FEATURES)
    nulls, unknowns = np.isnan(X).mean(axis=0), (X == UNKNOWN_CODE).mean(axis=0)
    # -1.0 is a number like any other for a numeric feature.
    assert nulls[1] == nulls[2] == 0 and unknowns[4] == 0
    assert 0.05 < nulls[0] < 0.15 and 0.05 < nulls[3] < 0.15 and 0.05 < nulls[4] < 0.15
    assert 0.05 < unknowns[2] < 0.15 and 0.05 < unknowns[3] < 0.15


def test_bundled_wine_with_nan_and_a_string_column_multiclass() -> None:
    data = load_wine(as_frame=True)
    df = data.frame.drop(columns="target").iloc[:, :5].copy()
    rng = np.random.default_rng(3)
    df.loc[rng.random(len(df)) < 0.1, "alcohol"] = np.nan
    df["grade"] = np.where(df["ash"] > df["ash"].median(), "high", "low").astype(object)
    numeric = list(df.columns[:5])
    features = [_feature(c, nullable=c == "alcohol") for c in numeric]
    features.append(_feature("grade", values=["high", "low"], unknown="pass"))
    for spec in features[:5]:
        spec["allowed"] = {
            "min": float(df[spec["name"]].min()),
            "max": float(df[spec["name"]].max()),
        }
    preprocess = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["grade"]),
        ]
    )
    pipeline = Pipeline([("pre", preprocess), ("lr", LogisticRegression(max_iter=5000))])
    pipeline.fit(df, data.target)
    model = compiled_model.load(
        compile_pipeline(
            pipeline,
            model_name="wine",
            model_version="v1",
            features=features,
            task="multiclass",
            classes=[0, 1, 2],
        )
    )
    X = parity_rows(np.empty((0, 6)), features)[:2000]
    assert np.isnan(X[:, 0]).any() and (X[:, 5] == UNKNOWN_CODE).any()
    expected = FramePipeline(pipeline, schema_from_artifact(features)).predict_proba(X)
    actual = model.outputs(X)
    assert np.max(np.abs(actual - expected)) <= PARITY_BOUND
    assert np.array_equal(actual.argmax(axis=1), expected.argmax(axis=1))


def test_bundled_breast_cancer_with_nan_and_a_string_column_boosting() -> None:
    data = load_breast_cancer(as_frame=True)
    df = data.frame.drop(columns="target").iloc[:, :4].copy()
    rng = np.random.default_rng(4)
    first = df.columns[0]
    df.loc[rng.random(len(df)) < 0.1, first] = np.nan
    df["texture_band"] = pd.cut(df.iloc[:, 1], 3, labels=["lo", "mid", "hi"]).astype(object)
    df.loc[rng.random(len(df)) < 0.1, "texture_band"] = np.nan
    numeric = list(df.columns[:4])
    features = [_feature(c, nullable=c == first) for c in numeric]
    for spec in features:
        spec["allowed"] = {
            "min": float(df[spec["name"]].min()),
            "max": float(df[spec["name"]].max()),
        }
    features.append(_feature("texture_band", values=["hi", "lo", "mid"], nullable=True))
    preprocess = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), numeric),
            ("cat", _impute_then(OneHotEncoder(sparse_output=False)), ["texture_band"]),
        ]
    )
    pipeline = Pipeline(
        [("pre", preprocess), ("gb", GradientBoostingClassifier(n_estimators=20, random_state=0))]
    ).fit(df, data.target)
    data_bytes = compile_pipeline(pipeline, model_name="bc", model_version="v1", features=features)
    X = parity_rows(np.empty((0, 5)), features)
    report = check_parity(pipeline, data_bytes, X[:100], features)
    assert report.passed and report.tie_rows > 0 and report.max_abs_diff <= PARITY_BOUND


@pytest.mark.parametrize(
    ("preprocess", "message"),
    [
        (
            _ct(
                make_pipeline(SimpleImputer(), SimpleImputer(add_indicator=True)),
                OneHotEncoder(handle_unknown="ignore"),
            ),
            r"SimpleImputer \+ SimpleImputer \(ColumnTransformer step 'num'\): "
            r"SimpleImputer\(add_indicator=True\) after another step",
        ),
        (
            _ct(make_pipeline(StandardScaler(), SimpleImputer()), OneHotEncoder()),
            r"StandardScaler \+ SimpleImputer .*a SimpleImputer after a scaler",
        ),
        (
            _ct(
                SimpleImputer(),
                OneHotEncoder(handle_unknown="ignore"),
                remainder="drop",
                cat_columns=["island", "sex", "size", "mass"],
            ),
            r"over numeric column\(s\) 'mass'",
        ),
    ],
    ids=["second-indicator", "imputer-after-scaler", "encoder-over-a-number"],
)
def test_unsupported_preprocessing_is_refused_naming_the_step(
    preprocess: Any, message: str
) -> None:
    pipeline = _fit(preprocess)
    with pytest.raises(UnsupportedModelError, match=message) as refused:
        compile_pipeline(pipeline, model_name="m", model_version="v1", features=FEATURES)
    assert str(refused.value).endswith("runtime 'sklearn' serves this model")


def test_a_frame_model_whose_columns_differ_from_the_schema_is_refused_naming_both() -> None:
    pipeline = _fit(_ct(SimpleImputer(), OneHotEncoder(handle_unknown="ignore")))
    swapped = [FEATURES[1], FEATURES[0], *FEATURES[2:]]
    with pytest.raises(ValueError, match=r"column 1 of the model is 'bill', of the schema 'mass'"):
        compile_pipeline(pipeline, model_name="m", model_version="v1", features=swapped)


def test_frame_dtypes_are_the_ones_the_tables_are_probed_with() -> None:
    # A pandas "category" column: the encoder sees what the handler's DataFrame holds.
    df, y = _frame()
    df["island"] = pd.Categorical(df["island"], categories=ISLANDS)
    dtypes = {"island": "category"}
    pipeline = Pipeline(
        [
            (
                "pre",
                _ct(
                    SimpleImputer(),
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=-1,
                        encoded_missing_value=-2,
                    ),
                ),
            ),
            ("lr", LogisticRegression(max_iter=2000)),
        ]
    ).fit(df, y)
    data = compile_pipeline(
        pipeline, model_name="m", model_version="v1", features=FEATURES, frame_dtypes=dtypes
    )
    X = _rows(FEATURES)
    called = FramePipeline(pipeline, schema_from_artifact(FEATURES), dtypes)
    expected = called.predict_proba(X)[:, 1]
    assert np.max(np.abs(compiled_model.load(data).outputs(X) - expected)) <= PARITY_BOUND
    report = check_parity(pipeline, data, X, FEATURES, frame_dtypes=dtypes)
    assert report.passed and report.label_mismatches == 0


@pytest.mark.parametrize(
    "numeric",
    [
        SimpleImputer(add_indicator=True),
        make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
        make_pipeline(SimpleImputer(add_indicator=True), MinMaxScaler(clip=True)),
    ],
    ids=["alone", "then-standard", "then-minmax"],
)
def test_missing_value_indicators_are_read_from_the_null_itself(numeric: Any) -> None:
    categorical = _impute_then(OneHotEncoder(handle_unknown="ignore"))
    categorical.steps[0][1].set_params(add_indicator=True)
    model = _check(_fit(_ct(numeric, categorical)), FEATURES)
    kinds = model.preprocess.input.shape[0]
    missing = [g for g in model.preprocess.groups if g[0] == compiled_pipeline.MISSING]
    assert kinds == model.estimator.coef.shape[-1] and len(missing) == 1
    # bill is the only numeric input with nulls at fit time: one indicator column, on bill.
    assert model.preprocess.input[missing[0][1]].tolist() == [0]


def test_the_issues_pipeline_imputed_numbers_and_one_hot_strings_into_hist_boosting() -> None:
    # No NaN reaches the trees here (imputed, one-hot): missing-value routing inside
    # HistGradientBoosting is not needed.
    preprocess = _ct(
        make_pipeline(SimpleImputer(), StandardScaler()),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        cat_columns=["island", "sex"],
    )
    estimator = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model = _check(_fit(preprocess, estimator), FEATURES)
    assert compiled_pipeline.TABLE in {g[0] for g in model.preprocess.groups}

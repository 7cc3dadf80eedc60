"""Pipelines fitted on a pandas DataFrame, served by the sklearn runtime through the real
handler: string categories, NaN kept, unknown categories passed to the encoder.

The pipeline is the one people write (issue 21): a ColumnTransformer imputing and scaling
the numbers and one-hot encoding the strings with ``handle_unknown="ignore"``, feeding a
HistGradientBoostingClassifier. Its answers must equal ``predict_proba`` on the original
DataFrame rows, nulls and unknown categories included.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from inference import handler as handler_module
from inference import sklearn_model
from inference.frames import FRAME_INPUT, to_frame
from inference.validation import parse_instances, schema_from_artifact
from serving.schema import UNKNOWN_CODE
from tests.handler.conftest import FakeLambdaContext, capture_lines

FEATURES: list[dict[str, Any]] = [
    {"name": "bill", "dtype": "number", "allowed": {"min": 0, "max": 100}},
    {"name": "flipper", "dtype": "number", "allowed": {"min": 0, "max": 300}, "nullable": True},
    {
        "name": "island",
        "dtype": "categorical",
        "allowed": {"values": ["Biscoe", "Dream"]},
        "unknown": "pass",
    },
    {
        "name": "sex",
        "dtype": "categorical",
        "allowed": {"values": ["female", "male"]},
        "nullable": True,
        "unknown": "pass",
    },
]
NAMES = [entry["name"] for entry in FEATURES]
# Served rows: clean, null number, null category, unknown categories, all of them at once.
REQUESTS: list[dict[str, Any]] = [
    {"bill": 39.1, "flipper": 181.0, "island": "Biscoe", "sex": "male"},
    {"bill": 46.5, "flipper": None, "island": "Dream", "sex": "female"},
    {"bill": 50.0, "flipper": 222.0, "island": "Biscoe", "sex": None},
    {"bill": 44.0, "flipper": 199.0, "island": "Torgersen", "sex": "unknown-sex"},
    {"bill": 36.2, "flipper": None, "island": "Torgersen", "sex": None},
]


def training_frame(rows: int = 400, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "bill": rng.uniform(32, 60, rows).round(1),
            "flipper": rng.uniform(170, 232, rows).round(0),
            "island": rng.choice(["Biscoe", "Dream"], rows),
            "sex": rng.choice(["female", "male"], rows),
        }
    )
    frame.loc[::7, "flipper"] = np.nan
    frame.loc[::9, "sex"] = np.nan
    y = ((frame["bill"] > 45) ^ (frame["island"] == "Dream")).to_numpy().astype(int)
    return frame, y


def frame_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame, y = training_frame()
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["bill", "flipper"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"]),
        ]
    )
    pipeline = Pipeline([("pre", pre), ("model", HistGradientBoostingClassifier(max_iter=30))])
    return pipeline.fit(frame, y), frame


def payload(pipeline: Any, frame: pd.DataFrame | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": sklearn_model.FORMAT,
        "model_name": "penguins",
        "model_version": "v1",
        "task": "binary",
        "classes": [0, 1],
        "features": FEATURES,
        "pipeline": pipeline,
    }
    if frame is not None:
        out |= {"input": FRAME_INPUT, "frame_dtypes": {k: str(v) for k, v in frame.dtypes.items()}}
    return out | extra


def write(directory: Path, data: dict[str, Any]) -> dict[str, str]:
    path = directory / "model.joblib"
    joblib.dump(data, path)
    return {
        "MODEL_NAME": "penguins",
        "MODEL_VERSION": "v1",
        "MODEL_PATH": str(path),
        "MODEL_SHA256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "MODEL_RUNTIME": "sklearn",
        "AWS_LAMBDA_FUNCTION_VERSION": "3",
    }


def as_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as the user's DataFrame holds them: NaN where the request sent null."""
    frame = pd.DataFrame(records, columns=NAMES)
    return frame.fillna(value=np.nan).astype({"bill": "float64", "flipper": "float64"})


@pytest.fixture(scope="module")
def fitted() -> tuple[Pipeline, pd.DataFrame]:
    return frame_pipeline()


def test_a_frame_model_answers_as_predict_proba_on_the_original_rows(
    fitted: tuple[Pipeline, pd.DataFrame],
    tmp_path: Path,
    fresh_environment: Callable[[dict[str, str]], Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pipeline, frame = fitted
    state = fresh_environment(
        write(tmp_path, payload(pipeline, frame)) | {"CAPTURE_SAMPLE_RATE": "1"}
    )
    assert isinstance(state, handler_module.Ready), state
    expected = pipeline.predict_proba(as_frame(REQUESTS))[:, 1]
    # The unknowns change the answer (else the test could not tell them from a code).
    assert not math.isclose(
        expected[3], pipeline.predict_proba(as_frame([{**REQUESTS[3], "island": "Biscoe"}]))[0, 1]
    )
    capsys.readouterr()
    batch = handler_module.handler({"instances": REQUESTS}, FakeLambdaContext())
    assert batch["statusCode"] == 200, batch
    served = np.array([row["probability"] for row in batch["predictions"]])
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)
    # Capture keeps what each request sent: null as null, an unknown as its value.
    assert [record["features"] for record in capture_lines(capsys.readouterr().out)] == [
        {name: row[name] for name in NAMES} for row in REQUESTS
    ]
    for row, p in zip(REQUESTS, expected, strict=True):
        single = handler_module.handler(dict(row), FakeLambdaContext())
        assert abs(single["probability"] - p) <= 1e-12, (row, single)


def test_a_codes_model_gets_nan_and_minus_one_in_its_matrix(
    tmp_path: Path, fresh_environment: Callable[[dict[str, str]], Any]
) -> None:
    # A model fitted on a numpy array (the codes contract): no DataFrame, the matrix itself.
    schema = schema_from_artifact(FEATURES)
    frame, y = training_frame()
    codes = np.column_stack(
        [
            frame["bill"],
            frame["flipper"],
            frame["island"].map({"Biscoe": 0.0, "Dream": 1.0}),
            frame["sex"].map({"female": 0.0, "male": 1.0}),
        ]
    ).astype(np.float64)
    model = HistGradientBoostingClassifier(max_iter=20).fit(codes, y)
    fresh_environment(write(tmp_path, payload(model, None)))
    X = parse_instances({"instances": REQUESTS}, schema, max_batch_size=10).X
    assert X[3, 2] == UNKNOWN_CODE and math.isnan(X[1, 1]) and math.isnan(X[2, 3])
    batch = handler_module.handler({"instances": REQUESTS}, FakeLambdaContext())
    assert [row["probability"] for row in batch["predictions"]] == (
        model.predict_proba(X)[:, 1].tolist()
    )


def test_the_loader_refuses_a_frame_pipeline_fitted_on_other_columns(
    fitted: tuple[Pipeline, pd.DataFrame],
) -> None:
    pipeline, frame = fitted
    swapped = [FEATURES[0], FEATURES[1], FEATURES[3], FEATURES[2]]
    data = joblib_bytes(payload(pipeline, frame, features=swapped))
    with pytest.raises(
        sklearn_model.SklearnModelError,
        match=r"column 3 of the model is 'island', of the artifact's features 'sex'",
    ):
        sklearn_model.load(data)


def test_the_loader_refuses_a_frame_payload_without_feature_names() -> None:
    frame, y = training_frame()
    model = LogisticRegression().fit(frame[["bill"]].to_numpy(), y)
    one = [FEATURES[0]]
    data = joblib_bytes(payload(model, None, features=one, input=FRAME_INPUT))
    with pytest.raises(sklearn_model.SklearnModelError, match="no feature_names_in_"):
        sklearn_model.load(data)
    with pytest.raises(sklearn_model.SklearnModelError, match="artifact input is 'table'"):
        sklearn_model.load(joblib_bytes(payload(model, None, features=one, input="table")))


def test_the_loader_refuses_frame_dtypes_for_a_column_it_does_not_have(
    fitted: tuple[Pipeline, pd.DataFrame],
) -> None:
    pipeline, frame = fitted
    data = payload(pipeline, frame)
    data["frame_dtypes"]["beak"] = "float64"
    with pytest.raises(
        sklearn_model.SklearnModelError, match="frame_dtypes names no feature: 'beak'"
    ):
        sklearn_model.load(joblib_bytes(data))


def joblib_bytes(data: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(data, buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- to_frame


def test_an_unknown_in_a_category_column_stays_itself_not_missing() -> None:
    schema = schema_from_artifact(FEATURES)
    X = np.array([[40.0, math.nan, UNKNOWN_CODE, math.nan], [41.0, 190.0, 1.0, UNKNOWN_CODE]])
    unknown = {(0, 2): "Torgersen", (1, 3): "other"}
    out = to_frame(X, schema, unknown=unknown, dtypes={"island": "category", "sex": "category"})
    assert out["island"].tolist() == ["Torgersen", "Dream"]
    assert math.isnan(out["sex"][0]) and out["sex"][1] == "other"
    assert list(out["island"].cat.categories) == ["Biscoe", "Dream", "Torgersen"]


def test_to_frame_gives_each_column_its_fitted_dtype_and_nan_for_null() -> None:
    schema = schema_from_artifact(FEATURES)
    X = np.array([[40.0, math.nan, 0.0, math.nan]])
    out = to_frame(X, schema, dtypes={"island": "str", "sex": "str"})
    assert list(out.columns) == NAMES
    assert str(out["island"].dtype) == "str" and out["island"][0] == "Biscoe"
    assert math.isnan(out["flipper"][0]) and out["sex"].isna()[0]

"""python -m training.package on pipelines fitted on DataFrames (issue 21): packaged
unchanged from skops and joblib with a holdout that keeps its empty cells, served by the
sklearn runtime with the pipeline's own answers on the user's DataFrame rows; checked
against the schema (a mismatch refused naming the step and the column, exit 2, nothing
written); the schema drafted by --write-schema packages as it is.

Both runtimes are held to it: the sklearn runtime's and the compiled runtime's answers
on the golden rows (nulls included) equal predict_proba on the DataFrame rows within 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from inference import sklearn_model
from serving import artifacts
from serving.golden_sets import instances
from tests.training.frame_data import (
    PENGUIN_FEATURES,
    breast_cancer,
    issue_pipeline,
    penguin_schema,
    penguins,
    write_json,
)
from training import golden, package


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The issue's pipeline fitted on the penguins' training rows, saved both ways, and
    the holdout CSV with its empty cells (and the columns the model does not read)."""
    folder = tmp_path_factory.mktemp("penguins")
    train, holdout = penguins()
    pipeline = issue_pipeline().fit(train[PENGUIN_FEATURES], train["species"])
    skops_file, joblib_file = folder / "penguins.skops", folder / "penguins.joblib"
    skops.io.dump(pipeline, skops_file)
    joblib.dump(pipeline, joblib_file)
    holdout_csv = folder / "holdout.csv"
    holdout.to_csv(holdout_csv, index=False)
    train_csv = folder / "train.csv"
    train.to_csv(train_csv, index=False)
    return {
        "pipeline": pipeline,
        "skops": skops_file,
        "joblib": joblib_file,
        "holdout": holdout_csv,
        "train": train_csv,
    }


def _package(tmp_path: Path, estimator: Path, schema: Path, *extra: str) -> int:
    return package.main(
        ["--model", "penguins", "--version", "v1", "--schema", str(schema),
         "--estimator", str(estimator), "--output", str(tmp_path / "out"), *extra]
    )  # fmt: skip


def _served_answers(version: Path, key: str = "sklearn") -> np.ndarray:
    manifest = json.loads((version / "manifest.json").read_text())
    document = json.loads((version / "golden.json").read_text())
    data = (version / manifest["artifacts"][key]["file"]).read_bytes()
    X = np.asarray(
        [[np.nan if v is None else v for v in row] for row in document["features"]], dtype=float
    )
    return golden.predict(key, data, X)


@pytest.mark.parametrize("kind", ["skops", "joblib"])
def test_the_issues_pipeline_packages_unchanged_and_serves_its_own_answers(
    tmp_path: Path, fitted: dict[str, Any], kind: str
) -> None:
    schema = write_json(tmp_path / "penguins.json", penguin_schema())
    assert _package(tmp_path, fitted[kind], schema, "--data", str(fitted["holdout"])) == 0
    version = tmp_path / "out/penguins/v1"
    assert artifacts.verify_version(version) == []
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["model_input"] == "frame"
    assert manifest["feature_order"]["source"] == "feature_names_in_"
    payload = joblib.load(version / "model.joblib")
    assert payload["input"] == "frame"
    assert list(payload["frame_dtypes"]) == PENGUIN_FEATURES
    assert payload["frame_dtypes"]["bill_length_mm"] == "float64"
    # Unchanged: the very pipeline, not a rewrite of it.
    assert type(payload["pipeline"]).__name__ == "Pipeline"
    assert payload["pipeline"].feature_names_in_.tolist() == PENGUIN_FEATURES
    # The golden rows include the holdout's rows with nulls, sent as JSON null.
    document = json.loads((version / "golden.json").read_text())
    requests = instances(document)
    assert any(row["sex"] is None for row in requests)
    assert any(row["bill_length_mm"] is None for row in requests)
    # What the sklearn runtime answers from the written bytes equals predict_proba on the
    # user's own DataFrame of the same rows (pandas.read_csv: NA kept), nulls included.
    own = pd.DataFrame(requests)[PENGUIN_FEATURES]
    expected = fitted["pipeline"].predict_proba(own)
    assert np.max(np.abs(_served_answers(version) - expected)) <= 1e-9
    # And by the compiled runtime, which took the pipeline (parity held through the frame).
    assert "compiled" in manifest["artifacts"], manifest.get("compiled_runtime")
    assert np.max(np.abs(_served_answers(version, "compiled") - expected)) <= 1e-9
    assert manifest["quality_gate"]["status"] == "passed"
    assert manifest["metrics"]["accuracy"] > 0.9


def test_a_bundled_dataset_with_nan_and_a_string_column_packages_from_joblib(
    tmp_path: Path,
) -> None:
    train, holdout, numeric = breast_cancer()
    features = [*numeric, "size_band"]
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    band = make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder())
    pre = ColumnTransformer([("num", numbers, numeric), ("band", band, ["size_band"])])
    pipeline = Pipeline(
        [("pre", pre), ("clf", RandomForestClassifier(n_estimators=20, random_state=0))]
    ).fit(train[features], train["diagnosis"])  # fmt: skip
    estimator = tmp_path / "cancer.joblib"
    joblib.dump(pipeline, estimator)
    data = tmp_path / "holdout.csv"
    holdout.to_csv(data, index=False)
    draft = tmp_path / "cancer.yaml"
    argv = ["--estimator", str(estimator), "--data", str(data), "--write-schema", str(draft)]
    assert package.main(argv) == 0
    text = draft.read_text()
    assert "widened by 10% of the range" in text
    schema = json.loads(json.dumps(__import__("yaml").safe_load(text)))
    assert [f["name"] for f in schema["features"]] == features
    band = schema["features"][-1]
    assert band["values"] == ["large", "medium", "small"] and band["nullable"] is True
    assert "unknown" not in band  # OrdinalEncoder(handle_unknown="error") refuses them
    assert schema["task"] == "binary" and schema["label"] == "diagnosis"
    code = package.main(
        ["--model", "cancer", "--version", "v1", "--schema", str(draft), "--estimator",
         str(estimator), "--data", str(data), "--output", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0
    version = tmp_path / "out/cancer/v1"
    requests = instances(json.loads((version / "golden.json").read_text()))
    assert any(row["size_band"] is None for row in requests)
    own = pd.DataFrame(requests)[features]
    expected = pipeline.predict_proba(own)[:, 1]
    assert np.max(np.abs(_served_answers(version) - expected)) <= 1e-9
    manifest = json.loads((version / "manifest.json").read_text())
    assert "compiled" in manifest["artifacts"], manifest.get("compiled_runtime")
    assert np.max(np.abs(_served_answers(version, "compiled") - expected)) <= 1e-9


def test_the_drafted_schema_unedited_packages_the_same_pipeline(
    tmp_path: Path, fitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "penguins.yaml"
    argv = ["--estimator", str(fitted["skops"]), "--data", str(fitted["holdout"])]
    assert package.main([*argv, "--write-schema", str(draft), "--label", "species"]) == 0
    err = capsys.readouterr().err
    assert "review before packaging" in err and f"--schema {draft}" in err
    assert not (tmp_path / "out").exists()  # packages nothing
    document = __import__("yaml").safe_load(draft.read_text())
    features = {f["name"]: f for f in document["features"]}
    assert list(features) == PENGUIN_FEATURES
    assert features["island"]["values"] == ["Biscoe", "Dream", "Torgersen"]
    assert features["island"]["unknown"] == "pass"  # OneHotEncoder(handle_unknown="ignore")
    assert features["sex"]["nullable"] is True and "nullable" not in features["island"]
    # Ranges cover the data with the stated margin: at least the data's own range.
    holdout = pd.read_csv(fitted["holdout"])
    assert features["body_mass_g"]["type"] == "integer"
    assert features["body_mass_g"]["min"] <= holdout["body_mass_g"].min()
    assert features["bill_depth_mm"]["max"] >= holdout["bill_depth_mm"].max()
    assert _package(tmp_path, fitted["skops"], draft, "--data", str(fitted["holdout"])) == 0
    # Again without data: checked on generated rows (nulls and unknown categories).
    other = tmp_path / "again"
    assert _package(other, fitted["joblib"], draft, "--no-compiled") == 0
    payload = joblib.load(other / "out/penguins/v1/model.joblib")
    assert payload["frame_dtypes"]["island"] == "object"


def test_a_schema_the_encoders_disagree_with_is_refused_naming_step_and_column(
    tmp_path: Path, fitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "unlisted": (
            penguin_schema(island={"values": ["Biscoe", "Dream"]}),
            "step 'pre' > transformer 'cat', column 'island': the encoder knows 'Torgersen', "
            "which the schema does not list",
        ),
        "numeric": (
            penguin_schema(sex={"type": "integer", "min": 0, "max": 1, "values": None}),
            "column 'sex': the schema says integer but the encoder's categories are strings",
        ),
        "order": (
            {**penguin_schema(), "features": penguin_schema()["features"][::-1]},
            "column 1 of the model is 'bill_length_mm', of the schema 'sex'",
        ),
    }
    for name, (document, message) in cases.items():
        if name == "numeric":
            entry = document["features"][5]
            for key in ("values", "unknown"):
                entry.pop(key)
        schema = write_json(tmp_path / f"{name}.json", document)
        assert _package(tmp_path, fitted["skops"], schema) == 2, name
        assert message in capsys.readouterr().err, name
    assert not (tmp_path / "out").exists()


def test_an_encoder_that_refuses_unknowns_is_checked_against_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, _ = penguins()
    strict = make_pipeline(SimpleImputer(strategy="constant", fill_value="none"), OneHotEncoder())
    pipeline = issue_pipeline(encoder=strict).fit(train[PENGUIN_FEATURES], train["species"])
    estimator = tmp_path / "strict.skops"
    skops.io.dump(pipeline, estimator)
    path = "step 'pre' > transformer 'cat' > step 'onehotencoder', column 'island'"
    schema = write_json(tmp_path / "pass.json", penguin_schema())
    assert _package(tmp_path, estimator, schema) == 2
    err = capsys.readouterr().err
    assert f"{path}: the schema passes unknown values (unknown: pass)" in err
    extra = penguin_schema(island={"values": ["Biscoe", "Dream", "Torgersen", "Anvers"]})
    for feature in extra["features"]:
        feature.pop("unknown", None)
    schema = write_json(tmp_path / "extra.json", extra)
    assert _package(tmp_path, estimator, schema) == 2
    assert f"{path}: the schema lists 'Anvers', which the encoder does not know" in (
        capsys.readouterr().err
    )
    # Without an imputer before it, a null would reach the strict encoder.
    known = train["sex"].notna()
    bare = issue_pipeline(encoder=OneHotEncoder())
    bare.fit(train.loc[known, PENGUIN_FEATURES], train.loc[known, "species"])
    skops.io.dump(bare, estimator)
    nullable = penguin_schema(island={"nullable": True})
    for feature in nullable["features"]:
        feature.pop("unknown", None)
    schema = write_json(tmp_path / "nullable.json", nullable)
    assert _package(tmp_path, estimator, schema) == 2
    assert (
        "step 'pre' > transformer 'cat', column 'island': the schema says nullable, but a "
        "null would reach an encoder that never saw a missing value" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_answers_that_differ_from_the_users_dataframe_are_refused_naming_row_and_column(
    tmp_path: Path, fitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # pandas keeps a trailing space that the CSV loader (like a request's value) does not:
    # the pipeline sees 'Dream ' as an unknown island in the user's own DataFrame. The
    # first row whose answer that changes is edited.
    lines = fitted["holdout"].read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("island")
    own = pd.read_csv(fitted["holdout"])[PENGUIN_FEATURES]
    row = next(
        i + 1
        for i in range(len(own))
        if own.loc[i, "island"] == "Dream"
        and not np.allclose(
            fitted["pipeline"].predict_proba(own.iloc[[i]].replace("Dream", "Dream ")),
            fitted["pipeline"].predict_proba(own.iloc[[i]]),
        )
    )
    cells = lines[row].split(",")
    cells[column] = "Dream "
    lines[row] = ",".join(cells)
    data = tmp_path / "holdout.csv"
    data.write_text("\n".join(lines) + "\n")
    schema = write_json(tmp_path / "penguins.json", penguin_schema())
    assert _package(tmp_path, fitted["joblib"], schema, "--data", str(data)) == 2
    err = capsys.readouterr().err
    assert f"row {row} of the data" in err
    assert "column 'island' differs: the handler sends 'Dream', your data has 'Dream '" in err
    assert not (tmp_path / "out").exists()


def test_a_refused_skops_type_names_the_step_that_holds_it(
    tmp_path: Path,
    fitted: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The standard steps load through skops with the runtime's TRUSTED_TYPES...
    assert "numpy.dtype" in sklearn_model.TRUSTED_TYPES
    loaded = sklearn_model._load_skops(fitted["skops"].read_bytes())
    assert loaded.feature_names_in_.tolist() == PENGUIN_FEATURES
    # ...and a type that is not trusted is named with the step that holds it.
    without = tuple(t for t in sklearn_model.TRUSTED_TYPES if t != "numpy.dtype")
    monkeypatch.setattr(sklearn_model, "TRUSTED_TYPES", without)
    schema = write_json(tmp_path / "penguins.json", penguin_schema())
    assert _package(tmp_path, fitted["skops"], schema) == 2
    err = capsys.readouterr().err
    assert "holds types that are not trusted: ['numpy.dtype']" in err
    assert (
        "numpy.dtype in step 'pre' > transformer 'num' > step 'simpleimputer' "
        "(attribute '_fit_dtype')" in err
    )
    assert not (tmp_path / "out").exists()


def test_an_unlisted_category_in_the_holdout_reaches_the_encoder_as_itself(
    tmp_path: Path, fitted: dict[str, Any]
) -> None:
    # unknown: pass with OneHotEncoder(handle_unknown="ignore"): the row is judged with its
    # raw value (the answers check compares it with the user's own DataFrame row), and
    # left out of the golden set, whose rows are sent as requests by their codes.
    frame = pd.read_csv(fitted["holdout"])
    frame.loc[3, "island"] = "Anvers"
    data = tmp_path / "holdout.csv"
    frame.to_csv(data, index=False)
    schema = write_json(tmp_path / "penguins.json", penguin_schema())
    assert _package(tmp_path, fitted["joblib"], schema, "--data", str(data)) == 0
    version = tmp_path / "out/penguins/v1"
    document = json.loads((version / "golden.json").read_text())
    assert document["rows"] == len(frame) - 1
    assert all(row["island"] != "Anvers" for row in instances(document))
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["metrics"]["holdout_rows"] == len(frame)
    island = next(f for f in manifest["features"] if f["name"] == "island")
    assert island["observed"]["values"] == ["Biscoe", "Dream", "Torgersen"]


def test_the_skops_round_trip_of_a_frame_payload_is_judged_through_its_frame(
    fitted: dict[str, Any],
) -> None:
    from serving.schema import schema_from_document
    from training import skops_artifact

    schema = schema_from_document(Path("p.json"), penguin_schema())
    pipeline = fitted["pipeline"]
    payload = {
        "format": skops_artifact.SKOPS_FORMAT,
        "model_name": "penguins",
        "model_version": "v1",
        "features": [spec.to_json() for spec in schema.features],
        "pipeline": pipeline,
        "task": "multiclass",
        "classes": pipeline.classes_.tolist(),
        "input": "frame",
        "frame_dtypes": {name: "object" for name in ("island", "sex")},
    }
    X = np.array([[39.1, 18.7, 181.0, 3750.0, 2.0, 1.0], [np.nan] * 4 + [0.0, np.nan]])
    data = skops_artifact.checked_dumps(payload, X)
    loaded = sklearn_model.load(data)
    own = pd.DataFrame(
        {**dict(zip(PENGUIN_FEATURES[:4], X[:, :4].T, strict=True)),
         "island": ["Torgersen", "Biscoe"], "sex": ["male", np.nan]}
    )  # fmt: skip
    assert np.max(np.abs(loaded.outputs(X) - pipeline.predict_proba(own))) <= 1e-9

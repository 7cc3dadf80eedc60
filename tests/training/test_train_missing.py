"""`python -m training.train` on CSVs as people keep them (issue 21): a column the schema
does not list is ignored and named, a nullable feature's empty/NA/NaN/null cells train,
and the built-in pipelines impute where the schema says nullable (HistGradientBoosting
takes NaN itself). Both runtimes' artifacts are written and answer requests with nulls
and unknown categories through the real handler alike."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from serving.schema import schema_from_document
from tests.handler.conftest import FakeLambdaContext
from tests.training.frame_data import PENGUIN_FEATURES, penguin_schema, write_json
from training import estimators, train
from training.schema import FEATURE_NAMES, LABEL
from training.synthetic import generate

CHURN_SCHEMA = Path(__file__).resolve().parents[2] / "training/schemas/churn.json"
NULLABLE = ("monthly_charges", "total_charges")
MISSING_CELLS = ("", "NA", "NaN", "null")


def _churn_with_gaps(folder: Path) -> tuple[Path, Path]:
    """The churn schema with two nullable features, and a CSV with a customer_id column
    and a missing cell, written four ways, in about one row in ten of those features."""
    document = json.loads(CHURN_SCHEMA.read_text())
    for feature in document["features"]:
        if feature["name"] in NULLABLE:
            feature["nullable"] = True
    schema = folder / "churn.json"
    schema.write_text(json.dumps(document))
    X, y = generate(1500, seed=3)
    rng = np.random.default_rng(0)
    data = folder / "churn.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", *FEATURE_NAMES, LABEL])
        for i, (row, label) in enumerate(zip(X.tolist(), y.tolist(), strict=True)):
            cells = [f"{v:g}" for v in row]
            for j in (1, 2):
                if rng.random() < 0.1:
                    cells[j] = MISSING_CELLS[i % 4]
            writer.writerow([f"c{i:05d}", *cells, label])
    return schema, data


def _shop(folder: Path) -> tuple[Path, Path]:
    """A categorical feature that is nullable and passes unknown values (``email`` is
    not listed), a nullable integer, and a column the schema does not list."""
    schema = folder / "shop.yaml"
    schema.write_text(
        "task: binary\nlabel: bought\nfeatures:\n"
        "  - {name: visits, type: integer, min: 0, max: 50, nullable: true}\n"
        "  - name: channel\n    type: categorical\n    values: [web, app, 3]\n"
        "    nullable: true\n    unknown: pass\n"
        "  - {name: plan, type: categorical, values: [basic, pro]}\n"
    )
    rng = np.random.default_rng(1)
    data = folder / "shop.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["channel", "bought", "visits", "plan", "note"])
        for i in range(600):
            visits, channel, plan = (int(rng.integers(0, n)) for n in (51, 3, 2))
            noise = rng.normal(scale=0.3)
            bought = int(visits / 50 + (channel == 1) * 0.5 + plan * 0.3 + noise > 0.8)
            cell = ["web", "app", "3"][channel]
            cell = MISSING_CELLS[i % 4] if i % 9 == 0 else "email" if i % 23 == 0 else cell
            writer.writerow([cell, bought, visits if i % 11 else "NaN", ["basic", "pro"][plan], 1])
    return schema, data


@pytest.fixture
def handler_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real handler configured for one written version and runtime."""
    from inference import handler as module

    for name in ("_state", "_env", "_cold"):
        monkeypatch.setattr(module, name, getattr(module, name))

    def configure(version: Path, runtime: str) -> Any:
        manifest = json.loads((version / "manifest.json").read_text())
        entry = manifest["artifacts"][runtime]
        module.configure(
            {
                "MODEL_NAME": manifest["model_name"],
                "MODEL_VERSION": manifest["model_version"],
                "MODEL_RUNTIME": runtime,
                "MODEL_PATH": str(version / entry["file"]),
                "MODEL_SHA256": entry["sha256"],
                "AWS_LAMBDA_FUNCTION_VERSION": "3",
            }
        )
        return module

    yield configure


def _answers(handler_for: Any, version: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each runtime's probabilities for ``records``, through the handler."""
    got = {}
    for runtime in ("compiled", "sklearn"):
        module = handler_for(version, runtime)
        response = module.handler({"instances": records}, FakeLambdaContext())
        assert response["statusCode"] == 200, str(response)[:500]
        got[runtime] = np.array([a["probability"] for a in response["predictions"]])
    return got


@pytest.mark.parametrize("kind", ["gbm", "hist_gbm"])
def test_a_churn_csv_with_an_extra_column_and_missing_cells_trains_and_both_runtimes_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], handler_for: Any, kind: str
) -> None:
    schema, data = _churn_with_gaps(tmp_path)
    size = "max_iter=30" if kind == "hist_gbm" else "n_estimators=30"
    argv = ["--model", "churn", "--version", "v1", "--schema", str(schema), "--data", str(data),
            "--estimator", kind, "--param", size, "--output", str(tmp_path / "out")]  # fmt: skip
    assert train.main(argv) == 0
    out = capsys.readouterr()
    assert f"note: {data}: column(s) 'customer_id' not in the schema: ignored" in out.err
    version = tmp_path / "out/churn/v1"
    manifest = json.loads((version / "manifest.json").read_text())
    handling = (
        "passed to the estimator as NaN (it learns where missing goes)"
        if kind == "hist_gbm"
        else "imputed: the training median"
    )
    assert manifest["training"]["missing_values"] == dict.fromkeys(NULLABLE, handling)
    assert f"nullable feature monthly_charges: {handling}" in out.err
    assert [f["name"] for f in manifest["features"]] == list(FEATURE_NAMES)
    assert all(f.get("nullable") is (True if f["name"] in NULLABLE else None)
               for f in manifest["features"])  # fmt: skip
    # Both runtimes' artifacts, the compiled one within parity on rows with nulls.
    assert set(manifest["artifacts"]) >= {"compiled", "sklearn"}, manifest.get("compiled_runtime")
    parity = manifest["artifacts"]["compiled"]["parity"]
    assert parity["max_abs_diff"] <= 1e-12 and parity["label_mismatches"] == 0
    assert manifest["quality_gate"]["status"] == "passed"
    record = {"tenure_months": 5, "monthly_charges": 80.0, "total_charges": 400.0,
              "num_products": 2, "has_tech_support": 0, "contract_type_encoded": 0,
              "payment_method_encoded": 1}  # fmt: skip
    records = [
        record,
        {**record, "monthly_charges": None},
        {**record, "total_charges": None},
        {**record, "monthly_charges": None, "total_charges": None},
    ]
    got = _answers(handler_for, version, records)
    assert np.max(np.abs(got["compiled"] - got["sklearn"])) <= 1e-12
    pipeline = joblib.load(version / "model.joblib")["pipeline"]
    X = np.array([[np.nan if r[n] is None else r[n] for n in FEATURE_NAMES] for r in records])
    assert np.max(np.abs(got["sklearn"] - pipeline.predict_proba(X)[:, 1])) <= 1e-12
    if kind == "gbm":
        # A null answers as the training median would: the imputer's fill.
        imputed = pipeline.named_steps["features"].named_transformers_["numeric_imputed"]
        fill = imputed.named_steps["imputer"].statistics_
        median = {**record, "monthly_charges": float(fill[0]), "total_charges": float(fill[1])}
        at_median = _answers(handler_for, version, [median])["compiled"]
        assert got["compiled"][3] == pytest.approx(at_median[0], abs=1e-12)
        assert got["compiled"][3] != pytest.approx(got["compiled"][0], abs=1e-6)


@pytest.mark.parametrize(("kind", "params"), [("random_forest", ["max_depth=4"]), ("logistic", [])])
def test_a_nullable_category_that_passes_unknowns_trains_and_serves_nulls_and_unknowns(
    tmp_path: Path, handler_for: Any, kind: str, params: list[str]
) -> None:
    schema, data = _shop(tmp_path)
    argv = ["--model", "shop", "--version", "v1", "--schema", str(schema), "--data", str(data),
            "--estimator", kind, "--output", str(tmp_path / "out")]  # fmt: skip
    for param in params:
        argv += ["--param", param]
    assert train.main(argv) == 0
    version = tmp_path / "out/shop/v1"
    manifest = json.loads((version / "manifest.json").read_text())
    numbers = {
        "random_forest": "passed to the estimator as NaN (it learns where missing goes)",
        "logistic": "imputed: the training median",
    }
    assert manifest["training"]["missing_values"] == {
        "visits": numbers[kind],
        "channel": "imputed: the most frequent value in training",
    }
    assert "compiled" in manifest["artifacts"], manifest.get("compiled_runtime")
    records = [
        {"visits": 30, "channel": "app", "plan": "pro"},
        {"visits": None, "channel": "web", "plan": "basic"},
        {"visits": 10, "channel": None, "plan": "pro"},
        {"visits": 10, "channel": "email", "plan": "pro"},
        {"visits": None, "channel": "fax", "plan": "basic"},
        {"visits": 10, "channel": 3, "plan": "pro"},
        {"visits": 10, "channel": "fax", "plan": "pro"},
    ]
    got = _answers(handler_for, version, records)
    assert np.max(np.abs(got["compiled"] - got["sklearn"])) <= 1e-12
    # Unknown channels are one value to the model: no channel (an all-zero one-hot row).
    assert got["compiled"][3] == got["compiled"][6]
    pipeline = joblib.load(version / "model.joblib")["pipeline"]
    X = np.array([[10.0, -1.0, 1.0], [10.0, np.nan, 1.0], [10.0, 2.0, 1.0]])
    assert np.max(np.abs(pipeline.predict_proba(X)[:, 1] - got["sklearn"][[3, 2, 5]])) <= 1e-12
    # A value of a feature that refuses unknowns is still a 400.
    module = handler_for(version, "compiled")
    response = module.handler({**records[0], "plan": "gold"}, FakeLambdaContext())
    assert response["statusCode"] == 400


def _schema(**features: dict[str, Any]) -> Any:
    document = {
        "task": "binary",
        "label": "y",
        "features": [{"name": name, **spec} for name, spec in features.items()],
    }
    return schema_from_document(Path("s.json"), document)


def test_the_imputers_sit_on_the_nullable_columns_only() -> None:
    schema = _schema(
        a={"type": "number", "min": 0, "max": 1},
        b={"type": "number", "min": 0, "max": 1, "nullable": True},
        c={"type": "categorical", "values": ["x", "y"], "nullable": True},
        d={"type": "categorical", "values": ["x", "y"], "unknown": "pass"},
        e={"type": "categorical", "values": ["x", "y"]},
    )
    features = estimators.build_pipeline(schema, "gbm").named_steps["features"]
    assert isinstance(features, ColumnTransformer)
    layout = {name: columns for name, _, columns in features.transformers}
    assert layout == {
        "numeric": [0],
        "numeric_imputed": [1],
        "categorical": [4],
        "categorical_unknown": [3],
        "categorical_imputed": [2],
    }
    steps = {name: step for name, step, _ in features.transformers}
    assert steps["numeric_imputed"].named_steps["imputer"].strategy == "median"
    assert steps["categorical_imputed"].named_steps["imputer"].strategy == "most_frequent"
    assert steps["categorical_unknown"].handle_unknown == "ignore"
    assert steps["categorical"].handle_unknown == "error"
    assert steps["categorical_imputed"].named_steps["encoder"].handle_unknown == "error"
    # The kinds that route NaN themselves take a nullable number's NaN; the one-hot
    # encoder, not the estimator, reads the categories: still imputed.
    for kind in ("hist_gbm", "decision_tree", "random_forest", "extra_trees"):
        native = estimators.build_pipeline(schema, kind).named_steps["features"]
        layout = {name: columns for name, _, columns in native.transformers}
        assert layout["numeric"] == [0, 1] and "numeric_imputed" not in layout, kind
        assert layout["categorical_imputed"] == [2], kind
    for kind in ("logistic", "gbm"):
        imputed = estimators.build_pipeline(schema, kind).named_steps["features"]
        assert {name: c for name, _, c in imputed.transformers}["numeric_imputed"] == [1]


def test_a_schema_without_nulls_or_unknowns_gets_the_pipeline_it_always_got() -> None:
    plain = estimators.build_pipeline(_schema(a={"type": "number", "min": 0, "max": 1}))
    assert [name for name, _ in plain.steps] == ["scaler", "classifier"]
    nullable = _schema(a={"type": "number", "min": 0, "max": 1, "nullable": True})
    imputed = estimators.build_pipeline(nullable)
    assert isinstance(imputed, Pipeline)
    assert not any(isinstance(s, SimpleImputer) for _, s in plain.steps)
    assert estimators.describe(imputed) == (
        "ColumnTransformer(Pipeline(SimpleImputer, StandardScaler)) + GradientBoostingClassifier"
    )


def test_palmer_penguins_as_downloaded_trains_with_its_year_column_and_empty_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], handler_for: Any
) -> None:
    import palmerpenguins

    data = tmp_path / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(data, index=False)  # NA cells written empty
    assert ",NA," not in data.read_text() and ",," in data.read_text()
    schema = write_json(tmp_path / "penguins.json", penguin_schema())
    argv = ["--model", "penguins", "--version", "v1", "--schema", str(schema), "--data",
            str(data), "--param", "n_estimators=20", "--output", str(tmp_path / "out")]  # fmt: skip
    assert train.main(argv) == 0
    assert "column(s) 'year' not in the schema: ignored" in capsys.readouterr().err
    version = tmp_path / "out/penguins/v1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert "compiled" in manifest["artifacts"], manifest.get("compiled_runtime")
    record = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
              "body_mass_g": 3750, "island": "Torgersen", "sex": "male"}  # fmt: skip
    records = [
        record,
        {**record, "sex": None, "body_mass_g": None},
        {**record, "island": "Anvers"},
        dict.fromkeys(PENGUIN_FEATURES[:4]) | {"island": "Dream", "sex": None},
    ]
    answers = {}
    for runtime in ("compiled", "sklearn"):
        module = handler_for(version, runtime)
        response = module.handler({"instances": records}, FakeLambdaContext())
        assert response["statusCode"] == 200, str(response)[:500]
        classes = ["Adelie", "Chinstrap", "Gentoo"]
        answers[runtime] = np.array(
            [[p["probabilities"][c] for c in classes] for p in response["predictions"]]
        )
    assert np.max(np.abs(answers["compiled"] - answers["sklearn"])) <= 1e-12
    assert answers["compiled"][0].argmax() == 0  # a Torgersen penguin is an Adelie

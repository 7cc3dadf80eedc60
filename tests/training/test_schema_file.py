"""The feature schema as data: training/schemas/churn.json is the churn model's schema, and
`--schema FILE` trains over the features a file describes."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from serving.schema import FeatureSpec, SchemaError
from training import train as train_module
from training.schema import CHURN, CHURN_SCHEMA_FILE, load_schema
from training.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]

# The churn features as training/schema.py spelled them before they moved to the JSON file.
HARD_CODED = (
    FeatureSpec("tenure_months", "integer", 0, 240, "Whole months the customer has been with us."),
    FeatureSpec("monthly_charges", "number", 0.0, 1000.0, "Current monthly bill, in dollars."),
    FeatureSpec(
        "total_charges", "number", 0.0, 240000.0, "Billed over the whole tenure, in dollars."
    ),
    FeatureSpec("num_products", "integer", 1, 20, "Number of subscribed products."),
    FeatureSpec("has_tech_support", "integer", 0, 1, "1 if the tech-support add-on is active."),
    FeatureSpec(
        "contract_type_encoded", "integer", 0, 2, "0 = month-to-month, 1 = one year, 2 = two years."
    ),
    FeatureSpec(
        "payment_method_encoded",
        "integer",
        0,
        3,
        "0 = electronic check, 1 = mailed check, 2 = bank transfer (auto), 3 = credit card (auto).",
    ),
)


def test_the_churn_file_holds_the_churn_features_with_their_number_types() -> None:
    assert (CHURN.task, CHURN.label) == ("binary", "churn")
    assert CHURN.features == HARD_CODED
    # 0 and 0.0 compare equal but are written differently into the manifest and the pickle.
    for spec, before in zip(CHURN.features, HARD_CODED, strict=True):
        assert type(spec.minimum) is type(before.minimum), spec.name
        assert type(spec.maximum) is type(before.maximum), spec.name


def test_the_committed_versions_were_trained_on_the_schema_in_the_file() -> None:
    for version in ("v1", "v2"):
        manifest = json.loads((ROOT / f"model_artifacts/churn/{version}/manifest.json").read_text())
        recorded = [{k: v for k, v in f.items() if k != "observed"} for f in manifest["features"]]
        assert json.dumps(recorded) == json.dumps([f.to_json() for f in CHURN.features])
        assert manifest["target"]["name"] == CHURN.label


def test_schema_flag_with_the_churn_file_gives_the_same_bytes(tmp_path: Path) -> None:
    common = ["--version", "v1", "--rows", "2000", "--golden-rows", "50"]
    assert train_module.main([*common, "--output", str(tmp_path / "a")]) == 0
    assert (
        train_module.main(
            [*common, "--output", str(tmp_path / "b"), "--schema", str(CHURN_SCHEMA_FILE)]
        )
        == 0
    )
    a, b = tmp_path / "a/churn/v1", tmp_path / "b/churn/v1"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _schema(tmp_path: Path, document: Any, name: str = "schema.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _bank_customers(tmp_path: Path, rows: int = 3000) -> tuple[Path, Path]:
    """Three of the synthetic churn columns under other names, and a schema for them."""
    X, y = generate(rows, seed=5)
    csv_path = tmp_path / "customers.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["left", "months", "bill", "contract"])
        for features, label in zip(X.tolist(), y.tolist(), strict=True):
            writer.writerow([label, f"{features[0]:g}", f"{features[1]:g}", f"{features[5]:g}"])
    schema = _schema(
        tmp_path,
        {
            "task": "binary",
            "label": "left",
            "features": [
                {"name": "months", "type": "integer", "min": 0, "max": 600},
                {"name": "bill", "type": "number", "min": 0, "max": 5000, "description": "$"},
                {"name": "contract", "type": "integer", "min": 0, "max": 2},
            ],
        },
    )
    return schema, csv_path


def test_trains_over_the_features_a_schema_file_describes(tmp_path: Path) -> None:
    schema, data = _bank_customers(tmp_path)
    argv = ["--model", "bank", "--version", "v1", "--schema", str(schema), "--data", str(data)]
    assert train_module.main([*argv, "--output", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out/bank/v1/manifest.json").read_text())
    assert [f["name"] for f in manifest["features"]] == ["months", "bill", "contract"]
    assert manifest["features"][1]["allowed"] == {"min": 0.0, "max": 5000.0}
    assert manifest["target"]["name"] == "left"
    assert manifest["quality_gate"]["status"] == "passed"
    golden = json.loads((tmp_path / "out/bank/v1/golden.json").read_text())
    assert golden["feature_names"] == ["months", "bill", "contract"]


def test_a_schema_other_than_churn_needs_a_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema, _ = _bank_customers(tmp_path, rows=10)
    code = train_module.main(
        ["--version", "v1", "--schema", str(schema), "--output", str(tmp_path / "out")]
    )
    assert code == 2
    assert "synthetic data has the churn features only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


GOOD_FEATURE = {"name": "a", "type": "number", "min": 0, "max": 1}
CATEGORY = {"name": "c", "type": "categorical", "values": ["x", "y"]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], r"expected an object \(JSON or YAML\) with task, label and features"),
        (
            {"task": "ordinal", "label": "y", "features": [GOOD_FEATURE]},
            r"task 'ordinal' is not supported; allowed: binary, multiclass, regression",
        ),
        ({"task": "binary", "label": "y", "features": []}, r"'features' must be a non-empty list"),
        (
            {"task": "binary", "label": "y x", "features": [GOOD_FEATURE]},
            r"label 'y x' is not allowed: letters, digits and '_'",
        ),
        (
            {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "type": "text"}]},
            r"features\[0\] \(a\)\.type 'text' is not allowed; allowed: integer, number, "
            "categorical",
        ),
        (
            {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "min": 2}]},
            r"features\[0\] \(a\): min 2\.0 is above max 1\.0",
        ),
        (
            {
                "task": "binary",
                "label": "y",
                "features": [{**GOOD_FEATURE, "type": "integer", "max": 1.5}],
            },
            r"features\[0\] \(a\)\.max 1\.5 is not a whole number",
        ),
        (
            {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "max": "10"}]},
            r"features\[0\] \(a\)\.max must be a finite number, got '10'",
        ),
        (
            {"task": "binary", "label": "a", "features": [GOOD_FEATURE]},
            r"name\(s\) a used twice",
        ),
        (
            {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "range": [0, 1]}]},
            r"features\[0\] has unknown key\(s\) range; allowed: description, max, min, name, "
            r"nullable, type",
        ),
        (
            {"task": "binary", "label": "y", "features": [{"name": "c", "type": "categorical"}]},
            r"features\[0\] \(c\)\.values must be a list of 1 to 1000 values, got None",
        ),
        (
            {"task": "binary", "label": "y", "features": [CATEGORY | {"values": []}]},
            r"features\[0\] \(c\)\.values must be a list of 1 to 1000 values, got \[\]",
        ),
        (
            {"task": "binary", "label": "y", "features": [CATEGORY | {"values": [*range(1001)]}]},
            r"features\[0\] \(c\)\.values must be a list of 1 to 1000 values, got \[0, 1,",
        ),
        (
            {"task": "binary", "label": "y", "features": [CATEGORY | {"values": ["a", 1.5]}]},
            r"features\[0\] \(c\)\.values: 1\.5 is not allowed: values are strings or integers",
        ),
        (
            {"task": "binary", "label": "y", "features": [CATEGORY | {"values": ["a", True]}]},
            r"features\[0\] \(c\)\.values: True is not allowed: values are strings or integers",
        ),
        (
            {"task": "binary", "label": "y", "features": [CATEGORY | {"values": ["a", 2, "a"]}]},
            r"features\[0\] \(c\)\.values: 'a' is listed twice",
        ),
        (
            {"task": "binary", "label": "y", "features": [CATEGORY | {"min": 0}]},
            r"features\[0\] has unknown key\(s\) min; allowed: description, name, nullable, type, "
            r"unknown, values",
        ),
    ],
    ids=[
        "not-an-object",
        "task",
        "no-features",
        "label-name",
        "type",
        "min-above-max",
        "fractional-integer-bound",
        "bound-as-text",
        "duplicate-name",
        "unknown-key",
        "categorical-without-values",
        "no-values",
        "too-many-values",
        "float-value",
        "bool-value",
        "duplicate-value",
        "categorical-with-a-range",
    ],
)
def test_bad_schema_files_are_refused_with_the_key_and_value_named(
    tmp_path: Path, document: Any, message: str
) -> None:
    path = _schema(tmp_path, document)
    with pytest.raises(SchemaError, match=rf"^{path}: {message}"):
        load_schema(path)


def test_unreadable_schema_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot open"):
        load_schema(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": "binary",')
    with pytest.raises(SchemaError, match=r"broken\.json: not valid JSON"):
        load_schema(broken)


def test_the_documented_schema_example_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "training.md").read_text()
    block = text.split("## Your own features: a schema file", 1)[1].split("```json\n", 1)[1]
    path = tmp_path / "bank.json"
    path.write_text(block.split("```", 1)[0])
    schema = load_schema(path)
    assert (schema.label, schema.feature_names) == ("left", ("months", "bill"))


def test_the_file_pickles_to_the_bytes_the_literals_did() -> None:
    # The joblib artifact holds the feature schema: a string per feature where the literals
    # shared one object changed the committed versions' bytes on retraining.
    assert pickle.dumps([f.to_json() for f in CHURN.features]) == pickle.dumps(
        [f.to_json() for f in HARD_CODED]
    )


def test_categorical_values_keep_their_json_types_and_order(tmp_path: Path) -> None:
    values = ["north", "south", 1, "1", 0]
    path = _schema(
        tmp_path,
        {
            "task": "multiclass",
            "label": "y",
            "features": [GOOD_FEATURE, CATEGORY | {"values": values}],
        },
    )
    schema = load_schema(path)
    assert schema.task == "multiclass"
    assert schema.categorical_indices == (1,)
    entry = schema.features[1].to_json()
    assert entry["allowed"] == {"values": values}
    assert json.dumps(entry["allowed"]) == '{"values": ["north", "south", 1, "1", 0]}'
    assert entry["dtype"] == "categorical"
    assert schema.features[0].to_json()["allowed"] == {"min": 0.0, "max": 1.0}


def test_a_yaml_schema_reads_like_the_json_one(tmp_path: Path) -> None:
    document = {
        "task": "regression",
        "label": "price",
        "features": [GOOD_FEATURE, CATEGORY | {"values": ["x", 2]}],
    }
    yaml_path = tmp_path / "schema.yaml"
    yaml_path.write_text(
        "task: regression\nlabel: price\nfeatures:\n"
        "  - {name: a, type: number, min: 0, max: 1}\n"
        "  - name: c\n    type: categorical\n    values: [x, 2]\n"
    )
    assert load_schema(yaml_path) == load_schema(_schema(tmp_path, document))


def test_bad_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("task: [binary\n")
    with pytest.raises(SchemaError, match=rf"^{path}: not valid YAML"):
        load_schema(path)


def test_another_model_name_without_a_schema_is_refused_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The churn features trained under another name would deploy churn's inputs as that
    # model: a name other than the built-in example needs its own schema.
    code = train_module.main(["--model", "fraud", "--version", "v1", "--output", str(tmp_path)])
    assert code == 2
    assert "--model fraud needs --schema FILE" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

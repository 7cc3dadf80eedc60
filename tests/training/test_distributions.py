"""Reference distributions recorded for a manifest, and read back by the drift tools."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving import distributions, histograms
from training.schema import FEATURE_NAMES, FEATURES
from training.synthetic import generate

SCHEMA = [spec.to_json() for spec in FEATURES]


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    X, y = generate(5000, seed=7)
    # A stand-in for holdout probabilities: any numbers in [0, 1] will do here.
    predictions = np.clip(0.2 + 0.6 * y + np.random.default_rng(1).normal(0, 0.1, y.size), 0, 1)
    return distributions.reference_distributions(X, SCHEMA, predictions)


def test_the_reference_is_plain_json(reference: dict[str, Any]) -> None:
    assert json.loads(json.dumps(reference)) == reference
    assert reference["format"] == distributions.FORMAT
    assert reference["rows"] == 5000
    assert list(reference["features"]) == list(FEATURE_NAMES)


def test_numbers_get_quantile_bins_and_codes_get_categories(reference: dict[str, Any]) -> None:
    kinds = {name: h["kind"] for name, h in reference["features"].items()}
    assert kinds == {
        "tenure_months": "numeric",
        "monthly_charges": "numeric",
        "total_charges": "numeric",
        "num_products": "categorical",
        "has_tech_support": "categorical",
        "contract_type_encoded": "categorical",
        "payment_method_encoded": "categorical",
    }
    charges = reference["features"]["monthly_charges"]
    assert len(charges["proportions"]) == 10
    assert all(p == pytest.approx(0.1, abs=0.01) for p in charges["proportions"])
    contract = reference["features"]["contract_type_encoded"]
    assert contract["categories"] == [0.0, 1.0, 2.0]
    assert contract["proportions"][-1] == 0.0  # the unseen-category bin
    assert reference["prediction"]["kind"] == "numeric"


def test_records_and_a_matrix_give_the_same_reference() -> None:
    X, _ = generate(300, seed=2)
    predictions = np.linspace(0, 1, 300)
    records = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in X.tolist()]
    assert distributions.reference_distributions(
        records, SCHEMA, predictions
    ) == distributions.reference_distributions(X, SCHEMA, predictions)


def test_kinds_override_the_rule() -> None:
    X, _ = generate(300, seed=2)
    forced = distributions.reference_distributions(
        X, SCHEMA, np.linspace(0, 1, 300), kinds={"num_products": "numeric"}
    )
    assert forced["features"]["num_products"]["kind"] == "numeric"
    with pytest.raises(ValueError, match="not in the schema: nope"):
        distributions.reference_distributions(X, SCHEMA, [0.5], kinds={"nope": "numeric"})


def test_read_reference_round_trips(reference: dict[str, Any]) -> None:
    parsed = distributions.read_reference({distributions.MANIFEST_KEY: reference})
    assert set(parsed.features) == set(FEATURE_NAMES)
    X, _ = generate(5000, seed=7)
    # The training data against its own reference: PSI 0 in every feature.
    for index, name in enumerate(FEATURE_NAMES):
        assert parsed.features[name].psi(X[:, index]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("reference_distributions"), "trained before reference distributions"),
        (
            lambda m: m["reference_distributions"].update(format="x/9"),
            "format is 'x/9'",
        ),
        (
            lambda m: m["reference_distributions"]["features"]["tenure_months"].update(count=-1),
            r"manifest\.reference_distributions\.features\.tenure_months\.count",
        ),
        (
            lambda m: m["reference_distributions"].pop("prediction"),
            r"reference_distributions\.prediction must be an object",
        ),
    ],
)
def test_a_bad_reference_is_refused_naming_the_field(
    reference: dict[str, Any], edit: Any, message: str
) -> None:
    manifest = {distributions.MANIFEST_KEY: copy.deepcopy(reference)}
    edit(manifest)
    with pytest.raises(ValueError, match=message):
        distributions.read_reference(manifest)


@pytest.mark.parametrize(
    ("features", "predictions", "message"),
    [
        (np.zeros((3, 2)), [0.5], r"shape \(3, 2\)"),
        ([{"tenure_months": 1}], [0.5], "feature record 0 lacks monthly_charges"),
        (np.zeros((0, 7)), [0.5], "no feature rows"),
        (np.zeros((3, 7)), [1.5], r"probabilities in \[0, 1\]"),
        (np.zeros((3, 7)), [], "non-empty vector"),
    ],
)
def test_bad_inputs_are_refused(features: Any, predictions: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        distributions.reference_distributions(features, SCHEMA, predictions)


def test_a_committed_manifest_gains_a_reference_that_fits_it() -> None:
    # The shape training will write: the manifest's own feature entries as the schema.
    root = Path(__file__).resolve().parents[2] / "model_artifacts" / "churn" / "v1"
    manifest = json.loads((root / "manifest.json").read_text())
    X, _ = generate(2000, seed=7)
    manifest[distributions.MANIFEST_KEY] = distributions.reference_distributions(
        X, manifest["features"], np.linspace(0.01, 0.99, 400)
    )
    again = json.loads(json.dumps(manifest))
    parsed = distributions.read_reference(again)
    assert isinstance(parsed.prediction, histograms.Histogram)


# ---------------------------------------------------------------------------- every task

TASK_SCHEMA = [
    {"name": "size", "dtype": "number"},
    {"name": "colour", "dtype": "categorical", "allowed": {"values": ["red", "green", 7, "1"]}},
]


def test_categorical_features_get_one_bin_per_allowed_value() -> None:
    X = np.array([[0.5, 0.0], [1.5, 1.0], [2.5, 0.0], [3.5, 2.0]])
    reference = distributions.reference_distributions(X, TASK_SCHEMA, [0.1, 0.4, 0.6, 0.9])
    colour = reference["features"]["colour"]
    # Every listed value has its bin, "1" (never seen) included; the last is for others.
    assert colour["categories"] == ["red", "green", 7, "1"]
    assert colour["proportions"] == [0.5, 0.25, 0.25, 0.0, 0.0]
    assert "task" not in reference  # binary: as the first references
    histogram = distributions.read_reference({"reference_distributions": reference}).features[
        "colour"
    ]
    # Requests send values: the string "7" and the integer 1 are not allowed values.
    assert histogram.proportions_of(["red", 7, "7", 1]).tolist() == [0.25, 0, 0.25, 0, 0.5]


def test_records_carry_categorical_values_not_codes() -> None:
    X = np.array([[0.5, 0.0], [1.5, 3.0]])
    records = [{"size": 0.5, "colour": "red"}, {"size": 1.5, "colour": "1"}]
    assert distributions.reference_distributions(
        records, TASK_SCHEMA, [0.2, 0.8]
    ) == distributions.reference_distributions(X, TASK_SCHEMA, [0.2, 0.8])
    with pytest.raises(ValueError, match=r"feature record 0: colour=1 is not one of its values"):
        distributions.reference_distributions([{"size": 0, "colour": 1}], TASK_SCHEMA, [0.5])
    with pytest.raises(ValueError, match=r"feature 'colour' is categorical: its column must hold"):
        distributions.reference_distributions(np.array([[0.0, 4.0]]), TASK_SCHEMA, [0.5])


def test_multiclass_predictions_are_binned_as_the_predicted_class() -> None:
    X = np.zeros((4, 2))
    rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]])
    reference = distributions.reference_distributions(
        X, TASK_SCHEMA, rows, task="multiclass", classes=["ant", "bee", "cat"]
    )
    assert reference["task"] == "multiclass"
    # The tie in row 3 goes to the first class, as the handler answers.
    assert reference["prediction"]["categories"] == ["ant", "bee", "cat"]
    assert reference["prediction"]["proportions"] == [0.5, 0.25, 0.25, 0.0]
    read = distributions.read_reference({"reference_distributions": reference})
    assert read.task == "multiclass" and read.prediction.psi(["ant", "bee", "cat", "ant"]) == 0
    with pytest.raises(ValueError, match=r"probability rows of 3 classes, got shape \(4,\)"):
        distributions.reference_distributions(
            X, TASK_SCHEMA, rows[:, 0], task="multiclass", classes=["ant", "bee", "cat"]
        )


def test_regression_predictions_get_quantile_bins_of_the_values() -> None:
    values = np.linspace(-50, 250, 1000)  # not probabilities
    reference = distributions.reference_distributions(
        np.zeros((1000, 2)), TASK_SCHEMA, values, task="regression"
    )
    assert reference["task"] == "regression" and reference["prediction"]["kind"] == "numeric"
    assert (
        reference["prediction"]["edges"][0] == -50 and len(reference["prediction"]["edges"]) == 11
    )
    with pytest.raises(ValueError, match="predictions must be probabilities in"):
        distributions.reference_distributions(np.zeros((1000, 2)), TASK_SCHEMA, values)


def test_a_reference_whose_prediction_does_not_fit_its_task_is_named() -> None:
    reference = distributions.reference_distributions(
        np.zeros((3, 2)), TASK_SCHEMA, [0.1, 0.5, 0.9]
    )
    with pytest.raises(ValueError, match=r"manifest\.reference_distributions\.task is 'ordinal'"):
        distributions.read_reference({"reference_distributions": {**reference, "task": "ordinal"}})
    with pytest.raises(ValueError, match=r"prediction\.kind is 'numeric': a multiclass model's"):
        distributions.read_reference(
            {"reference_distributions": {**reference, "task": "multiclass"}}
        )

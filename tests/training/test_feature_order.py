"""A model fitted on a numpy array has no column names: nothing checks the schema's order.
The issue's case: a penguins model with two columns swapped in the schema passed the gate
at accuracy 0.45 (0.95 in the right order). It is refused without --confirm-feature-order
(the message lists the order that would be used), and with --training-data the holdout
accuracy far below the training accuracy is flagged and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.training.frame_data import NUMERIC, penguins, write_json
from training import feature_order, package

# bill_length_mm and bill_depth_mm swapped: the schema the model is wrongly packaged with.
SWAPPED = ["bill_depth_mm", "bill_length_mm", "flipper_length_mm", "body_mass_g"]
RANGES = {
    "bill_length_mm": (25, 70),
    "bill_depth_mm": (10, 25),
    "flipper_length_mm": (150, 250),
    "body_mass_g": (2000, 7000),
}


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("swapped")
    train, holdout = (f.dropna(subset=NUMERIC) for f in penguins())
    # Shallow trees with large leaves: moderate probabilities, so that the swapped model's
    # log loss still beats the prior's and the quality gate lets it through.
    model = RandomForestClassifier(n_estimators=100, max_depth=2, min_samples_leaf=30)
    model.set_params(random_state=0).fit(train[NUMERIC].to_numpy(), train["species"])
    estimator = folder / "numpy.joblib"
    joblib.dump(model, estimator)
    features = [
        {"name": n, "type": "number", "min": RANGES[n][0], "max": RANGES[n][1]} for n in SWAPPED
    ]
    schema = {"task": "multiclass", "label": "species", "features": features}
    paths = {"estimator": estimator, "schema": write_json(folder / "swapped.json", schema)}
    for name, frame in (("train", train), ("holdout", holdout)):
        paths[name] = folder / f"{name}.csv"
        frame[[*NUMERIC, "species"]].to_csv(paths[name], index=False)
    return paths


def _argv(tmp_path: Path, paths: dict[str, Path], *extra: str) -> list[str]:
    return ["--model", "penguins", "--version", "v1", "--schema", str(paths["schema"]),
            "--estimator", str(paths["estimator"]), "--data", str(paths["holdout"]),
            "--output", str(tmp_path / "out"), "--no-compiled", *extra]  # fmt: skip


def test_a_model_without_column_names_is_refused_unless_its_order_is_confirmed(
    tmp_path: Path, swapped: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert package.main(_argv(tmp_path, swapped)) == 2
    err = capsys.readouterr().err
    assert "fitted without column names (no feature_names_in_)" in err
    assert (
        "The order that will be used: 1. bill_depth_mm, 2. bill_length_mm, "
        "3. flipper_length_mm, 4. body_mass_g." in err
    )
    assert "pass --confirm-feature-order" in err
    assert not (tmp_path / "out").exists()


def test_with_training_data_a_swapped_order_is_flagged_and_recorded(
    tmp_path: Path, swapped: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ("--confirm-feature-order", "--training-data", str(swapped["train"]))
    assert package.main(_argv(tmp_path, swapped, *extra)) == 0
    err = capsys.readouterr().err
    assert "warning: accuracy" in err and "far below" in err and feature_order.RULE in err
    manifest = json.loads((tmp_path / "out/penguins/v1/manifest.json").read_text())
    assert manifest["model_input"] == "matrix"
    assert manifest["feature_order"] == {
        "source": "confirmed with --confirm-feature-order",
        "order": SWAPPED,
    }
    check = manifest["training_metric_check"]
    assert check["flagged"] is True and check["metric"] == "accuracy"
    assert check["holdout"] < 0.6 < 0.9 < check["training"]
    assert check["rule"] == feature_order.RULE
    # The gate alone does not catch it (the point): it passed.
    assert manifest["quality_gate"]["status"] == "passed"


def test_the_right_order_is_not_flagged() -> None:
    check = feature_order.compare("binary", {"accuracy": 1.0}, {"accuracy": 0.95})
    assert check["flagged"] is False and check["drop"] == 0.05
    assert feature_order.compare("regression", {"r2": 0.9}, {"r2": 0.55})["flagged"] is True


def test_a_schema_cannot_be_drafted_from_a_model_without_column_names(
    tmp_path: Path, swapped: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "draft.json"
    argv = ["--estimator", str(swapped["estimator"]), "--data", str(swapped["holdout"])]
    assert package.main([*argv, "--write-schema", str(draft)]) == 2
    assert "not fitted on a DataFrame (no feature_names_in_)" in capsys.readouterr().err
    assert not draft.exists()

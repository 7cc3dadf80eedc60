"""`python -m training.train` over a user's schema: categorical features, --estimator and
--param, refused before any data is read when a name is wrong."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from serving import artifacts
from training import train
from training.skops_artifact import sklearn_model


def _shop(tmp_path: Path, task: str = "binary", rows: int = 400) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    schema = tmp_path / "shop.yaml"
    schema.write_text(
        f"task: {task}\nlabel: bought\nfeatures:\n"
        "  - {name: visits, type: integer, min: 0, max: 50}\n"
        "  - name: channel\n    type: categorical\n    values: [web, app, 3]\n"
    )
    data = tmp_path / "shop.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["channel", "bought", "visits"])
        for _ in range(rows):
            visits, channel = int(rng.integers(0, 51)), int(rng.integers(0, 3))
            bought = int(visits / 50 + (channel == 1) * 0.5 + rng.normal(scale=0.3) > 0.7)
            writer.writerow([["web", "app", "3"][channel], bought, visits])
    return schema, data


def test_a_categorical_feature_is_trained_over_its_codes_and_recorded_with_its_values(
    tmp_path: Path,
) -> None:
    schema, data = _shop(tmp_path)
    out = tmp_path / "out"
    argv = ["--model", "shop", "--version", "v1", "--schema", str(schema), "--data", str(data)]
    argv += ["--estimator", "random_forest", "--param", "n_estimators=20", "--output", str(out)]
    assert train.main([*argv, "--param", "max_depth=4", "--golden-rows", "30"]) == 0
    version = out / "shop/v1"
    assert artifacts.verify_version(version) == []
    manifest = json.loads((version / "manifest.json").read_text())
    channel = manifest["features"][1]
    assert channel["dtype"] == "categorical"
    assert channel["allowed"] == {"values": ["web", "app", 3]}
    assert channel["observed"] == {"values": ["web", "app", 3]}
    training = manifest["training"]
    assert training["estimator"] == (
        "ColumnTransformer(StandardScaler, OneHotEncoder) + RandomForestClassifier"
    )
    assert training["params"] == {"n_estimators": 20, "random_state": 42, "max_depth": 4}
    assert manifest["quality_gate"]["status"] == "passed"
    # Either compiled within parity, or written without it and saying why.
    assert "compiled" in manifest["artifacts"] or manifest["compiled_runtime"]["reason"]
    model = sklearn_model.load((version / "model.skops").read_bytes())
    codes = np.array([[10.0, 0.0], [10.0, 1.0], [10.0, 2.0]])
    assert model.outputs(codes).shape == (3,)
    with pytest.raises(ValueError, match="unknown categor"):
        model.outputs(np.array([[10.0, 3.0]]))


@pytest.mark.parametrize(
    ("task", "extra", "message"),
    [
        (
            "regression",
            ["--estimator", "logistic"],
            "estimator 'logistic' has no regressor: for task regression use one of gbm, ",
        ),
        ("binary", ["--estimator", "ridge"], "estimator 'ridge' has no classifier"),
        (
            "binary",
            ["--param", "trees=3"],
            "GradientBoostingClassifier has no parameter(s) trees; valid: ccp_alpha, ",
        ),
        ("binary", ["--param", "depth"], "--param 'depth' is not key=value"),
    ],
)
def test_a_wrong_estimator_or_parameter_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, extra: list[str], message: str
) -> None:
    schema, _ = _shop(tmp_path, task)
    argv = ["--model", "shop", "--version", "v1", "--schema", str(schema)]
    # The data file does not exist: the names are refused before it would be read.
    argv += ["--data", str(tmp_path / "absent.csv"), "--output", str(tmp_path / "out"), *extra]
    assert train.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

"""`rollout start`'s offline gate on multiclass and regression models: the same checks as
the deployed gate, on versions packaged here from small scikit-learn models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.runtimes import ModelRuntime
from stacks.settings import QualityGateSettings
from tests import task_models
from tools.rollout import gate
from training import golden

DEFAULTS = QualityGateSettings()
SKLEARN = ModelRuntime.SKLEARN


def package(
    root: Path, name: str, version: str, model: task_models.TaskModel, rows: task_models.TaskModel
) -> None:
    """``model`` as version ``version`` of ``name``, its golden set ``rows``' data."""
    directory = root / name / version
    directory.mkdir(parents=True)
    data = model.payload(version)
    (directory / "model.joblib").write_bytes(data)
    manifest = {"artifacts": {"sklearn": {"file": "model.joblib"}}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    outputs = golden.predict("sklearn", data, rows.X)
    content = golden.document(
        model.feature_names, rows.X, rows.y, {"sklearn": outputs}, source={},
        task=model.task, classes=model.classes, features=model.features,
    )  # fmt: skip
    (directory / golden.GOLDEN_FILE).write_bytes(golden.dumps(content))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    held_out = task_models.multiclass(seed=100)
    package(root, "zoo", "v1", task_models.multiclass(seed=1), held_out)
    package(root, "zoo", "v2", task_models.multiclass(seed=2), task_models.multiclass(seed=101))
    # Mostly random labels: it learned little.
    noisy = task_models.multiclass(seed=3, rows=60, noise=0.9)
    package(root, "zoo", "v3", noisy, task_models.multiclass(seed=102))
    clean = task_models.regression(seed=100)
    package(root, "price", "v1", task_models.regression(seed=1), clean)
    package(root, "price", "v2", task_models.regression(seed=2), task_models.regression(seed=101))
    package(root, "price", "v3", task_models.regression(seed=3, rows=20, noise=3.0), clean)
    # A regressor released under the multiclass model's name.
    package(root, "zoo", "v4", task_models.regression(seed=4), clean)
    return root


def test_an_honest_multiclass_retrain_passes(root: Path) -> None:
    lines = gate.check(root, "zoo", "v2", "v1", SKLEARN, DEFAULTS)
    assert "max |dp| 0 (bound 1e-09), 0 labels differ" in lines[1]
    assert any(line.strip().startswith("roc_auc_ovr: candidate") for line in lines)


def test_a_multiclass_model_that_learned_little_is_refused(root: Path) -> None:
    with pytest.raises(gate.GateRefusedError) as refused:
        gate.check(root, "zoo", "v3", "v1", SKLEARN, DEFAULTS)
    message = str(refused.value)
    assert "identity:" not in message
    assert "refused: quality: log loss" in message
    assert "on the stable model's golden set (v1) (300 rows)" in message


def test_an_honest_regression_retrain_passes(root: Path) -> None:
    lines = gate.check(root, "price", "v2", "v1", SKLEARN, DEFAULTS)
    assert "max |d value| / max(1, |value|) 0 (bound 1e-09)" in lines[1]
    assert not any("label flip rate" in line for line in lines)


def test_a_worse_regressor_is_refused_on_relative_rmse(root: Path) -> None:
    refusal = (
        r"refused: quality: RMSE [0-9.]+ against the stable model's [0-9.]+ on the "
        r"candidate's golden set \(v3\) \(300 rows\), up by [0-9.]+% "
        r"\(tolerance max_rmse_increase_fraction=0\.02\)"
    )
    with pytest.raises(gate.GateRefusedError, match=refusal):
        gate.check(root, "price", "v3", "v1", SKLEARN, DEFAULTS)
    lenient = QualityGateSettings(max_rmse_increase_fraction=1.0)
    with pytest.raises(gate.GateRefusedError, match="max_rmse_increase_fraction=1"):
        # Far worse than the stable model: not even twice its RMSE is enough.
        gate.check(root, "price", "v3", "v1", SKLEARN, lenient)


def test_models_of_different_tasks_are_refused_before_any_comparison(root: Path) -> None:
    with pytest.raises(
        gate.GateRefusedError,
        match=r"--version 'v4': the candidate is a regression model but the stable model is a "
        r'multiclass model over the classes \["ant", "bee", "cat"\]',
    ):
        gate.check(root, "zoo", "v4", "v1", SKLEARN, DEFAULTS)

"""The quality gate at training: a model worse than the base rate, than chance, or than the
model's previous version on the same holdout is refused (exit 2, nothing written), unless a
regression is accepted with a reason that the manifest keeps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving import quality
from serving.quality import QualityGateError
from tests.training.conftest import FAST_PARAMS
from training import train as train_module
from training.train import TrainingData, synthetic_data, train

GOOD = {"n_estimators": 50}
# Three stumps: better than the base rate, clearly worse than GOOD on the same rows.
WEAK = {"n_estimators": 3, "max_depth": 1}


def quiet(_: str) -> None:
    pass


def shuffled_labels(rows: int, seed: int) -> TrainingData:
    data = synthetic_data(rows, seed)
    labels = np.random.default_rng(seed).permutation(data.y)
    return TrainingData(data.X, labels, {"kind": "synthetic", "labels": "shuffled"})


def fit(out: Path, data: TrainingData, version: str, **kwargs: Any) -> Path:
    return train(data, model_name="churn", version=version, output=out, log=quiet, **kwargs)


def manifest(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return loaded


def test_shuffled_labels_are_refused_with_the_base_rate_named(tmp_path: Path) -> None:
    # The case: 500 rows, the default estimator, a holdout log loss worse than
    # always predicting the positive rate; it used to be written and served as the newest.
    with pytest.raises(QualityGateError) as caught:
        fit(tmp_path, shuffled_labels(500, 1), "v1")
    assert str(caught.value) == (
        "churn v1 refused by the quality gate: holdout log loss 1.0526 is not better than the "
        "base-rate predictor's 0.6192 (predicting the training positive rate 0.3050 for every "
        "row); it must be lower; holdout ROC AUC 0.3413 is no better than chance; it must be "
        "above 0.5"
    )
    assert not (tmp_path / "churn").exists()


def test_cli_refuses_with_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = train_module.main(
        ["--version", "v3", "--rows", "400", "--output", str(tmp_path), "--no-compiled"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error: churn v3 refused by the quality gate: holdout log loss" in err
    assert "base-rate predictor's" in err
    assert list(tmp_path.iterdir()) == []


def test_a_good_model_passes_and_the_manifest_records_the_figures(tmp_path: Path) -> None:
    out = fit(tmp_path, synthetic_data(3000, 1), "v1", params=GOOD)
    record = manifest(out)["quality_gate"]
    metrics = manifest(out)["metrics"]
    assert record["status"] == "passed"
    assert record["previous"] is None
    assert 0.0 < record["base_rate"]["rate"] < 1.0
    assert metrics["log_loss"] < record["base_rate"]["log_loss"]
    assert quality.passed(manifest(out))


def test_a_regression_against_the_previous_version_is_refused(tmp_path: Path) -> None:
    data = synthetic_data(3000, 1)
    fit(tmp_path, data, "v1", params=GOOD)
    with pytest.raises(QualityGateError) as caught:
        fit(tmp_path, data, "v2", params=WEAK)
    message = str(caught.value)
    # Compared on the 595 of 600 holdout rows that neither trained on (five are false
    # positives of the training-row filters).
    assert (
        "holdout log loss 0.5815 is worse than v1's 0.5127 on the 595 holdout rows neither "
        "trained on by 0.0688 " in message
    )
    assert "(tolerance 0.02)" in message
    assert '--accept-regression "reason"' in message
    assert not (tmp_path / "churn" / "v2").exists()


def test_an_accepted_regression_is_written_with_its_reason_and_figures(tmp_path: Path) -> None:
    data = synthetic_data(3000, 1)
    fit(tmp_path, data, "v1", params=GOOD)
    out = fit(tmp_path, data, "v2", params=WEAK, accept_regression="smaller model for latency")
    record = manifest(out)["quality_gate"]
    assert record["status"] == "accepted-regression"
    assert record["accepted_regression"]["reason"] == "smaller model for latency"
    assert record["previous"] == {
        "version": "v1",
        "log_loss": 0.512694,
        "roc_auc": 0.765924,
        "tolerance": {"log_loss": 0.02, "roc_auc": 0.01},
        "rows": 595,
        "rows_dropped": 5,
        "candidate": {"log_loss": 0.581478, "roc_auc": 0.692838},
    }
    assert any("by 0.0688" in r for r in record["accepted_regression"]["regressions"])
    assert not quality.passed(manifest(out))


def test_cli_accepts_a_regression_only_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--rows", "2000", "--output", str(tmp_path), "--no-compiled"]
    assert train_module.main(["--version", "v1", *common]) == 0
    with pytest.raises(SystemExit) as caught:
        train_module.main(["--version", "v2", *common, "--accept-regression", " "])
    assert caught.value.code == 2
    assert "--accept-regression needs a reason" in capsys.readouterr().err


def test_the_previous_version_is_the_newest_other_one_by_number(tmp_path: Path) -> None:
    data = synthetic_data(3000, 1)
    for version in ("v2", "v10"):
        fit(tmp_path, data, version, params=FAST_PARAMS)
    out = fit(tmp_path, data, "v9", params=FAST_PARAMS)
    assert manifest(out)["quality_gate"]["previous"]["version"] == "v10"
    # Retraining a version compares with another version, not with itself.
    out = fit(tmp_path, data, "v10", params=FAST_PARAMS, force=True)
    assert manifest(out)["quality_gate"]["previous"]["version"] == "v9"


def test_a_tampered_previous_version_stops_training(tmp_path: Path) -> None:
    data = synthetic_data(3000, 1)
    previous = fit(tmp_path, data, "v1", params=FAST_PARAMS)
    (previous / "model.skops").write_bytes(b"not the model")
    with pytest.raises(ValueError, match=r"previous version v1: .*model\.skops: SHA-256"):
        fit(tmp_path, data, "v2", params=FAST_PARAMS)


def test_a_refusal_can_be_recorded_for_a_model_meant_to_be_bad(tmp_path: Path) -> None:
    out = fit(tmp_path, shuffled_labels(500, 1), "v1", enforce_gate=False)
    record = manifest(out)["quality_gate"]
    assert record["status"] == "refused"
    assert "base-rate predictor's" in record["refused"][0]
    assert not quality.passed(manifest(out))


def _old(log_loss: float, roc_auc: float, rate: float) -> dict[str, Any]:
    return {
        "metrics": {"log_loss": log_loss, "roc_auc": roc_auc},
        "data_fingerprint": {"positive_rate": rate},
    }


def test_versions_from_before_the_gate_pass_when_they_beat_the_base_rate() -> None:
    entropy = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))  # 0.6109
    assert quality.passed(_old(0.45, 0.8, 0.3))
    # The model: log loss 0.794 against a base rate near 0.66.
    assert not quality.passed(_old(0.794, 0.52, 0.3))
    assert not quality.passed(_old(entropy, 0.8, 0.3))
    assert not quality.passed(_old(0.45, 0.5, 0.3))
    assert quality.passed({"metrics": {}})  # nothing to judge by


def test_the_committed_versions_count_as_passed() -> None:
    root = Path(__file__).resolve().parents[2] / "model_artifacts" / "churn"
    for version in ("v1", "v2"):
        committed = manifest(root / version)
        assert "quality_gate" not in committed  # their bytes predate the gate
        assert quality.passed(committed)


def test_serve_and_demo_default_to_the_newest_version_that_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools import serve

    def write(version: str, content: dict[str, Any]) -> None:
        (tmp_path / "churn" / version).mkdir(parents=True)
        (tmp_path / "churn" / version / "manifest.json").write_text(json.dumps(content))

    base = {"base_rate": {"rate": 0.3, "log_loss": 0.61}, "previous": None}
    write("v2", _old(0.45, 0.8, 0.3))  # before the gate, beats the base rate
    write("v3", {"quality_gate": {**base, "status": "passed"}})
    write("v10", {"quality_gate": {**base, "status": "accepted-regression"}})
    write("v11", {"quality_gate": {**base, "status": "refused", "refused": ["..."]}})
    write("v12", _old(0.794, 0.52, 0.3))  # before the gate, worse than the base rate
    monkeypatch.setattr(serve, "ARTIFACTS", tmp_path)
    assert serve.latest_version("churn") == "v3"
    (tmp_path / "churn" / "v3" / "manifest.json").unlink()
    assert serve.latest_version("churn") == "v2"
    (tmp_path / "churn" / "v2" / "manifest.json").unlink()
    with pytest.raises(SystemExit, match=r"no version of 'churn' passed the quality gate \("):
        serve.latest_version("churn")

"""`rollout start` runs the traffic gate on the local artifacts before it writes cdk.json.

The candidates are trained here, in a private artifacts root beside copies of the
committed v1 and v2: a model fitted on shuffled labels (it learned nothing), an honest
retrain, and an honest retrain whose model file was swapped after packaging.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving import artifacts
from serving.runtimes import ModelRuntime
from stacks.settings import DEFAULT_ARTIFACTS_ROOT, QualityGateSettings
from tests.rollout.conftest import Run, block
from tools.rollout import gate
from tools.rollout.__main__ import main
from training.train import TrainingData, synthetic_data, train

DEFAULTS = QualityGateSettings()


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    for version in ("v1", "v2"):
        shutil.copytree(DEFAULT_ARTIFACTS_ROOT / "churn" / version, root / "churn" / version)
    # v2's data and hyperparameters: an honest retrain, as good as the stable model.
    train(synthetic_data(20000, 11), model_name="churn", version="v3", output=root, log=quiet)
    X, y = synthetic_data(4000, 5).X, synthetic_data(4000, 5).y
    shuffled = np.random.default_rng(0).permutation(y)
    noise = TrainingData(X, shuffled, {"kind": "synthetic", "labels": "shuffled"})
    # The training gate would refuse it: written anyway to prove the traffic gate catches it.
    train(noise, model_name="churn", version="v4", output=root, params={"n_estimators": 20},
          enforce_gate=False, log=quiet)  # fmt: skip
    return root


def swapped(root: Path, target: str, donor: str) -> str:
    """``target`` with ``donor``'s compiled model, its manifest updated to match."""
    directory = root / "churn" / target
    shutil.copy(root / "churn" / donor / "model.compiled.npz", directory / "model.compiled.npz")
    manifest = artifacts.load_manifest(directory)
    entry = manifest["artifacts"]["compiled"]
    entry["sha256"] = artifacts.sha256_file(directory / "model.compiled.npz")
    entry["size_bytes"] = (directory / "model.compiled.npz").stat().st_size
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def test_an_honest_retrain_passes_and_reports_the_figures(root: Path) -> None:
    lines = gate.check(root, "churn", "v3", "v1", ModelRuntime.COMPILED, DEFAULTS)
    assert lines[0] == "gate: churn v3 (compiled), against stable v1"
    assert "max |dp| 0 (bound 1e-09), 0 labels differ" in lines[1]
    assert any("label flip rate against the stable model" in line for line in lines)


def test_a_model_trained_on_shuffled_labels_is_refused_on_quality(root: Path) -> None:
    with pytest.raises(gate.GateRefusedError) as refused:
        gate.check(root, "churn", "v4", "v1", ModelRuntime.COMPILED, DEFAULTS)
    message = str(refused.value)
    # It is the tested artifact (identity holds); it is just bad.
    assert "identity:" not in message
    assert "refused: quality: ROC AUC 0." in message
    # Its own golden set carries its shuffled labels, on which no model scores: the stable
    # model's golden set, with labels from the previous release, is where it fails.
    # On the 983 of v1's 1,000 golden rows that v4's training-row filter does not hold
    # (v4 trained on other rows: these 17 are the filter's false positives, or rows equal
    # to one it trained on).
    assert "on the stable model's golden set (v1) (983 rows), down by 0." in message
    assert "compared on the 983 rows neither version trained on (17 left out)" in message
    assert "(tolerance max_auc_decrease=0.02)" in message
    assert "(tolerance max_log_loss_increase=0.03)" in message


def test_tolerances_come_from_the_environment(root: Path) -> None:
    lenient = QualityGateSettings(
        max_log_loss_increase=1.0, max_auc_decrease=0.5, max_brier_increase=0.25
    )
    gate.check(root, "churn", "v4", "v1", ModelRuntime.COMPILED, lenient)


def test_an_artifact_swapped_after_packaging_fails_identity(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "churn"
    shutil.copytree(root / "churn", copy)
    candidate = swapped(tmp_path, "v3", "v4")
    with pytest.raises(gate.GateRefusedError, match=r"refused: identity: max \|dp\| [0-9.e-]+ "
                       r"against golden.json's compiled answers \(tolerance 1e-09\)"):  # fmt: skip
        gate.check(tmp_path, "churn", candidate, "v1", ModelRuntime.COMPILED, DEFAULTS)


def start(root: Path, config: Path, version: str) -> int:
    """``rollout start`` of ``version`` on dev at 10 %, stable version 3, from ``root``."""
    return main(
        ["start", "--env", "dev", "--version", version, "--weight", "0.1", "--stable", "3",
         "--config", str(config)],
        artifacts_root=root,
    )  # fmt: skip


def test_start_refuses_a_bad_candidate_and_leaves_cdk_json_alone(
    root: Path, config: Path, rollout: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    before = config.read_bytes()
    code = start(root, config, "v4")
    err = capsys.readouterr().err
    assert code == 2
    assert config.read_bytes() == before
    assert "refused: the traffic gate refuses --version v4:" in err
    assert "quality: ROC AUC" in err and "max_auc_decrease=0.02" in err


def test_start_writes_a_good_candidate_after_the_gate(
    root: Path, config: Path, rollout: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code = start(root, config, "v3")
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("gate: churn v3 (compiled), against stable v1\n")
    assert block(config, "dev")["model_version"] == "v3"


def test_start_takes_the_tolerances_from_cdk_json(
    root: Path, config: Path, rollout: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(config.read_text())
    document["context"]["environments"]["dev"]["quality_gate"] = {"max_auc_decrease": 0.5,
        "max_log_loss_increase": 1, "max_brier_increase": 0.25}  # fmt: skip
    config.write_text(json.dumps(document, indent=2) + "\n")
    code = start(root, config, "v4")
    assert code == 0, capsys.readouterr().err


def test_a_version_without_a_golden_set_is_refused(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "churn" / "v3", tmp_path / "churn" / "v3")
    (tmp_path / "churn" / "v3" / "golden.json").unlink()
    with pytest.raises(gate.GateRefusedError, match="packaged before golden sets"):
        gate.check(tmp_path, "churn", "v3", None, ModelRuntime.COMPILED, DEFAULTS)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_auc_decrease", 0.7, r"max_auc_decrease=0\.7 is not allowed: 0 .* to 0\.5"),
        ("max_log_loss_increase", -0.1, r"max_log_loss_increase=-0\.1 is not allowed"),
        ("max_brier_increase", "lots", r"max_brier_increase='lots' is not allowed: expected"),
        (
            "max_rmse_increase_fraction",
            1.5,
            r"max_rmse_increase_fraction=1\.5 is not allowed: 0 .* to 1$",
        ),
        ("max_auc", 0.1, r"unknown key\(s\) environments\.dev\.quality_gate\.max_auc"),
        (
            "allow_unlabelled_golden",
            "yes",
            r"allow_unlabelled_golden='yes' is not allowed: use true, false$",
        ),
    ],
)
def test_a_bad_tolerance_is_refused_naming_key_and_value(
    key: str, value: object, message: str
) -> None:
    from stacks.config import committed_context, load_config
    from stacks.settings import ConfigError

    context = committed_context()
    context["environments"]["dev"]["quality_gate"] = {key: value}
    with pytest.raises(ConfigError, match=rf"environments\.dev\.quality_gate\.{message}"
                       if not message.startswith("unknown") else message):  # fmt: skip
        load_config({**context, "env": "dev"})


def test_tolerances_parse_from_cdk_json() -> None:
    from stacks.config import load_committed

    assert load_committed("prod").quality_gate == QualityGateSettings(
        max_log_loss_increase=0.025, max_auc_decrease=0.015, max_brier_increase=0.008
    )
    assert load_committed("dev").quality_gate == DEFAULTS


def test_unlabelled_golden_sets_are_refused_unless_the_environment_allows_them() -> None:
    from stacks.config import committed_context, load_config

    assert DEFAULTS.allow_unlabelled_golden is False
    assert load_committed_gate("prod").allow_unlabelled_golden is False
    context = committed_context()
    context["environments"]["dev"]["quality_gate"] = {"allow_unlabelled_golden": True}
    assert load_config({**context, "env": "dev"}).quality_gate == QualityGateSettings(
        allow_unlabelled_golden=True
    )


def load_committed_gate(env: str) -> QualityGateSettings:
    from stacks.config import load_committed

    return load_committed(env).quality_gate

"""`make demo`'s explanations step (tools/explain_demo.py).

The committed churn archives cannot explain (format 1, no ``cover``), so the demo trains
churn v3 into a temporary directory; that version explains exactly (shap's values, and the
model's own output in log-odds), and the step asks the real handler for it: its answer
must carry the engine's figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import shap

from inference import compiled_model
from inference.compiled_pipeline import CompiledPipeline
from tools import explain_demo, serve
from tools.serve_demo import SINGLE
from training.schema import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[2]
BOUND = 1e-9


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return explain_demo.train_version(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, fresh_environment: Any) -> None:
    for name in (*serve.model_env("churn", "v1", "compiled"), "MODEL_BUCKET", "MODEL_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_committed_churn_archives_cannot_explain(version: str) -> None:
    version_path = ROOT / "model_artifacts" / "churn" / version
    entry = json.loads((version_path / "manifest.json").read_text())["artifacts"]["compiled"]
    assert entry["format"] == "gbm-trees-npz/1"
    model = compiled_model.load((version_path / entry["file"]).read_bytes())
    assert not isinstance(model, CompiledPipeline) and not hasattr(model, "explainer")


def test_the_demo_version_is_the_churn_gbm_and_explains_exactly(version_dir: Path) -> None:
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["artifacts"]["compiled"]["format"] == "sklearn-compiled-npz/3"
    assert manifest["training"]["params"]["n_estimators"] == 200
    assert manifest["training"]["params"]["max_depth"] == 4
    explanation = explain_demo.engine_explanation(version_dir, SINGLE)
    assert explanation["space"] == "log_odds"
    assert list(explanation["contributions"]) == list(FEATURE_NAMES)
    contributions = np.array(list(explanation["contributions"].values()))
    # Local accuracy: base plus contributions is the model's log-odds of churn.
    data = (version_dir / "model.compiled.npz").read_bytes()
    model = compiled_model.load(data)
    X = np.array([[SINGLE[f] for f in FEATURE_NAMES]], dtype=np.float64)
    p = float(model.outputs(X)[0])
    assert abs(explanation["base"] + contributions.sum() - math.log(p / (1 - p))) <= BOUND
    # Parity with shap on the fitted pipeline.
    pipeline = joblib.load(version_dir / "model.joblib")["pipeline"]
    reference = shap.TreeExplainer(pipeline[-1], feature_perturbation="tree_path_dependent")
    expected = np.asarray(reference.shap_values(pipeline[:-1].transform(X)))[0]
    assert np.max(np.abs(contributions - expected)) <= BOUND


def test_the_step_asks_the_real_handler_and_prints_the_top_contributions(
    version_dir: Path, isolated_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = explain_demo.show_explanations(version_dir)
    out = capsys.readouterr().out
    assert '"explain": true' in out and "POST http://127.0.0.1:" in out
    engine = explain_demo.engine_explanation(version_dir, SINGLE)
    # The handler's own explanation, equal to the engine's figures.
    assert shown.status == 200 and shown.answer["model_version"] == "v3"
    assert shown.explanation["space"] == engine["space"]
    assert abs(shown.explanation["base"] - engine["base"]) <= BOUND
    for name, value in engine["contributions"].items():
        assert abs(shown.explanation["contributions"][name] - value) <= BOUND
    assert f"(the answer's probability: {shown.answer['probability']:.4f})" in out
    top = sorted(engine["contributions"].items(), key=lambda kv: -abs(kv[1]))[:3]
    printed = [line.split()[0] for line in out.splitlines() if line.startswith("    ")][:3]
    assert printed == [name for name, _ in top]
    assert '"_aws"' not in out, "handler log lines stay out of the demo's output"


def test_describe_orders_by_magnitude_and_shows_the_sum_as_a_probability() -> None:
    explanation = {
        "space": "log_odds",
        "base": -1.0,
        "contributions": {"a": 0.25, "b": -2.0, "c": 0.5, "d": 1.0, "e": 0.125},
    }
    lines = explain_demo.describe(explanation, probability=0.3)
    assert [line.split()[0] for line in lines[1:4]] == ["b", "d", "c"]
    assert lines[4].split()[-1] == "+0.3750"  # a and e
    total = -1.0 + 0.25 - 2.0 + 0.5 + 1.0 + 0.125
    assert f"P(churn) {1 / (1 + math.exp(-total)):.4f}" in lines[5]
    assert "(the answer's probability: 0.3000)" in lines[5]

"""`make demo`'s model listing reads every committed manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.demo import show_configured_models, show_models

ROOT = Path(__file__).resolve().parents[1]


def test_lists_every_artifact_with_its_checksum_and_the_parity_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    show_models()
    out = capsys.readouterr().out
    for manifest_path in sorted(ROOT.glob("model_artifacts/churn/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        assert f"churn {manifest['model_version']} (binary): ROC AUC" in out
        # The committed versions predate the training gate and beat their base rate.
        assert "gate: trained before the gate, passes its base-rate check" in out
        for artifact in manifest["artifacts"].values():
            assert f"sha256 {artifact['sha256'][:12]}..." in out
        parity = manifest["artifacts"]["compiled"]["parity"]
        assert f"max |diff| {parity['max_abs_diff']:.2g}, 0 labels differ" in out


def test_lists_every_configured_model_with_its_stack(capsys: pytest.CaptureFixture[str]) -> None:
    show_configured_models()
    out = capsys.readouterr().out
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    for env, settings in context["environments"].items():
        version = settings["rollout"]["model_version"]
        assert f"{env}: churn {version} (compiled), stack sklearn-serving-{env}-inference\n" in out
        for name, model in settings.get("models", {}).items():
            line = f"{env}: {name} {model['rollout']['model_version']}"
            assert line in out and f"stack sklearn-serving-{env}-inference-{name}" in out

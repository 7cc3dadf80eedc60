"""The model card's global importance: mean |contribution| per schema feature over the
golden set, from the compiled archive packaging writes; shap's values are the reference.
A model without an explainable compiled archive gets a card that says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import shap
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from inference.explain import ExplanationsUnavailableError
from serving.artifacts import verify_version
from tests.training.compiled_archives import rewrite
from tests.training.conftest import train_churn
from training import card_importance, golden, model_card
from training.compile import compile_pipeline
from training.schema import FEATURE_NAMES
from training.train import synthetic_data

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _table(markdown: str) -> list[tuple[str, list[float]]]:
    """The importance table's rows: (feature, figures)."""
    section = markdown.split("## Global importance", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    out = []
    for line in rows[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out.append((cells[0], [float(c) for c in cells[1:]]))
    return out


def test_trained_card_holds_mean_abs_shap_over_the_golden_set(tmp_path: Path) -> None:
    out = train_churn(tmp_path / "out", synthetic_data(1000, 1))
    manifest = json.loads((out / "manifest.json").read_text())
    card = manifest["model_card"]
    assert card["importance_plot"] == "model_card_importance.png"
    assert (out / "model_card_importance.png").read_bytes()[:8] == PNG
    assert (out / "model_card.png").read_bytes()[:8] == PNG  # today's plot stays
    importance = card["importance"]
    assert importance["space"] == "log_odds" and importance["rows"] == golden.read(out).rows
    assert list(importance["features"]) == list(FEATURE_NAMES)
    # The reference: shap on the fitted pipeline, the golden rows in the scaled space.
    pipeline = joblib.load(out / "model.joblib")["pipeline"]
    X = golden.read(out).X
    values = shap.TreeExplainer(
        pipeline[-1], feature_perturbation="tree_path_dependent"
    ).shap_values(pipeline[:-1].transform(X))
    expected = np.abs(np.asarray(values)).mean(axis=0)
    got = np.array([importance["features"][f] for f in FEATURE_NAMES])
    assert np.max(np.abs(got - expected)) <= 1e-9
    text = (out / "model_card.md").read_text()
    assert (
        "in log-odds of churn = 1" in text
        and "![Global importance](model_card_importance.png)" in text
    )
    table = _table(text)
    assert [name for name, _ in table] == [FEATURE_NAMES[i] for i in np.argsort(-expected)]
    assert [v[0] for _, v in table] == pytest.approx(sorted(expected, reverse=True), abs=1e-4)
    assert verify_version(out) == []


def _multiclass() -> tuple[Pipeline, np.ndarray, list[dict[str, Any]]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5])
    # A forest: shap takes multiclass forests (not multiclass GradientBoostingClassifier).
    forest = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", forest)]).fit(X, y)
    features = [
        {"name": f"f{i}", "dtype": "number", "allowed": {"min": -100, "max": 100}} for i in range(4)
    ]
    return pipeline, X, features


def test_multiclass_importance_is_summed_over_classes_and_kept_per_class(tmp_path: Path) -> None:
    pipeline, X, features = _multiclass()
    data = compile_pipeline(
        pipeline,
        model_name="m",
        model_version="v1",
        features=features,
        task="multiclass",
        classes=(0, 1, 2),
    )
    importance = card_importance.compute(data, X[:100])
    values = shap.TreeExplainer(
        pipeline[-1], feature_perturbation="tree_path_dependent"
    ).shap_values(pipeline[:-1].transform(X[:100]))
    if isinstance(values, list):  # older shap: one (rows, features) array per class
        values = np.stack(values, axis=-1)
    per_class = np.abs(np.asarray(values)).mean(axis=0)  # (features, classes)
    assert importance.space == "probability"
    assert importance.per_output.shape == (4, 3)
    assert np.max(np.abs(importance.per_output - per_class)) <= 1e-9
    assert np.allclose(importance.total, per_class.sum(axis=1), atol=1e-12)
    record = importance.record()
    assert record["multiclass"] == "summed over classes"
    assert list(record["per_class"]) == ["0", "1", "2"]
    assert record["per_class"]["2"]["f0"] == pytest.approx(per_class[0, 2], abs=1e-12)
    # f0 drives the classes: it leads; f1 and f3 are noise.
    assert importance.order()[0] == 0
    unit = card_importance.space_words(importance, "kind", None)
    lines = card_importance.markdown(importance, unit, None)
    text = "\n".join(lines)
    assert (
        "summed over the classes" in text
        and "| feature | summed over classes | 0 | 1 | 2 |" in text
    )
    table = _table(text)
    assert table[0][0] == "f0"
    assert table[0][1][0] == pytest.approx(sum(table[0][1][1:]), abs=2e-4)
    path = tmp_path / card_importance.PLOT_FILE
    card_importance.write_plot(path, importance, unit, "m v1")
    assert path.read_bytes()[:8] == PNG


def _manifest() -> dict[str, Any]:
    manifest = json.loads((ROOT / "model_artifacts/churn/v1/manifest.json").read_text())
    return {k: manifest[k] for k in ("model_name", "model_version", "target", "training")}


def test_a_model_that_does_not_compile_gets_a_card_saying_why(tmp_path: Path) -> None:
    card = model_card.write_card(
        tmp_path,
        _manifest(),
        y_true=None,
        outputs=np.zeros(3),
        classes=[0, 1],
        title="churn v1",
        compiled_bytes=b"",
        compiled_runtime={"supported": False, "reason": "KNeighborsClassifier is not supported"},
    )
    assert card == {"markdown": "model_card.md"}
    text = (tmp_path / "model_card.md").read_text()
    assert (
        "No global importance: explanations need the compiled runtime, and this model does "
        "not compile (KNeighborsClassifier is not supported)." in text
    )
    assert not (tmp_path / card_importance.PLOT_FILE).exists()


def test_packaged_without_the_compiled_runtime_says_so(tmp_path: Path) -> None:
    model_card.write_card(
        tmp_path,
        _manifest(),
        y_true=None,
        outputs=np.zeros(3),
        classes=[0, 1],
        title="churn v1",
        compiled_bytes=b"",
        compiled_runtime=None,
    )
    assert "this version was packaged without it." in (tmp_path / "model_card.md").read_text()


@pytest.mark.parametrize("archive", ["format 1", "no cover"])
def test_an_archive_that_cannot_explain_gets_a_card_saying_why(
    tmp_path: Path, archive: str
) -> None:
    committed = ROOT / "model_artifacts/churn/v1"
    shutil.copy(committed / "golden.json", tmp_path / "golden.json")
    if archive == "format 1":  # the committed churn archives, deployed by checksum
        data = (committed / "model.compiled.npz").read_bytes()
    else:
        payload = joblib.load(committed / "model.joblib")
        compiled = compile_pipeline(
            payload["pipeline"],
            model_name="churn",
            model_version="v1",
            features=payload["features"],
        )
        data = rewrite(compiled, cover=None)
    with pytest.raises(ExplanationsUnavailableError):
        card_importance.compute(data, golden.read(tmp_path).X)
    card = model_card.write_card(
        tmp_path,
        _manifest(),
        y_true=None,
        outputs=np.zeros(3),
        classes=[0, 1],
        title="churn v1",
        compiled_bytes=data,
        compiled_runtime=None,
    )
    assert "importance" not in card
    text = (tmp_path / "model_card.md").read_text()
    assert "No global importance: the compiled model cannot be explained (" in text

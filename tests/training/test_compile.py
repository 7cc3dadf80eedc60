from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from inference import compiled_format, compiled_model
from serving.artifacts import sha256_file
from tests.training.compiled_archives import arrays, rewrite
from tests.training.conftest import train_churn
from training import parity
from training.compile import compile_pipeline
from training.compile_support import UnsupportedModelError
from training.parity import PARITY_BOUND, ParityError, check_parity
from training.parity_inputs import parity_rows, tie_rows
from training.synthetic import generate
from training.train import synthetic_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference() -> dict:  # type: ignore[type-arg]
    payload: dict = joblib.load(ROOT / "model_artifacts/churn/v1/model.joblib")  # type: ignore[type-arg]
    return payload


def compiled_bytes(payload: dict) -> bytes:  # type: ignore[type-arg]
    return compile_pipeline(
        payload["pipeline"], model_name="churn", model_version="v1", features=payload["features"]
    )


def test_compiled_model_matches_sklearn_on_holdout_and_random_rows(reference: dict) -> None:  # type: ignore[type-arg]
    X_holdout, _ = generate(4000, seed=123)
    X = parity_rows(X_holdout, reference["features"])
    expected = reference["pipeline"].predict_proba(X)[:, 1]
    actual = compiled_model.load(compiled_bytes(reference)).outputs(X)
    assert np.array_equal(actual >= 0.5, expected >= 0.5)
    assert np.max(np.abs(actual - expected)) <= PARITY_BOUND


def test_parity_gate_refuses_a_model_that_drifts_and_names_the_figures(reference: dict) -> None:  # type: ignore[type-arg]
    good = compiled_bytes(reference)
    value = arrays(good)["value"] + 1e-7  # far below what a user would notice, far above the bound
    drifted = rewrite(good, value=value)
    X_holdout, _ = generate(500, seed=5)
    with pytest.raises(
        ParityError,
        match=r"max \|P\(compiled\) - P\(sklearn\)\| = [0-9.e-]+ "
        r"\(bound 1e-12\), \d+ of 16266 labels differ",  # 500 + 10,000 random + 5,766 ties
    ):
        check_parity(reference["pipeline"], drifted, X_holdout, reference["features"])


def test_training_writes_no_compiled_artifact_when_the_parity_gate_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = compile_pipeline

    def float32_thresholds(pipeline: Pipeline, **kwargs: object) -> bytes:
        # The naive conversion many converters do: thresholds in float32.
        data = real(pipeline, **kwargs)  # type: ignore[arg-type]
        original = arrays(data)
        threshold = original["threshold"].astype(np.float32).astype(np.float64)
        value = original["value"].astype(np.float32).astype(np.float64)
        return rewrite(data, threshold=threshold, value=value)

    monkeypatch.setattr("training.publish.compile_pipeline", float32_thresholds)
    out = train_churn(tmp_path, synthetic_data(800, 1))
    # Issue 13's contract: the version serves on the sklearn runtime and says why not compiled.
    manifest = json.loads((out / "manifest.json").read_text())
    assert "compiled" not in manifest["artifacts"]
    assert not (out / "model.compiled.npz").exists()
    assert manifest["compiled_runtime"]["supported"] is False
    assert "compiled model refused" in manifest["compiled_runtime"]["reason"]


def test_tie_rows_put_every_float32_threshold_in_the_trees_input(reference: dict) -> None:  # type: ignore[type-arg]
    pipeline = reference["pipeline"]
    ties = tie_rows(pipeline)
    trees = [e.tree_ for e in pipeline.steps[1][1].estimators_[:, 0]]
    splits = sum(int(np.sum(t.children_left != -1)) for t in trees)
    assert len(ties) == 2 * splits  # one row on each side of every split, none dropped
    scaled = pipeline.steps[0][1].transform(ties).astype(np.float32).astype(np.float64)
    on_or_below = 0
    for tree in trees:
        inner = tree.children_left != -1
        for feature, threshold in zip(tree.feature[inner], tree.threshold[inner], strict=True):
            column = scaled[:, feature]
            below = np.float32(threshold)
            if below > threshold:
                below = np.nextafter(below, np.float32(-np.inf))
            above = np.nextafter(below, np.float32(np.inf))
            assert np.any(column == below) and np.any(column == above)
            on_or_below += below == threshold
    assert on_or_below > 0  # some thresholds are float32 values: rows sit exactly on them


def test_gate_refuses_a_runtime_that_sends_ties_right_on_tie_rows_alone(
    reference: dict,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from inference import tree_forest

    good = compiled_bytes(reference)
    no_sampled_rows = np.empty((0, 7))
    monkeypatch.setattr(parity, "parity_rows", lambda X, features: no_sampled_rows)
    passed = check_parity(reference["pipeline"], good, no_sampled_rows, reference["features"])
    assert passed.rows == passed.tie_rows == 5766
    monkeypatch.setattr(tree_forest, "_SEARCH_SIDE", "right")
    with pytest.raises(ParityError, match=r"\d+ of 5766 labels differ"):
        check_parity(reference["pipeline"], good, no_sampled_rows, reference["features"])


def test_manifest_records_the_parity_check(tmp_path: Path) -> None:
    out = train_churn(tmp_path, synthetic_data(800, 1))
    entry = json.loads((out / "manifest.json").read_text())["artifacts"]["compiled"]
    assert entry["sha256"] == sha256_file(out / "model.compiled.npz")
    assert entry["format"] == compiled_format.FORMAT_V3 == "sklearn-compiled-npz/3"
    parity = entry["parity"]
    assert parity["passed"] is True and parity["label_mismatches"] == 0
    assert parity["max_abs_diff"] <= parity["bound"] == PARITY_BOUND
    assert parity["holdout_rows"] == 160 and parity["random_rows"] == 10000
    assert parity["tie_rows"] > 0


def test_reference_manifests_carry_a_passed_parity_check() -> None:
    for version in ("v1", "v2"):
        manifest = json.loads((ROOT / f"model_artifacts/churn/{version}/manifest.json").read_text())
        assert manifest["artifacts"]["compiled"]["parity"]["passed"] is True


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([("svc", SVC())], r"does not support the estimator SVC \(supported: "),
        (
            [("pca", PCA(3)), ("lr", LogisticRegression())],
            r"does not support the preprocessing step PCA over numeric column\(s\) .*"
            r"\(supported: SimpleImputer, StandardScaler",
        ),
        (
            [("scaler", StandardScaler()), ("pca", PCA(3)), ("lr", LogisticRegression())],
            r"does not support the preprocessing step StandardScaler \+ PCA over numeric",
        ),
    ],
    ids=["svc", "pca", "two-steps"],
)
def test_unsupported_pipeline_is_refused_naming_what_does_not_compile(
    steps: list[tuple[str, object]], message: str
) -> None:
    X, y = generate(300, seed=1)
    pipeline = Pipeline(steps).fit(X, y)  # type: ignore[arg-type]
    features = joblib.load(ROOT / "model_artifacts/churn/v1/model.joblib")["features"]
    with pytest.raises(UnsupportedModelError, match=message) as refused:
        compile_pipeline(pipeline, model_name="m", model_version="v1", features=features)
    assert str(refused.value).endswith("runtime 'sklearn' serves this model")


@pytest.mark.parametrize(
    ("make_bytes", "message"),
    [
        (lambda good: b"not a zip", "not a compiled model archive"),
        (lambda good: rewrite(good, left=np.full(5, 10**9, dtype=np.int32)), "inconsistent"),
        (
            lambda good: rewrite(
                good, feature=np.full(len(arrays(good)["feature"]), 99, dtype=np.int32)
            ),
            "inconsistent",
        ),
        (
            lambda good: rewrite(good, meta=np.frombuffer(b'{"format": "other/9"}', np.uint8)),
            "unsupported compiled format 'other/9'",
        ),
    ],
    ids=["garbage", "child-out-of-range", "feature-out-of-range", "wrong-format"],
)
def test_loader_refuses_malformed_archives(reference: dict, make_bytes, message: str) -> None:  # type: ignore[no-untyped-def, type-arg]
    with pytest.raises(compiled_model.CompiledModelError, match=message):
        compiled_model.load(make_bytes(compiled_bytes(reference)))


def test_no_compiled_flag_writes_only_the_sklearn_artifact(tmp_path: Path) -> None:
    from training.train import main

    code = main(["--version", "v3", "--rows", "2000", "--output", str(tmp_path), "--no-compiled"])
    assert code == 0
    manifest = json.loads((tmp_path / "churn/v3/manifest.json").read_text())
    assert list(manifest["artifacts"]) == ["sklearn", "sklearn-joblib", "golden"]
    assert not (tmp_path / "churn/v3/model.compiled.npz").exists()

"""The compiled runtime's tree evaluation: every code path gives the same bits as scikit-learn."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from inference import compiled_model, compiled_pipeline, tree_forest
from tests.training import compiled_archives
from training.compile import compile_pipeline
from training.parity import check_parity
from training.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "model_artifacts" / "churn" / "v1"


@pytest.fixture(scope="module")
def reference() -> compiled_model.CompiledModel:
    return compiled_model.load((REFERENCE / "model.compiled.npz").read_bytes())


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    X, _ = generate(1000, seed=31)
    return X.astype(np.float64)


def test_every_batch_size_gives_the_same_bits(
    reference: compiled_model.CompiledModel, rows: np.ndarray
) -> None:
    """One row, small batches (one search, cumsum), large ones (per-feature search, reduce
    over the tree axis) and blocks of 256 take different numpy paths; no row's sum may move."""
    whole = reference.outputs(rows)
    for size in (1, 2, 15, 16, 17, 63, 64, 65, 256, 257, 999):
        chunked = np.concatenate(
            [reference.outputs(rows[i : i + size]) for i in range(0, max(size, 200), size)]
        )
        assert np.array_equal(chunked, whole[: len(chunked)]), size


def test_matches_scikit_learn_within_an_ulp_on_the_reference_model(
    reference: compiled_model.CompiledModel, rows: np.ndarray
) -> None:
    pipeline = joblib.load(REFERENCE / "model.joblib")["pipeline"]
    expected = pipeline.predict_proba(rows)[:, 1]
    actual = reference.outputs(rows)
    assert reference.forest.method == "bitvector"
    assert np.max(np.abs(actual - expected)) <= 1e-15


def rebuild(data: bytes, **options: int) -> tree_forest.Forest:
    arrays = compiled_archives.arrays(data)
    return tree_forest.build(
        init_raw=float(arrays["init_raw"]),
        roots=arrays["roots"].astype(np.intp),
        feature=arrays["feature"].astype(np.intp),
        threshold=arrays["threshold"],
        left=arrays["left"].astype(np.intp),
        right=arrays["right"].astype(np.intp),
        value=arrays["value"],
        depth=4,
        **options,
    )


def test_level_walk_fallback_gives_the_same_bits(
    reference: compiled_model.CompiledModel, rows: np.ndarray
) -> None:
    data = (REFERENCE / "model.compiled.npz").read_bytes()
    walk = rebuild(data, max_bitvector_leaves=8)  # the reference trees have up to 16 leaves
    assert walk.method == "level-walk"
    scaled = ((rows - reference.mean) / reference.scale).astype(np.float32).astype(np.float64)
    for size in (1, 20, 1000):
        assert np.array_equal(walk.raw(scaled[:size]), reference.forest.raw(scaled[:size]))


@pytest.mark.parametrize(
    ("max_depth", "method", "bitvector_bits"),
    [(2, "bitvector", 8), (5, "bitvector", 32), (7, "level-walk", None)],
    ids=["8-bit", "32-bit", "too-wide"],
)
def test_other_tree_depths_pass_the_parity_gate(
    max_depth: int, method: str, bitvector_bits: int | None
) -> None:
    """Bitvector widths other than the reference's 16 bits, and the fallback past 64 leaves."""
    X, y = generate(3000, seed=8)
    gbm = GradientBoostingClassifier(n_estimators=6, max_depth=max_depth, random_state=0)
    pipeline = Pipeline([("scaler", StandardScaler()), ("gbm", gbm)]).fit(X, y)
    features = joblib.load(REFERENCE / "model.joblib")["features"]
    data = compile_pipeline(pipeline, model_name="m", model_version="v1", features=features)
    model = compiled_model.load(data)
    assert isinstance(model, compiled_pipeline.CompiledPipeline)
    assert isinstance(model.estimator, compiled_pipeline._Trees)
    forest = model.estimator.forest
    assert forest.method == method
    if bitvector_bits is not None:
        evaluator = forest.evaluator
        assert isinstance(evaluator, tree_forest._Bitvectors)
        assert evaluator.table.dtype == np.dtype(f"uint{bitvector_bits}")
    report = check_parity(pipeline, data, X[:500], features)
    assert report.passed and report.tie_rows > 0


def test_a_forest_of_single_leaves_predicts_the_prior() -> None:
    forest = tree_forest.build(
        init_raw=0.25,
        roots=np.array([0, 1], dtype=np.intp),
        feature=np.zeros(2, dtype=np.intp),
        threshold=np.full(2, np.inf),
        left=np.array([0, 1], dtype=np.intp),
        right=np.array([0, 1], dtype=np.intp),
        value=np.array([0.5, -0.125]),
        depth=0,
    )
    assert forest.raw(np.zeros((3, 7))).tolist() == [0.625] * 3


def test_a_node_under_two_parents_is_refused() -> None:
    shared = {
        "roots": np.array([0], dtype=np.intp),
        "feature": np.zeros(3, dtype=np.intp),
        "threshold": np.array([0.0, np.inf, np.inf]),
        "left": np.array([1, 1, 2], dtype=np.intp),
        "right": np.array([1, 1, 2], dtype=np.intp),  # both children are node 1
        "value": np.zeros(3),
    }
    with pytest.raises(tree_forest.ForestStructureError, match="not one binary tree per root"):
        tree_forest.build(init_raw=0.0, depth=1, **shared)


def test_a_tree_deeper_than_declared_is_refused() -> None:
    with pytest.raises(tree_forest.ForestStructureError, match="deeper than the declared depth 0"):
        tree_forest.build(
            init_raw=0.0,
            roots=np.array([0], dtype=np.intp),
            feature=np.zeros(3, dtype=np.intp),
            threshold=np.array([0.0, np.inf, np.inf]),
            left=np.array([1, 1, 2], dtype=np.intp),
            right=np.array([2, 1, 2], dtype=np.intp),
            value=np.zeros(3),
            depth=0,
        )

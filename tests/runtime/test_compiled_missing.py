"""Trees fitted on data with NaN, and histogram gradient boosting's native categorical
splits, compile: NaN, unknown and out-of-range categories go where scikit-learn sends them.

The estimator's input here is a float matrix (NaN allowed; categories as numbers), so these
tests hold the trees alone to scikit-learn, whatever preprocessing feeds them. Small data
generated here, and scikit-learn's bundled datasets with NaN injected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from inference import compiled_model, compiled_pipeline, tree_forest
from tests.training.compiled_archives import arrays, rewrite
from training.compile import compile_pipeline
from training.compile_support import UnsupportedModelError
from training.parity import check_parity, expected_outputs, labels_of

BOUND = 1e-12
ROWS = 500
CATEGORIES = (5, 3)  # columns 4 and 5: codes 0..K-1
CATEGORICAL = [4, 5]


def _data() -> tuple[np.ndarray, dict[str, np.ndarray]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(7)
    numeric = rng.normal(size=(ROWS, 4))
    codes = np.column_stack([rng.integers(0, k, ROWS) for k in CATEGORIES]).astype(np.float64)
    score = (
        numeric[:, 0]
        - 0.5 * numeric[:, 1]
        + np.isin(codes[:, 0], [1, 3])
        - (codes[:, 1] == 2)
        + 0.2 * rng.normal(size=ROWS)
    )
    X = np.hstack([numeric, codes])
    # NaN in every column but 3: column 3 had none at fit time (NaN there at predict time
    # goes to each node's larger child).
    holes = rng.random(X.shape) < 0.15
    holes[:, 3] = False
    X[holes] = np.nan
    targets = {
        "binary": (score > 0.3).astype(np.int64),
        "multiclass": np.digitize(score, [-0.5, 0.8]).astype(np.int64),
        "regression": 2 * score,
    }
    return X, targets


X, TARGETS = _data()


def _predict_rows() -> np.ndarray:  # type: ignore[type-arg]
    """Clean rows, rows with NaN (column 3's too), unknown, negative, fractional categories."""
    rng = np.random.default_rng(11)
    clean = rng.normal(size=(60, 6))
    clean[:, 4] = rng.integers(0, CATEGORIES[0], 60)
    clean[:, 5] = rng.integers(0, CATEGORIES[1], 60)
    holes = clean.copy()
    holes[rng.random(holes.shape) < 0.3] = np.nan
    odd = clean[:24].copy()
    odd[:, 4] = np.tile([-1.0, 5.0, 99.0, 2.5, -0.0, 1e6], 4)
    odd[:, 5] = np.tile([3.0, -1.0, np.nan, 0.5], 6)
    return np.vstack([clean, holes, odd, X[:100]])


ROWS_TO_PREDICT = _predict_rows()
# Rows a categorical split sends to its missing side: NaN anywhere, or an unknown category.
MISSING_LIKE = (
    np.isnan(ROWS_TO_PREDICT).any(axis=1)
    | ~np.isin(ROWS_TO_PREDICT[:, 4], np.arange(CATEGORIES[0]))
    | ~np.isin(ROWS_TO_PREDICT[:, 5], np.arange(CATEGORIES[1]))
)

SMALL: dict[str, Callable[[str], Any]] = {
    "DecisionTree": lambda task: (
        DecisionTreeRegressor if task == "regression" else DecisionTreeClassifier
    )(max_depth=5, random_state=0),
    "RandomForest": lambda task: (
        RandomForestRegressor if task == "regression" else RandomForestClassifier
    )(n_estimators=4, max_depth=5, random_state=0),
    "ExtraTrees": lambda task: (
        ExtraTreesRegressor if task == "regression" else ExtraTreesClassifier
    )(n_estimators=4, max_depth=5, random_state=0),
    "HistGradientBoosting": lambda task: _hgb(task),
    "HistGradientBoosting-categorical": lambda task: _hgb(task, categorical_features=CATEGORICAL),
    "HistGradientBoosting-mask": lambda task: _hgb(
        task, categorical_features=np.isin(np.arange(6), CATEGORICAL)
    ),
}


def _hgb(task: str, **options: Any) -> Any:
    kind = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    return kind(**{"max_iter": 8, "max_leaf_nodes": 15, "random_state": 0, **options})


CASES = [
    pytest.param(task, name, id=f"{task}-{name}")
    for task in ("binary", "multiclass", "regression")
    for name in SMALL
]


def compiled(estimator: Any, task: str, width: int = 6) -> bytes:
    classes = None if task == "regression" else [int(c) for c in estimator.classes_]
    features = [{"name": f"x{i}", "dtype": "number"} for i in range(width)]
    return compile_pipeline(
        estimator, model_name="m", model_version="v1", features=features, task=task, classes=classes
    )


def level_walk(data: bytes, width: int = 6) -> compiled_pipeline.CompiledPipeline:
    """The same archive with the bitvector evaluator swapped for the level walk."""
    model = compiled_model.load(data)
    assert isinstance(model, compiled_pipeline.CompiledPipeline)
    assert isinstance(model.estimator, compiled_pipeline._Trees)
    stored = arrays(data)
    meta = json.loads(stored["meta"].tobytes())
    init = stored["init"]
    model.estimator.forest = tree_forest.build(
        init_raw=float(init[0]) if stored["value"].ndim == 1 else init,
        roots=stored["roots"].astype(np.intp),
        feature=stored["feature"].astype(np.intp),
        threshold=stored["threshold"],
        left=stored["left"].astype(np.intp),
        right=stored["right"].astype(np.intp),
        value=stored["value"],
        depth=meta["depth"],
        max_bitvector_leaves=1,
        **compiled_pipeline._routing(stored, stored["feature"].shape[0], width),
    )
    return model


def assert_parity(model: Any, estimator: Any, task: str, rows: np.ndarray) -> None:  # type: ignore[type-arg]
    expected = expected_outputs(estimator, task, rows)
    for size in (1, 7, 63, 64, 300, len(rows)):  # one search / per-feature searches / blocks
        actual = np.concatenate(
            [model.outputs(rows[i : i + size]) for i in range(0, len(rows), size)]
        )
        assert np.max(np.abs(actual - expected)) <= BOUND, size
        assert np.array_equal(labels_of(actual, task), labels_of(expected, task)), size


@pytest.mark.parametrize(("task", "name"), CASES)
def test_trees_with_missing_values_and_categories_match_scikit_learn(task: str, name: str) -> None:
    estimator = SMALL[name](task).fit(X, TARGETS[task])
    data = compiled(estimator, task)
    model = compiled_model.load(data)
    assert model.estimator.forest.method == "bitvector"  # type: ignore[union-attr]
    assert_parity(model, estimator, task, ROWS_TO_PREDICT)
    walk = level_walk(data)
    assert walk.estimator.forest.method == "level-walk"  # type: ignore[union-attr]
    assert_parity(walk, estimator, task, ROWS_TO_PREDICT)
    # The two evaluators add the same leaves in the same order: the same bits.
    assert np.array_equal(walk.outputs(ROWS_TO_PREDICT), model.outputs(ROWS_TO_PREDICT))
    stored = arrays(data)
    assert stored["missing_left"].dtype == np.uint8
    assert stored["missing_left"].shape == stored["feature"].shape
    assert ("cat_split" in stored) == ("categorical" in name or "mask" in name)


@pytest.mark.parametrize("name", ["DecisionTree", "HistGradientBoosting-categorical"])
def test_nan_rows_follow_the_missing_side_not_a_comparison(name: str) -> None:
    """Flipping every node's missing side moves NaN and unknown-category rows only."""
    estimator = SMALL[name]("regression").fit(X, TARGETS["regression"])
    data = compiled(estimator, "regression")
    flipped = arrays(data)["missing_left"] ^ np.uint8(1)
    wrong = compiled_model.load(rewrite(data, missing_left=flipped))
    expected = estimator.predict(ROWS_TO_PREDICT)
    actual = wrong.outputs(ROWS_TO_PREDICT)
    assert np.max(np.abs(actual[~MISSING_LIKE] - expected[~MISSING_LIKE])) <= BOUND
    assert np.max(np.abs(actual[MISSING_LIKE] - expected[MISSING_LIKE])) > 1e-3


def test_deep_trees_take_the_level_walk_with_nan_and_categories() -> None:
    """Past 64 leaves the level walk is the only evaluator: it must route alone."""
    for estimator, task in (
        (RandomForestClassifier(n_estimators=3, random_state=0), "multiclass"),
        (
            _hgb(
                "binary", categorical_features=CATEGORICAL, max_leaf_nodes=100, min_samples_leaf=2
            ),
            "binary",
        ),
    ):
        estimator = clone(estimator).fit(X, TARGETS[task])
        model = compiled_model.load(compiled(estimator, task))
        assert model.estimator.forest.method == "level-walk"  # type: ignore[union-attr]
        assert_parity(model, estimator, task, ROWS_TO_PREDICT)


def test_categorical_features_by_name_on_a_dataframe() -> None:
    names = [f"x{i}" for i in range(6)]
    frame = pd.DataFrame(X, columns=names)
    estimator = _hgb("multiclass", categorical_features=["x4", "x5"])
    estimator.fit(frame, TARGETS["multiclass"])
    model = compiled_model.load(compiled(estimator, "multiclass"))
    expected = estimator.predict_proba(pd.DataFrame(ROWS_TO_PREDICT, columns=names))
    actual = model.outputs(ROWS_TO_PREDICT)
    assert np.max(np.abs(actual - expected)) <= BOUND
    assert np.array_equal(labels_of(actual, "multiclass"), np.argmax(expected, axis=1))


def test_categories_that_are_not_codes_keep_their_own_values() -> None:
    """Known values 10, 20.5, 40 (not 0..K-1): a value's index is its rank among them."""
    Xv = X.copy()
    Xv[:, 4] = np.array([10.0, 20.5, 40.0, 10.0, 20.5])[np.nan_to_num(X[:, 4], nan=0).astype(int)]
    Xv[np.isnan(X[:, 4]), 4] = np.nan
    estimator = _hgb("binary", categorical_features=[4]).fit(Xv, TARGETS["binary"])
    stored = arrays(compiled(estimator, "binary"))
    assert stored["cat_values"].tolist() == [10.0, 20.5, 40.0]
    assert stored["cat_offsets"].tolist() == [0, 0, 0, 0, 0, 3, 3]
    rows = ROWS_TO_PREDICT.copy()
    rows[:, 4] = np.tile([10.0, 20.5, 40.0, 0.0, 1.0, np.nan, 20.0], len(rows))[: len(rows)]
    model = compiled_model.load(compiled(estimator, "binary"))
    assert_parity(model, estimator, "binary", rows)


BUNDLED = {
    "breast_cancer": ("binary", load_breast_cancer),
    "wine": ("multiclass", load_wine),
    "diabetes": ("regression", load_diabetes),
}


@pytest.mark.parametrize("dataset", BUNDLED)
@pytest.mark.parametrize("name", ["RandomForest", "ExtraTrees", "HistGradientBoosting"])
def test_bundled_datasets_with_injected_nan(dataset: str, name: str) -> None:
    task, load = BUNDLED[dataset]
    data, target = load(return_X_y=True)
    data = np.asarray(data, dtype=np.float64).copy()
    rng = np.random.default_rng(3)
    data[rng.random(data.shape) < 0.1] = np.nan
    estimator = SMALL[name](task).fit(data[::2], target[::2])
    model = compiled_model.load(compiled(estimator, task, width=data.shape[1]))
    holdout = data[1::2]
    assert np.isnan(holdout).any(axis=1).sum() > len(holdout) // 2
    assert_parity(model, estimator, task, holdout)


def test_pandas_string_categories_fall_back_naming_the_feature() -> None:
    frame = pd.DataFrame(X[:, :4], columns=["a", "b", "c", "d"])
    frame["colour"] = pd.Categorical(np.array(["red", "green", "blue"])[np.arange(ROWS) % 3])
    estimator = _hgb("binary", categorical_features="from_dtype").fit(frame, TARGETS["binary"])
    with pytest.raises(UnsupportedModelError, match="categorical feature 4 of object categories"):
        compiled(estimator, "binary", width=5)


# ---- archives ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def categorical_bytes() -> bytes:
    estimator = _hgb("binary", categorical_features=CATEGORICAL).fit(X, TARGETS["binary"])
    return compiled(estimator, "binary")


DAMAGE: dict[str, tuple[Callable[[dict[str, np.ndarray]], dict[str, Any]], str]] = {  # type: ignore[type-arg]
    "missing-left-length": (
        lambda a: {"missing_left": a["missing_left"][:-1]},
        "missing_left is not one integer per node",
    ),
    "missing-left-two": (
        lambda a: {"missing_left": np.full_like(a["missing_left"], 2)},
        "missing_left is not one 0 or 1 per node",
    ),
    "cat-left-alone": (lambda a: {"cat_split": None}, "cat_split and cat_left come together"),
    "bitset-row-missing": (
        lambda a: {"cat_left": a["cat_left"][:1]},
        "a categorical split's bitset row [0-9]+ is missing",
    ),
    "offsets-short": (
        lambda a: {"cat_offsets": a["cat_offsets"][:-1]},
        "cat_offsets do not cut cat_values",
    ),
    "values-descending": (
        lambda a: {"cat_values": a["cat_values"][::-1].copy()},
        "categorical feature 4's known values are not ascending",
    ),
    "values-nan": (
        lambda a: {"cat_values": np.where(np.arange(8) == 6, np.nan, a["cat_values"])},
        "categorical feature 5's known values are not finite numbers",
    ),
    "numeric-split-on-a-category": (
        lambda a: {"cat_split": np.full_like(a["cat_split"], -1)},
        "a split's kind does not match its feature",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_loader_refuses_damaged_routing_arrays(categorical_bytes: bytes, damage: str) -> None:
    change, message = DAMAGE[damage]
    with pytest.raises(compiled_model.CompiledModelError, match=message):
        compiled_model.load(rewrite(categorical_bytes, **change(arrays(categorical_bytes))))


def test_without_missing_left_nan_goes_right_in_both_evaluators() -> None:
    """A v2 archive has no missing_left: NaN never reached it; its default sends NaN right."""
    stump = {
        "init_raw": 0.0,
        "roots": np.array([0], dtype=np.intp),
        "feature": np.array([0, 0, 0], dtype=np.intp),
        "threshold": np.array([0.5, np.inf, np.inf]),
        "left": np.array([1, 1, 2], dtype=np.intp),
        "right": np.array([2, 1, 2], dtype=np.intp),
        "value": np.array([0.0, 1.0, 2.0]),
        "depth": 1,
    }
    rows = np.array([[np.nan], [0.0], [1.0]])
    for leaves in (64, 1):
        default = tree_forest.build(**stump, max_bitvector_leaves=leaves)  # type: ignore[arg-type]
        assert default.raw(rows).tolist() == [2.0, 1.0, 2.0]
        left = tree_forest.build(
            **stump,  # type: ignore[arg-type]
            max_bitvector_leaves=leaves,
            missing_left=np.array([1, 0, 0], dtype=np.uint8),
        )
        assert left.raw(rows).tolist() == [1.0, 1.0, 2.0]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_split_that_sends_only_nan_right_has_threshold_inf(task: str) -> None:
    """When NaN alone decides, scikit-learn splits at +inf (x <= inf for every number)."""
    rng = np.random.default_rng(5)
    data = rng.normal(size=(300, 2))
    data[::3, 1] = np.nan
    target = np.isnan(data[:, 1]).astype(np.int64)
    estimator = SMALL["DecisionTree"](task).fit(data, target)
    assert np.isposinf(estimator.tree_.threshold[0]) and not estimator.tree_.missing_go_to_left[0]
    features = [
        {"name": f"x{i}", "dtype": "number", "allowed": {"min": -1e6, "max": 1e6}} for i in range(2)
    ]
    data_bytes = compiled(estimator, task, width=2)
    model = compiled_model.load(data_bytes)
    rows = np.vstack([data, [[0.0, 1e6], [0.0, -1e6], [0.0, np.nan]]])
    assert_parity(model, estimator, task, rows)
    # The packaging gate's tie rows skip the +inf split (no number ties it): no crash on inf.
    assert check_parity(estimator, data_bytes, data[:50], features, task=task).passed


def test_pandas_string_categories_read_the_schema_codes() -> None:
    """``from_dtype`` on a DataFrame: the runtime's column holds the schema's code of each
    value (schema order, not the encoder's sorted order); unknown (-1) and NaN go missing."""
    rng = np.random.default_rng(9)
    colours = np.array(["red", "green", "blue", "teal"])
    frame = pd.DataFrame(X[:, :4], columns=["a", "b", "c", "d"])
    picked = colours[rng.integers(0, 4, ROWS)].astype(object)
    picked[rng.random(ROWS) < 0.1] = np.nan
    frame["colour"] = pd.Categorical(picked, categories=["blue", "green", "red", "teal"])
    target = (frame["colour"].isin(["red", "teal"]).to_numpy() ^ (X[:, 0] > 0)).astype(np.int64)
    estimator = _hgb("binary", categorical_features="from_dtype").fit(frame, target)
    schema_values = ["teal", "red", "purple", "green", "blue"]  # "purple": unseen at fit
    features = [{"name": n, "dtype": "number"} for n in "abcd"]
    features.append(
        {"name": "colour", "dtype": "categorical", "allowed": {"values": schema_values}}
    )
    data = compile_pipeline(
        estimator, model_name="m", model_version="v1", features=features, classes=[0, 1]
    )
    assert arrays(data)["cat_values"].tolist() == [0.0, 1.0, 3.0, 4.0]
    codes = np.tile([0.0, 1.0, 2.0, 3.0, 4.0, -1.0, np.nan], 30)[:200]
    rows = np.column_stack([ROWS_TO_PREDICT[:200, :4], codes])
    named = np.array([*schema_values, "unseen"], dtype=object)
    as_frame = pd.DataFrame(rows[:, :4], columns=["a", "b", "c", "d"])
    values = named[np.nan_to_num(codes, nan=0).astype(int)].astype(object)
    values[np.isnan(codes)] = np.nan
    as_frame["colour"] = pd.Categorical(values, categories=sorted(named))  # unseen ones too
    expected = estimator.predict_proba(as_frame)[:, 1]
    for model in (compiled_model.load(data), level_walk(data, width=5)):
        actual = model.outputs(rows)
        assert np.max(np.abs(actual - expected)) <= BOUND
        assert np.array_equal(labels_of(actual, "binary"), labels_of(expected, "binary"))

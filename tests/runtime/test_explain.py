"""Explanations of the compiled runtime (``inference.explain``) are exact.

Trees: the contributions equal ``shap.TreeExplainer(feature_perturbation=
"tree_path_dependent")``'s within 1e-9 for every estimator family the runtime compiles and
every task, through the pattern tables and through the per-row fallback; one-hot columns
add up to their categorical feature as shap's per-column values summed over them do.
Linear models: the closed form ``coef * z``, and ``shap.LinearExplainer`` with a zero-mean
background. Everywhere: base plus contributions is the model's raw output within 1e-9
(local accuracy), on generated models and on every golden row of the committed models.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from inference import compiled_model, explain
from inference.compiled_pipeline import CompiledPipeline
from serving.artifacts import verify_version
from tests.training.compiled_archives import rewrite
from training.compile import compile_pipeline

ROOT = Path(__file__).resolve().parents[2]
BOUND = 1e-9
CATEGORIES = (3, 4)
# Estimator input columns of each schema feature under "onehot" (3 scaled, then one-hot).
ONEHOT_COLUMNS = [[0], [1], [2], [3, 4, 5], [6, 7, 8, 9]]
ROWS = 300


def _data() -> tuple[np.ndarray, dict[str, np.ndarray], list[dict[str, Any]]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(7)
    numeric = np.column_stack(
        [rng.normal(50, 10, ROWS), rng.integers(0, 100, ROWS), rng.uniform(-3, 3, ROWS)]
    )
    codes = np.column_stack([rng.integers(0, k, ROWS) for k in CATEGORIES]).astype(np.float64)
    score = (numeric[:, 0] - 50) / 10 + numeric[:, 2] + (codes[:, 0] == 1) - 0.5 * codes[:, 1]
    score += 0.3 * numeric[:, 2] * (codes[:, 1] == 2)
    targets = {
        "binary": (score > 0).astype(np.int64),
        "multiclass": np.digitize(score, [-1.0, 0.5]).astype(np.int64),
        "regression": score * 3 + rng.normal(0, 0.1, ROWS),
    }
    features: list[dict[str, Any]] = [
        {"name": f"x{i}", "dtype": "number", "allowed": {"min": -1e6, "max": 1e6}} for i in range(3)
    ]
    features += [
        {
            "name": f"c{i}",
            "dtype": "categorical",
            "allowed": {"values": [f"v{j}" for j in range(k)]},
        }
        for i, k in enumerate(CATEGORIES)
    ]
    return np.hstack([numeric, codes]), targets, features


X, TARGETS, FEATURES = _data()
QUERY = X[:60]


def _onehot() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), [0, 1, 2]),
            (
                "categorical",
                OneHotEncoder(categories=[list(range(k)) for k in CATEGORIES], sparse_output=False),
                [3, 4],
            ),
        ]
    )


TREES: dict[str, list[Any]] = {
    "binary": [
        GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
        HistGradientBoostingClassifier(max_iter=8, random_state=0),
        RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0),
        ExtraTreesClassifier(n_estimators=4, max_depth=6, random_state=0),
        DecisionTreeClassifier(max_depth=5, random_state=0),
    ],
    "regression": [
        GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0),
        HistGradientBoostingRegressor(max_iter=8, random_state=0),
        RandomForestRegressor(n_estimators=4, max_depth=6, random_state=0),
        ExtraTreesRegressor(n_estimators=4, max_depth=6, random_state=0),
        DecisionTreeRegressor(max_depth=5, random_state=0),
    ],
}
TREES["multiclass"] = TREES["binary"]
SPACE = {
    "GradientBoostingClassifier": "log_odds",
    "HistGradientBoostingClassifier": "log_odds",
    "RandomForestClassifier": "probability",
    "ExtraTreesClassifier": "probability",
    "DecisionTreeClassifier": "probability",
}
TREE_CASES = [
    pytest.param(task, i, pre, id=f"{task}-{type(est).__name__}-{pre}")
    for task, estimators in TREES.items()
    for i, est in enumerate(estimators)
    for pre in ("none", "onehot")
]


def _fit(task: str, estimator: Any, pre: str) -> Pipeline:
    from sklearn.base import clone

    steps = [] if pre == "none" else [("pre", _onehot())]
    return Pipeline([*steps, ("model", clone(estimator))]).fit(X, TARGETS[task])


def _compiled(pipeline: Pipeline, task: str) -> CompiledPipeline:
    classes = None if task == "regression" else sorted(set(TARGETS[task].tolist()))
    data = compile_pipeline(
        pipeline,
        model_name="m",
        model_version="v1",
        features=FEATURES,
        task=task,
        classes=classes,
    )
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    return model


def _raw(model: CompiledPipeline, rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The model's raw output, (rows, outputs), in the explanation's space."""
    raw = model.estimator.raw(model.preprocess.apply(rows))
    raw = raw.reshape(rows.shape[0], -1)
    if model.task == "binary" and raw.shape[1] == 2:
        raw = raw[:, 1:]
    return raw


def _shap_trees(estimator: Any, Z: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """shap's path-dependent values (rows, columns, outputs) and expected values."""
    if isinstance(estimator, GradientBoostingClassifier) and task == "multiclass":
        # shap takes binary GradientBoostingClassifiers only: each class's trees as a model.
        values, bases = [], []
        for k in range(estimator.estimators_.shape[1]):
            trees = [
                {
                    "children_left": t.children_left,
                    "children_right": t.children_right,
                    "children_default": t.children_left,
                    "features": t.feature,
                    "thresholds": t.threshold,
                    "values": t.value[:, 0, :1] * estimator.learning_rate,
                    "node_sample_weight": t.weighted_n_node_samples,
                }
                for t in (e.tree_ for e in estimator.estimators_[:, k])
            ]
            init = float(estimator._raw_predict_init(Z[:1].astype(np.float32))[0, k])
            model = {
                "trees": trees,
                "base_offset": init,
                "input_dtype": np.float32,
                "tree_output": "raw_value",
            }
            explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
            values.append(explainer.shap_values(Z))
            bases.append(float(np.ravel(explainer.expected_value)[0]))
        return np.stack(values, axis=-1), np.array(bases)
    explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    values = np.asarray(explainer.shap_values(Z))
    base = np.ravel(np.asarray(explainer.expected_value, dtype=np.float64))
    if values.ndim == 2:
        values = values[:, :, None]
    if task == "binary" and values.shape[2] == 2:
        values, base = values[:, :, 1:], base[1:]
    return values, base


def _by_feature(values: np.ndarray, pre: str) -> np.ndarray:  # type: ignore[type-arg]
    """shap's per-column values summed over each schema feature's columns."""
    if pre == "none":
        return values
    return np.stack([values[:, cols].sum(axis=1) for cols in ONEHOT_COLUMNS], axis=1)


def _check_trees(task: str, index: int, pre: str) -> explain.TreeExplainer:
    pipeline = _fit(task, TREES[task][index], pre)
    model = _compiled(pipeline, task)
    explainer = model.explainer()
    assert isinstance(explainer, explain.TreeExplainer)
    got = explainer.explain(QUERY)
    Z = QUERY if pre == "none" else pipeline[:-1].transform(QUERY)
    expected, base = _shap_trees(pipeline[-1], Z, task)
    outputs = 3 if task == "multiclass" else 1
    assert got.contributions.shape == (QUERY.shape[0], len(FEATURES), outputs)
    assert got.base.shape == (outputs,)
    assert np.max(np.abs(got.contributions - _by_feature(expected, pre))) <= BOUND
    assert np.max(np.abs(got.base - base)) <= BOUND
    total = got.base + got.contributions.sum(axis=1)
    assert np.max(np.abs(total - _raw(model, QUERY))) <= BOUND
    name = type(pipeline[-1]).__name__
    assert got.space == ("value" if task == "regression" else SPACE[name])
    return explainer


@pytest.mark.parametrize(("task", "index", "pre"), TREE_CASES)
def test_trees_match_shap_path_dependent_and_add_up(task: str, index: int, pre: str) -> None:
    explainer = _check_trees(task, index, pre)
    assert explainer.table is not None  # small trees: the pattern tables


@pytest.mark.parametrize(
    ("task", "index", "pre"),
    [p for p in TREE_CASES if p.values[2] == "onehot"],  # type: ignore[index]
)
@pytest.mark.parametrize(
    ("tables", "dense"),
    [(False, True), (False, False), (True, False)],
    ids=["computed-matrix", "computed-counts", "tables-counts"],
)
def test_every_evaluation_path_is_as_exact(
    task: str, index: int, pre: str, tables: bool, dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights looked up or computed per row; added onto features by a matrix product or
    by weighted counts (what models too large for the tables or the matrix take)."""
    if not tables:
        monkeypatch.setattr(explain, "MAX_TABLE_ENTRIES", 0)
    if not dense:
        monkeypatch.setattr(explain, "_DENSE_MAP_ENTRIES", 0)
    explainer = _check_trees(task, index, pre)
    assert (explainer.table is not None) == tables and (explainer.map is not None) == dense


def test_deep_forests_fall_back_and_stay_exact() -> None:
    """Trees grown to purity on noise: paths split on more distinct features than the
    tables take, so the weights are computed per row (in several blocks of rows)."""
    rng = np.random.default_rng(11)
    noise = rng.normal(size=(400, 30))
    labels = rng.integers(0, 3, 400)
    forest = RandomForestClassifier(n_estimators=3, random_state=1).fit(noise, labels)
    features = [
        {"name": f"n{i}", "dtype": "number", "allowed": {"min": -1e6, "max": 1e6}}
        for i in range(30)
    ]
    data = compile_pipeline(
        forest,
        model_name="m",
        model_version="v1",
        features=features,
        task="multiclass",
        classes=[0, 1, 2],
    )
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    explainer = model.explainer()
    assert isinstance(explainer, explain.TreeExplainer)
    assert explainer.n_slots > explain.MAX_TABLE_SLOTS and explainer.table is None
    rows = noise[:100]
    got = explainer.explain(rows)
    expected, base = _shap_trees(forest, rows, "multiclass")
    assert np.max(np.abs(got.contributions - expected)) <= BOUND
    assert np.max(np.abs(got.base - base)) <= BOUND
    total = got.base + got.contributions.sum(axis=1)
    assert np.max(np.abs(total - _raw(model, rows))) <= BOUND


def test_rows_explain_alike_alone_and_in_a_batch() -> None:
    model = _compiled(_fit("binary", TREES["binary"][0], "onehot"), "binary")
    explainer = model.explainer()
    whole = explainer.explain(QUERY).contributions
    single = np.concatenate([explainer.explain(QUERY[i : i + 1]).contributions for i in range(7)])
    assert np.max(np.abs(single - whole[:7])) <= 1e-15


LINEAR = [
    pytest.param("binary", LogisticRegression(max_iter=1000), id="binary-logistic"),
    pytest.param("multiclass", LogisticRegression(max_iter=1000), id="multiclass-logistic"),
    pytest.param("regression", LinearRegression(), id="regression-linear"),
    pytest.param("regression", Ridge(), id="regression-ridge"),
]


@pytest.mark.parametrize(("task", "estimator"), LINEAR)
def test_linear_contributions_are_the_closed_form(task: str, estimator: Any) -> None:
    pipeline = Pipeline([("pre", _onehot()), ("model", estimator)]).fit(X, TARGETS[task])
    model = _compiled(pipeline, task)
    got = model.explainer().explain(QUERY)
    fitted = pipeline[-1]
    coef = np.atleast_2d(fitted.coef_)
    Z = pipeline[:-1].transform(QUERY)
    closed = Z[:, :, None] * coef.T[None, :, :]  # (rows, columns, outputs)
    assert np.max(np.abs(got.contributions - _by_feature(closed, "onehot"))) <= BOUND
    assert np.array_equal(got.base, np.atleast_1d(fitted.intercept_).astype(np.float64))
    assert got.space == ("value" if task == "regression" else "log_odds")
    total = got.base + got.contributions.sum(axis=1)
    assert np.max(np.abs(total - _raw(model, QUERY))) <= BOUND
    # shap.LinearExplainer with a zero-mean background: the same reference point z = 0.
    width = Z.shape[1]
    linear = shap.LinearExplainer(fitted, (np.zeros(width), np.eye(width)))
    values = np.asarray(linear.shap_values(Z)).reshape(Z.shape[0], width, -1)
    assert np.max(np.abs(got.contributions - _by_feature(values, "onehot"))) <= BOUND


def test_standardized_columns_agree_with_shap_linear_on_the_training_mean() -> None:
    """Scaled numeric columns only: z = 0 is the training mean, LinearExplainer's base."""
    pipeline = Pipeline([("pre", StandardScaler()), ("model", Ridge())])
    pipeline.fit(X[:, :3], TARGETS["regression"])
    data = compile_pipeline(
        pipeline, model_name="m", model_version="v1", features=FEATURES[:3], task="regression"
    )
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    got = model.explainer().explain(QUERY[:, :3])
    background = pipeline[0].transform(X[:, :3])
    # The whole training set as background (its means and covariance: no subsampling).
    linear = shap.LinearExplainer(pipeline[-1], (background.mean(axis=0), np.cov(background.T)))
    values = linear.shap_values(pipeline[0].transform(QUERY[:, :3]))
    assert np.max(np.abs(got.contributions[:, :, 0] - values)) <= BOUND
    assert abs(got.base[0] - float(np.ravel(linear.expected_value)[0])) <= BOUND


def _golden_models() -> list[Any]:
    return [
        pytest.param(path, id=f"{path.parent.name}-{path.name}")
        for path in sorted((ROOT / "model_artifacts").glob("*/*"))
        if (path / "golden.json").exists()
    ]


@pytest.mark.parametrize("version_dir", _golden_models())
def test_every_golden_row_of_the_committed_models_adds_up(version_dir: Path) -> None:
    """The committed archives are format 1 (no cover): their pipelines, compiled again."""
    assert not verify_version(version_dir)  # a pickle is loaded below: only pinned bytes
    payload = joblib.load(version_dir / "model.joblib")
    golden = json.loads((version_dir / "golden.json").read_text())
    rows = np.asarray(golden["features"], dtype=np.float64)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    model = _compiled_from(payload, manifest)
    got = model.explainer().explain(rows)
    total = got.base + got.contributions.sum(axis=1)
    assert rows.shape[0] == golden["rows"] and got.contributions.shape[:2] == rows.shape
    assert np.max(np.abs(total - _raw(model, rows))) <= BOUND
    pipeline = payload["pipeline"]
    Z = pipeline[:-1].transform(rows)
    expected, base = _shap_trees(pipeline[-1], Z, model.task)
    assert np.max(np.abs(got.contributions - expected)) <= BOUND
    assert np.max(np.abs(got.base - base)) <= BOUND


def _compiled_from(payload: dict[str, Any], manifest: dict[str, Any]) -> CompiledPipeline:
    task = manifest.get("task", "binary")
    classes = manifest.get("classes", [0, 1]) if task != "regression" else None
    data = compile_pipeline(
        payload["pipeline"],
        model_name=manifest["model_name"],
        model_version=manifest["model_version"],
        features=payload["features"],
        task=task,
        classes=classes,
    )
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    return model


def test_an_archive_without_cover_predicts_but_cannot_explain() -> None:
    pipeline = _fit("binary", TREES["binary"][0], "none")
    data = compile_pipeline(pipeline, model_name="m", model_version="v7", features=FEATURES)
    older = compiled_model.load(rewrite(data, cover=None))
    assert isinstance(older, CompiledPipeline)
    assert np.array_equal(older.outputs(QUERY), compiled_model.load(data).outputs(QUERY))
    with pytest.raises(explain.ExplanationsUnavailableError, match=r"m v7: .*no 'cover' array"):
        older.explainer()


@pytest.mark.parametrize("cover", [0.0, -1.0, np.nan])
def test_a_cover_that_is_not_a_positive_weight_is_refused(cover: float) -> None:
    pipeline = _fit("regression", TREES["regression"][0], "none")
    data = compile_pipeline(
        pipeline, model_name="m", model_version="v1", features=FEATURES, task="regression"
    )
    original = compiled_model.load(data)
    assert isinstance(original, CompiledPipeline)
    damaged = original.arrays["cover"].copy()
    damaged[3] = cover
    model = compiled_model.load(rewrite(data, cover=damaged))
    assert isinstance(model, CompiledPipeline)
    with pytest.raises(explain.ExplanationsUnavailableError, match="positive weight per node"):
        model.explainer()


def test_cover_is_what_shap_weighs_by() -> None:
    """sklearn trees: weighted_n_node_samples; histogram boosting: each node's count."""
    weights = np.random.default_rng(3).uniform(0.5, 2.0, ROWS)
    gbm = GradientBoostingRegressor(n_estimators=3, max_depth=2, random_state=0)
    gbm.fit(X, TARGETS["regression"], sample_weight=weights)
    hgb = HistGradientBoostingRegressor(max_iter=3, random_state=0).fit(X, TARGETS["regression"])
    for estimator, expected in (
        (gbm, [e.tree_.weighted_n_node_samples for e in gbm.estimators_[:, 0]]),
        (hgb, [p[0].nodes["count"] for p in hgb._predictors]),
    ):
        data = compile_pipeline(
            estimator, model_name="m", model_version="v1", features=FEATURES, task="regression"
        )
        model = compiled_model.load(data)
        assert isinstance(model, CompiledPipeline)
        assert np.array_equal(model.arrays["cover"], np.concatenate(expected).astype(np.float64))


def test_explanations_cost_nothing_until_asked_for(tmp_path: Path) -> None:
    """Loading, as a cold start does, imports no explanation code; the explainer is built
    on first use, then kept."""
    pipeline = _fit("binary", TREES["binary"][0], "none")
    archive = tmp_path / "model.compiled.npz"
    archive.write_bytes(
        compile_pipeline(pipeline, model_name="m", model_version="v1", features=FEATURES)
    )
    script = (
        "import sys\n"
        "from inference import compiled_model\n"
        f"model = compiled_model.load(open({str(archive)!r}, 'rb').read())\n"
        "model.outputs(__import__('numpy').zeros((1, 5)))\n"
        "print('inference.explain' in sys.modules)\n"
        "first = model.explainer()\n"
        "print('inference.explain' in sys.modules, first is model.explainer())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT / "lambda_src",
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{ROOT / 'lambda_src'}:{ROOT}", "PATH": ""},
    ).stdout.split()
    assert out == ["False", "True", "True"]


def test_rows_must_have_one_value_per_feature() -> None:
    model = _compiled(_fit("binary", TREES["binary"][4], "none"), "binary")
    with pytest.raises(ValueError, match=r"shape \(rows, 5\)"):
        model.explainer().explain(QUERY[:, :4])


@pytest.mark.parametrize("tables", [True, False], ids=["tables", "computed"])
def test_a_tree_that_is_a_single_leaf_explains_nothing_but_its_value(
    tables: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A constant target: one leaf, no split; its value is the base, every contribution 0."""
    if not tables:
        monkeypatch.setattr(explain, "MAX_TABLE_ENTRIES", 0)
    tree = DecisionTreeRegressor().fit(X, np.full(ROWS, 2.5))
    data = compile_pipeline(
        tree, model_name="m", model_version="v1", features=FEATURES, task="regression"
    )
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    explainer = model.explainer()
    assert isinstance(explainer, explain.TreeExplainer)
    assert (explainer.table is not None) == tables
    got = explainer.explain(QUERY)
    assert np.array_equal(got.base, [2.5])
    assert np.array_equal(got.contributions, np.zeros((QUERY.shape[0], len(FEATURES), 1)))


def _missing_and_categorical_models() -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return [
        pytest.param(
            lambda: HistGradientBoostingClassifier(
                max_iter=15, categorical_features=[4, 5], random_state=0
            ),
            "binary",
            id="hgb-categorical-binary",
        ),
        pytest.param(
            lambda: HistGradientBoostingRegressor(
                max_iter=15, categorical_features=[4, 5], random_state=0
            ),
            "regression",
            id="hgb-categorical-regression",
        ),
        pytest.param(
            lambda: RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0),
            "binary",
            id="forest-missing",
        ),
        pytest.param(
            lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "regression", id="tree-nan"
        ),
    ]


@pytest.mark.parametrize(("make", "task"), _missing_and_categorical_models())
def test_missing_values_and_categories_are_routed_as_the_trees_route_them(
    make: Any, task: str
) -> None:
    """NaN goes to each node's missing side and a category by its bitset, in the
    explanation's paths as in the prediction: base + contributions is the model's raw
    output on rows with NaN, unknown (-1) and unseen categories."""
    rng = np.random.default_rng(5)
    rows = 600
    X = rng.normal(size=(rows, 6))
    X[:, 4] = rng.integers(0, 5, rows)
    X[:, 5] = rng.integers(0, 3, rows)
    X[rng.random(X.shape) < 0.15] = np.nan
    signal = np.nan_to_num(X[:, 0]) + (np.nan_to_num(X[:, 4], nan=2) % 2) - np.isnan(X[:, 1])
    y = (signal > 0.3).astype(np.int64) if task == "binary" else signal
    estimator = make().fit(X, y)
    features = [
        {"name": f"x{i}", "dtype": "number", "allowed": {"min": -1e9, "max": 1e9}} for i in range(6)
    ]
    model = compiled_model.load(
        compile_pipeline(
            estimator,
            model_name="m",
            model_version="v1",
            features=features,
            task=task,
            classes=None if task == "regression" else [0, 1],
        )
    )
    assert isinstance(model, CompiledPipeline)
    probe = rng.normal(size=(300, 6))
    probe[:, 4] = rng.choice([0, 1, 2, 3, 4, -1, 7, 2.5], 300)
    probe[:, 5] = rng.integers(0, 3, 300)
    probe[rng.random(probe.shape) < 0.2] = np.nan
    explanation = model.explainer().explain(probe)
    total = explanation.base + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, _raw(model, probe), rtol=0, atol=1e-9)
    # The NaN rows carry the weight: without missing routing they would take other leaves.
    assert np.isnan(probe).any(axis=1).sum() > 100

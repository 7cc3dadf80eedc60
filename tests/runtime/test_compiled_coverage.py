"""Every pipeline the compiled runtime supports, on every task, passes the parity gate.

Small synthetic data with three numeric features and two categorical ones (as codes, the
encoding contract), small ensembles: the point is each combination's arithmetic, not
model quality. The gate itself (training/parity.py) compares with scikit-learn on the
holdout, random rows, tie rows on every split threshold and linear decision boundaries.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from inference import compiled_model, compiled_pipeline, tree_forest
from tests.training.compiled_archives import arrays, rewrite
from training import compile_estimators, parity
from training.compile import compile_pipeline
from training.compile_support import UnsupportedModelError
from training.estimators import KINDS
from training.parity import ParityError, check_parity
from training.parity_inputs import boundary_rows, tie_rows

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = (3, 4)
ROWS = 400


def _data() -> tuple[np.ndarray, dict[str, np.ndarray], list[dict[str, Any]]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    numeric = np.column_stack(
        [rng.normal(50, 10, ROWS).round(1), rng.integers(0, 100, ROWS), rng.uniform(-3, 3, ROWS)]
    )
    codes = np.column_stack([rng.integers(0, k, ROWS) for k in CATEGORIES]).astype(np.float64)
    score = (numeric[:, 0] - 50) / 10 + numeric[:, 2] + (codes[:, 0] == 1) - 0.5 * codes[:, 1]
    targets = {
        "binary": (score > 0).astype(np.int64),
        "multiclass": np.digitize(score, [-1.0, 0.5]).astype(np.int64),
        "regression": score * 3 + rng.normal(0, 0.1, ROWS),
    }
    features: list[dict[str, Any]] = [
        {
            "name": f"x{i}",
            "dtype": "integer" if i == 1 else "number",
            "allowed": {"min": -1e6, "max": 1e6},
            "observed": {"min": float(numeric[:, i].min()), "max": float(numeric[:, i].max())},
        }
        for i in range(3)
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


def _one_hot() -> OneHotEncoder:
    return OneHotEncoder(categories=[list(range(k)) for k in CATEGORIES], sparse_output=False)


PREPROCESSING: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "standard+onehot": lambda: ColumnTransformer(
        [("numeric", StandardScaler(), [0, 1, 2]), ("categorical", _one_hot(), [3, 4])]
    ),
    "minmax+onehot": lambda: ColumnTransformer(
        [("numeric", MinMaxScaler(), [0, 1, 2]), ("categorical", _one_hot(), [3, 4])]
    ),
}
# Every built-in kind, small: the compiled runtime supports each kind's estimators.
SMALL: dict[str, dict[str, Any]] = {
    "gbm": {"n_estimators": 8, "max_depth": 3, "random_state": 0},
    "hist_gbm": {"max_iter": 8, "random_state": 0},
    "random_forest": {"n_estimators": 4, "max_depth": 6, "random_state": 0},
    "extra_trees": {"n_estimators": 4, "max_depth": 6, "random_state": 0},
    "decision_tree": {"max_depth": 5, "random_state": 0},
    "logistic": {"max_iter": 1000},
    "linear": {},
    "ridge": {},
}
CLASSIFIERS: list[Any] = [
    kind.classifier(**SMALL[name]) for name, kind in KINDS.items() if kind.classifier
]
REGRESSORS: list[Any] = [
    kind.regressor(**SMALL[name]) for name, kind in KINDS.items() if kind.regressor
]
COMBINATIONS = [
    pytest.param(task, estimator, pre, id=f"{task}-{type(estimator).__name__}-{pre}")
    for task in ("binary", "multiclass", "regression")
    for estimator in (REGRESSORS if task == "regression" else CLASSIFIERS)
    for pre in PREPROCESSING
]


def fit(task: str, estimator: Any, pre: str) -> Pipeline:
    step = PREPROCESSING[pre]()
    steps = ([("pre", step)] if step is not None else []) + [("model", clone(estimator))]
    return Pipeline(steps).fit(X, TARGETS[task])


def compiled(pipeline: Pipeline, task: str) -> bytes:
    classes = None if task == "regression" else [int(c) for c in pipeline.classes_]
    return compile_pipeline(
        pipeline, model_name="m", model_version="v1", features=FEATURES, task=task, classes=classes
    )


@pytest.mark.parametrize(("task", "estimator", "pre"), COMBINATIONS)
def test_every_supported_pipeline_passes_the_parity_gate(
    task: str, estimator: Any, pre: str
) -> None:
    pipeline = fit(task, estimator, pre)
    data = compiled(pipeline, task)
    model = compiled_model.load(data)
    assert (model.task, model.model_name) == (task, "m")
    assert model.classes == (None if task == "regression" else tuple(range(len(pipeline.classes_))))
    report = check_parity(pipeline, data, X[:100], FEATURES, task=task)
    assert report.passed and report.label_mismatches == 0
    assert report.max_abs_diff <= parity.PARITY_BOUND
    if not isinstance(estimator, LinearRegression | Ridge):
        # Rows on split thresholds (trees) or a decision boundary (logistic regression).
        assert report.tie_rows > 0
    # The runtime protocol's shapes.
    outputs = model.outputs(X[:7])
    assert outputs.shape == ((7, 3) if task == "multiclass" else (7,))
    if task == "multiclass":
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingClassifier(max_iter=8, random_state=0),
        RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0),
    ],
    ids=["hgb-float64", "forest-float32"],
)
def test_gate_catches_a_runtime_that_sends_ties_right(
    estimator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tie rows sit on the thresholds in each estimator's own precision: a < for <= shows."""
    pipeline = fit("multiclass", estimator, "standard")
    data = compiled(pipeline, "multiclass")
    monkeypatch.setattr(parity, "parity_rows", lambda X, features: np.empty((0, 5)))
    assert check_parity(pipeline, data, np.empty((0, 5)), FEATURES).tie_rows > 0
    monkeypatch.setattr(tree_forest, "_SEARCH_SIDE", "right")
    with pytest.raises(ParityError, match="compiled model refused"):
        check_parity(pipeline, data, np.empty((0, 5)), FEATURES)


def test_tie_rows_put_every_hgb_threshold_in_its_float64_input() -> None:
    pipeline = fit("regression", HistGradientBoostingRegressor(max_iter=5, random_state=0), "none")
    ties = tie_rows(pipeline)
    for stage in pipeline[-1]._predictors:
        nodes = stage[0].nodes
        for node in nodes[nodes["is_leaf"] == 0]:
            column = ties[:, node["feature_idx"]]
            threshold = node["num_threshold"]
            assert np.any(column == threshold) or np.any(column == np.nextafter(threshold, np.inf))


def test_gate_refuses_linear_coefficients_off_by_a_little() -> None:
    pipeline = fit("multiclass", LogisticRegression(max_iter=1000), "standard+onehot")
    data = compiled(pipeline, "multiclass")
    off = rewrite(data, coef=arrays(data)["coef"] * (1 + 1e-9))
    with pytest.raises(ParityError, match=r"max \|P\(compiled\) - P\(sklearn\)\|"):
        check_parity(pipeline, off, X[:100], FEATURES)


def test_linear_boundary_rows_are_held_to_the_bound_and_their_neighbours_to_the_labels() -> None:
    pipeline = fit("binary", LogisticRegression(max_iter=1000), "standard")
    report = check_parity(pipeline, compiled(pipeline, "binary"), X[:100], FEATURES)
    # One third of the boundary rows sit on it (labels decided by rounding), two thirds
    # a few rounding errors to either side, where the labels must agree.
    assert report.tie_rows == 3 * report.unlabelled_rows > 0
    boundary, on = boundary_rows(pipeline, X[:50])
    decision = pipeline.decision_function(boundary)
    assert np.max(np.abs(decision[on])) < 1e-13
    assert np.all(np.abs(decision[~on]) > 0)


def test_compiled_pipeline_answers_bit_for_bit_like_scikit_learn_in_one_batch() -> None:
    """Beyond the 1e-12 bound: the arithmetic is scikit-learn's own, in its own order.

    (Not binary log-odds: scikit-learn's expit calls the C library's exp(), the runtime
    numpy's, and the two differ by an ulp on ~1.5 % of inputs.)
    """
    for task, estimator, pre in (
        ("binary", RandomForestClassifier(n_estimators=4, random_state=0), "standard"),
        ("multiclass", GradientBoostingClassifier(n_estimators=8, random_state=0), "standard"),
        ("multiclass", RandomForestClassifier(n_estimators=4, random_state=0), "minmax+onehot"),
        ("regression", HistGradientBoostingRegressor(max_iter=8), "standard+onehot"),
        ("multiclass", LogisticRegression(max_iter=1000), "standard+onehot"),
    ):
        pipeline = fit(task, estimator, pre)
        model = compiled_model.load(compiled(pipeline, task))
        expected = parity.expected_outputs(pipeline, task, X)
        assert np.array_equal(model.outputs(X), expected), (task, type(estimator).__name__)


def test_string_class_labels_are_kept_in_scikit_learn_order() -> None:
    y = np.where(TARGETS["binary"] == 1, "malignant", "benign")
    pipeline = Pipeline([("model", DecisionTreeClassifier(max_depth=3))]).fit(X, y)
    data = compile_pipeline(
        pipeline,
        model_name="m",
        model_version="v1",
        features=FEATURES,
        task="binary",
        classes=["benign", "malignant"],
    )
    model = compiled_model.load(data)
    assert model.classes == ("benign", "malignant")
    np.testing.assert_array_equal(model.outputs(X), pipeline.predict_proba(X)[:, 1])


@pytest.mark.parametrize(
    ("make", "task", "message"),
    [
        (
            lambda: GradientBoostingClassifier(n_estimators=3, loss="exponential"),
            "binary",
            r"loss='exponential' \(only 'log_loss'\)",
        ),
        (
            lambda: HistGradientBoostingRegressor(max_iter=3, loss="poisson"),
            "regression",
            r"loss='poisson' \(its link LogLink is not compiled\)",
        ),
        (
            lambda: Pipeline(
                [
                    ("pre", OneHotEncoder(drop="first", sparse_output=False)),
                    ("model", LogisticRegression()),
                ]
            ),
            "binary",
            # An encoder of numbers (a categorical feature's encoder compiles, any option).
            r"step OneHotEncoder over numeric column\(s\) 'x0'",
        ),
    ],
    ids=["gbm-exponential", "hgb-poisson", "onehot-drop"],
)
def test_what_does_not_compile_falls_back_with_the_reason(
    make: Callable[[], Any], task: str, message: str
) -> None:
    y = np.abs(TARGETS["regression"]) if task == "regression" else TARGETS[task]
    pipeline = make().fit(X, y)
    classes = None if task == "regression" else [0, 1]
    with pytest.raises(UnsupportedModelError, match=message) as refused:
        compile_pipeline(
            pipeline,
            model_name="m",
            model_version="v1",
            features=FEATURES,
            task=task,
            classes=classes,
        )
    assert str(refused.value).endswith("runtime 'sklearn' serves this model")


def test_task_and_classes_must_match_the_estimator() -> None:
    pipeline = fit("multiclass", DecisionTreeClassifier(max_depth=3), "none")
    with pytest.raises(ValueError, match="task is binary but the estimator has 3 classes"):
        compile_pipeline(pipeline, model_name="m", model_version="v1", features=FEATURES)
    with pytest.raises(ValueError, match=r"classes \[2, 1, 0\] differ from the estimator's"):
        compile_pipeline(
            pipeline,
            model_name="m",
            model_version="v1",
            features=FEATURES,
            task="multiclass",
            classes=[2, 1, 0],
        )
    with pytest.raises(ValueError, match="takes 5 inputs but the schema lists 4 features"):
        compile_pipeline(
            pipeline,
            model_name="m",
            model_version="v1",
            features=FEATURES[:4],
            task="multiclass",
            classes=None,
        )


# ---- malformed archives of the second format -------------------------------------------


@pytest.fixture(scope="module")
def tree_bytes() -> bytes:
    return compiled(
        fit("multiclass", GradientBoostingClassifier(n_estimators=3), "standard+onehot"),
        "multiclass",
    )


@pytest.fixture(scope="module")
def linear_bytes() -> bytes:
    return compiled(fit("binary", LogisticRegression(max_iter=1000), "minmax"), "binary")


TREE_DAMAGE: dict[str, tuple[Callable[[dict[str, np.ndarray]], dict[str, Any]], str]] = {  # type: ignore[type-arg]
    "pre-input-out-of-range": (
        lambda a: {"pre_input": np.full_like(a["pre_input"], 99)},
        "preprocessing arrays are inconsistent",
    ),
    "pre-kind-unknown": (
        lambda a: {"pre_kind": np.full_like(a["pre_kind"], 7)},
        "preprocessing arrays are inconsistent",
    ),
    "pre-length": (lambda a: {"pre_a": a["pre_a"][:-1]}, "preprocessing arrays are inconsistent"),
    "scale-zero": (
        lambda a: {"pre_b": np.zeros_like(a["pre_b"])},
        "preprocessing arrays are inconsistent",
    ),
    "child-out-of-range": (
        lambda a: {"left": np.full_like(a["left"], 10**6)},
        "tree arrays are inconsistent",
    ),
    "feature-beyond-the-input": (
        lambda a: {"feature": np.full_like(a["feature"], 50)},
        "tree arrays are inconsistent",
    ),
    "value-width": (lambda a: {"value": a["value"][:, :2]}, "tree arrays are inconsistent"),
    "init-nan": (
        lambda a: {"init": np.full_like(a["init"], np.nan)},
        "tree arrays are inconsistent",
    ),
    "cycle": (
        lambda a: {"left": np.where(np.arange(len(a["left"])) == 0, 0, a["left"])},
        "tree arrays are inconsistent",
    ),
    "missing-array": (lambda a: {"threshold": None}, "lacks array\\(s\\) threshold"),
    "classes-count": (
        lambda a: {"meta_classes": [0, 1]},
        "not the distinct labels of a multiclass",
    ),
    "bool-class": (lambda a: {"meta_classes": [True, 1, 2]}, "not the distinct labels"),
    "task": (lambda a: {"meta_task": "ranking"}, "meta.task 'ranking' is not one of"),
    "link": (lambda a: {"meta_link": "expit"}, "does not fit its classes"),
    "estimator": (lambda a: {"meta_estimator": "svm"}, "unsupported compiled estimator 'svm'"),
    "depth-text": (lambda a: {"meta_depth": "3"}, "must be integers"),
    "shallower-than-declared": (lambda a: {"meta_depth": 0}, "deeper than the declared depth"),
}


@pytest.mark.parametrize("damage", TREE_DAMAGE, ids=list(TREE_DAMAGE))
def test_loader_refuses_a_damaged_tree_archive(tree_bytes: bytes, damage: str) -> None:
    change, message = TREE_DAMAGE[damage]
    with pytest.raises(compiled_model.CompiledModelError, match=message):
        compiled_model.load(rewrite(tree_bytes, **change(arrays(tree_bytes))))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {"coef": a["coef"][:, :-1]}, "linear arrays are inconsistent"),
        (lambda a: {"intercept": np.zeros(2)}, "linear arrays are inconsistent"),
        (lambda a: {"coef": a["coef"] * np.inf}, "linear arrays are inconsistent"),
        (lambda a: {"meta_link": "softmax"}, "does not fit its classes"),
        (lambda a: {"meta_features": []}, "meta.features is not a non-empty list"),
    ],
    ids=["coef-width", "intercept-shape", "coef-inf", "link", "no-features"],
)
def test_loader_refuses_a_damaged_linear_archive(
    linear_bytes: bytes,
    change: Callable[[dict[str, np.ndarray]], dict[str, Any]],
    message: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(compiled_model.CompiledModelError, match=message):
        compiled_model.load(rewrite(linear_bytes, **change(arrays(linear_bytes))))


def test_loader_refuses_metadata_that_is_not_an_object(linear_bytes: bytes) -> None:
    not_an_object = rewrite(linear_bytes, meta=np.frombuffer(b"[1, 2]", dtype=np.uint8))
    with pytest.raises(compiled_model.CompiledModelError, match="not a JSON object"):
        compiled_model.load(not_an_object)


@pytest.mark.parametrize(("archive", "array"), [("linear_bytes", "coef"), ("tree_bytes", "meta")])
def test_loader_refuses_an_object_array_without_running_it(
    archive: str, array: str, request: pytest.FixtureRequest
) -> None:
    poisoned = rewrite(
        request.getfixturevalue(archive), **{array: np.array([{"x": 1}], dtype=object)}
    )
    with pytest.raises(compiled_model.CompiledModelError, match="not a compiled model archive"):
        compiled_model.load(poisoned)


# ---- the committed churn artifacts --------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_committed_churn_artifacts_load_unchanged_and_answer_their_golden_set(version: str) -> None:
    directory = ROOT / "model_artifacts" / "churn" / version
    manifest = json.loads((directory / "manifest.json").read_text())
    entry = manifest["artifacts"]["compiled"]
    data = (directory / entry["file"]).read_bytes()
    assert entry["format"] == compiled_model.FORMAT == "gbm-trees-npz/1"
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    model = compiled_model.load(data)
    assert isinstance(model, compiled_model.CompiledModel)
    golden = json.loads((directory / "golden.json").read_text())
    recorded = np.asarray(golden["predictions"]["compiled"]["probabilities"])
    X_golden = np.asarray(golden["features"], dtype=np.float64)
    assert np.array_equal(model.outputs(X_golden), recorded)


def test_first_format_cold_start_imports_neither_sklearn_nor_the_second_format() -> None:
    script = (
        "import sys; sys.path.insert(0, 'lambda_src');"
        "import numpy as np; from inference import compiled_model as c;"
        "m = c.load(open('model_artifacts/churn/v1/model.compiled.npz', 'rb').read());"
        "p = m.outputs(np.zeros((2, 7)));"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in {'sklearn','joblib','scipy'}"
        " or k == 'inference.compiled_pipeline'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "make",
    [
        lambda: StandardScaler(with_mean=False),
        lambda: StandardScaler(with_std=False),
        lambda: MinMaxScaler(feature_range=(-2, 5), clip=True),
        lambda: ColumnTransformer(
            [("numeric", StandardScaler(), [0, 2]), ("categorical", _one_hot_of(4), [4])],
            remainder="passthrough",
        ),
    ],
    ids=["no-mean", "no-std", "clip", "remainder-passthrough"],
)
def test_preprocessing_options_compile_within_the_bound(make: Callable[[], Any]) -> None:
    pipeline = Pipeline([("pre", make()), ("model", LogisticRegression(max_iter=1000))]).fit(
        X, TARGETS["multiclass"]
    )
    report = check_parity(pipeline, compiled(pipeline, "multiclass"), X[:100], FEATURES)
    assert report.passed and report.tie_rows > 0
    # Rows beyond the fitted range reach the clip (and every other step) too.
    wide = X[:50].copy()
    wide[:, :3] = wide[:, :3] * 3 - 100
    model = compiled_model.load(compiled(pipeline, "multiclass"))
    np.testing.assert_allclose(
        model.outputs(wide), pipeline.predict_proba(wide), rtol=0, atol=1e-12
    )


def _one_hot_of(k: int) -> OneHotEncoder:
    return OneHotEncoder(categories=[list(range(k))], sparse_output=False)


def test_deep_forests_take_the_level_walk_with_class_fractions() -> None:
    """Trees of more than 64 leaves: the fallback evaluator, with a row of values per leaf."""
    pipeline = fit("multiclass", RandomForestClassifier(n_estimators=3, random_state=0), "none")
    data = compiled(pipeline, "multiclass")
    model = compiled_model.load(data)
    assert isinstance(model, compiled_pipeline.CompiledPipeline)
    assert isinstance(model.estimator, compiled_pipeline._Trees)
    assert model.estimator.forest.method == "level-walk"
    assert check_parity(pipeline, data, X[:100], FEATURES).passed


def test_the_combinations_cover_every_estimator_the_compiler_takes() -> None:
    assert {type(e) for e in CLASSIFIERS + REGRESSORS} == set(compile_estimators.COMPILERS)
    assert len(compile_estimators.SUPPORTED_ESTIMATORS) == 13

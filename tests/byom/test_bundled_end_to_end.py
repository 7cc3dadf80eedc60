"""Bring your own model, end to end (issue 13 item 7): estimators fitted outside this
project on scikit-learn's bundled datasets, packaged with ``python -m training.package``,
served through the real handler by every runtime their manifest lists, and deployed as
further models of one environment next to churn (synth with cdk-nag, as ``app.py`` does).

Nothing here is hand-tuned: default hyperparameters, small ensembles for speed.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from stacks.settings import inference_stack_name
from tests.handler.conftest import FakeLambdaContext
from tests.infra.conftest import cdk_context, run_synth
from tests.training.test_sklearn_datasets import Packaged, fit_and_package
from training import golden

REPO = Path(__file__).resolve().parents[2]
MODELS = ("cancer", "wine", "diabetes")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Packaged]]:
    """An artifacts root holding churn and the three packaged models (v1 each)."""
    root = tmp_path_factory.mktemp("model_artifacts")
    shutil.copytree(REPO / "model_artifacts" / "churn", root / "churn")
    work = tmp_path_factory.mktemp("work")
    cancer, wine, diabetes = load_breast_cancer(), load_wine(), load_diabetes()
    sex = diabetes.data.copy()
    sex[:, 1] = (sex[:, 1] > 0).astype(np.float64)
    models = {
        "cancer": fit_and_package(
            work, "cancer",
            Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))]),
            task="binary", label="diagnosis", feature_names=cancer.feature_names,
            X=cancer.data, y=np.asarray(cancer.target_names)[cancer.target].astype(object),
            test_size=0.3, suffix=".skops", output=root,
        ),
        "wine": fit_and_package(
            work, "wine", RandomForestClassifier(n_estimators=25, random_state=0),
            task="multiclass", label="cultivar", feature_names=wine.feature_names,
            X=wine.data, y=np.asarray(wine.target_names)[wine.target].astype(object),
            test_size=0.6, suffix=".joblib", output=root,
        ),
        "diabetes": fit_and_package(
            work, "diabetes", HistGradientBoostingRegressor(max_iter=40, random_state=0),
            task="regression", label="progression", feature_names=diabetes.feature_names,
            X=sex, y=diabetes.target, test_size=0.3, suffix=".joblib",
            categorical={1: ["female", "male"]}, output=root,
        ),
    }  # fmt: skip
    return root, models


@pytest.fixture
def handler_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Configure the real handler for one packaged version and runtime (a new environment)."""
    from inference import handler as module

    monkeypatch.setattr(module, "_state", module._state)
    monkeypatch.setattr(module, "_env", module._env)
    monkeypatch.setattr(module, "_cold", module._cold)

    def configure(root: Path, model: str, runtime: str) -> Any:
        manifest = json.loads((root / model / "v1" / "manifest.json").read_text())
        entry = manifest["artifacts"][runtime]
        module.configure(
            {
                "MODEL_NAME": model,
                "MODEL_VERSION": "v1",
                "MODEL_RUNTIME": runtime,
                "MODEL_PATH": str(root / model / "v1" / entry["file"]),
                "MODEL_SHA256": entry["sha256"],
                "AWS_LAMBDA_FUNCTION_VERSION": "3",
            }
        )
        return module

    yield configure


def runtimes_of(root: Path, model: str) -> list[str]:
    manifest = json.loads((root / model / "v1" / "manifest.json").read_text())
    return [key for key in ("compiled", "sklearn") if key in manifest["artifacts"]]


@pytest.mark.parametrize("model", MODELS)
def test_every_packaged_model_compiles_within_the_parity_bound(
    packaged: tuple[Path, dict[str, Packaged]], model: str
) -> None:
    root, _ = packaged
    manifest = json.loads((root / model / "v1" / "manifest.json").read_text())
    parity = manifest["artifacts"]["compiled"]["parity"]
    assert parity["max_abs_diff"] <= parity["bound"] <= 1e-12
    assert parity["label_mismatches"] == 0
    assert runtimes_of(root, model) == ["compiled", "sklearn"]


@pytest.mark.parametrize("model", MODELS)
def test_the_handler_answers_the_golden_rows_as_the_estimator_does(
    packaged: tuple[Path, dict[str, Packaged]], handler_for: Any, model: str
) -> None:
    """What the deployed traffic gate does: every golden row as a request (categorical
    values as callers send them), through every runtime, answered as recorded."""
    root, fitted = packaged
    golden_set = golden.read(root / model / "v1")
    estimator = fitted[model].estimator
    for runtime in runtimes_of(root, model):
        module = handler_for(root, model, runtime)
        event = {"instances": golden_set.instances()}
        response = module.handler(event, FakeLambdaContext())
        # A direct invocation: the answer is the response itself.
        assert response["statusCode"] == 200, str(response)[:500]
        answers = response["predictions"]
        assert len(answers) == golden_set.rows
        recorded = golden_set.predictions[runtime]
        if golden_set.task == "binary":
            expected = estimator.predict_proba(golden_set.X)[:, 1]
            got = np.array([a["probability"] for a in answers])
            assert [a["prediction"] for a in answers] == list(estimator.predict(golden_set.X))
        elif golden_set.task == "multiclass":
            expected = estimator.predict_proba(golden_set.X)
            keys = [str(c) for c in estimator.classes_]
            assert all(list(a["probabilities"]) == keys for a in answers)
            got = np.array([[a["probabilities"][k] for k in keys] for a in answers])
            assert [a["prediction"] for a in answers] == list(estimator.predict(golden_set.X))
        else:
            expected = estimator.predict(golden_set.X)
            got = np.array([a["prediction"] for a in answers])
        assert np.max(np.abs(got - expected)) <= 1e-12, runtime
        # The gate's identity check: the answers the artifact recorded at packaging.
        assert np.array_equal(got, recorded.outputs), runtime


def test_a_categorical_value_outside_the_schema_is_refused_naming_it(
    packaged: tuple[Path, dict[str, Packaged]], handler_for: Any
) -> None:
    root, _ = packaged
    record = golden.read(root / "diabetes" / "v1").instances()[0]
    module = handler_for(root, "diabetes", "compiled")
    response = module.handler({**record, "sex": "other"}, FakeLambdaContext())
    assert response["statusCode"] == 400
    assert response["error"]["message"] == 'sex: "other" is not one of "female", "male"'


def test_the_packaged_models_deploy_beside_churn_with_their_own_stacks(
    packaged: tuple[Path, dict[str, Packaged]], tmp_path: Path
) -> None:
    root, _ = packaged
    context = copy.deepcopy(cdk_context())
    context["env"] = "dev"
    context["environments"]["dev"]["models"] = {
        name: {"rollout": {"model_version": "v1"}} for name in MODELS
    }
    synth = run_synth(tmp_path / "cdk.out", context, artifacts_root=root)
    assert set(synth.templates) == {
        "sklearn-serving-dev-model-store",
        inference_stack_name("dev"),
        *(inference_stack_name("dev", name) for name in MODELS),
    }
    titles = {
        "cancer": "Mean predicted probability",
        "wine": "Mean top-class probability",
        "diabetes": "Mean predicted value",
    }
    for name in MODELS:
        resources = synth.templates[inference_stack_name("dev", name)]["Resources"]
        (function,) = [
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::Lambda::Function"
            and "MODEL_NAME" in r["Properties"].get("Environment", {}).get("Variables", {})
        ]
        variables = function["Environment"]["Variables"]
        assert (variables["MODEL_NAME"], variables["MODEL_RUNTIME"]) == (name, "compiled")
        manifest = json.loads((root / name / "v1" / "manifest.json").read_text())
        assert variables["MODEL_SHA256"] == manifest["artifacts"]["compiled"]["sha256"]
        (dashboard,) = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        assert titles[name] in body
        assert all(t not in body for other, t in titles.items() if other != name)

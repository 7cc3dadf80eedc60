"""Golden sets of multiclass, regression and categorical models: what each runtime answered,
read back exactly, and turned back into the requests a caller sends."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import log_loss, mean_squared_error, r2_score, roc_auc_score

from tests import task_models
from training import golden

SOURCE = {"sample": "test"}


def written(model: task_models.TaskModel, *, labelled: bool = True) -> golden.GoldenSet:
    outputs = golden.predict("sklearn-joblib", model.payload(), model.X)
    content = golden.document(
        model.feature_names,
        model.X,
        model.y if labelled else None,
        {"sklearn-joblib": outputs},
        source=SOURCE,
        task=model.task,
        classes=model.classes,
        features=model.features,
    )
    return golden.parse(golden.dumps(content), "g.json")


def test_multiclass_records_probability_rows_labels_and_metrics() -> None:
    model = task_models.multiclass()
    read = written(model)
    recorded = read.predictions["sklearn-joblib"]
    assert read.task == "multiclass" and read.classes == ("ant", "bee", "cat")
    assert recorded.outputs.shape == (300, 3)
    # Exact: the recorded rows are the loader's own, read back bit for bit.
    assert np.array_equal(recorded.outputs, model.pipeline.predict_proba(model.X))
    assert recorded.labels is not None
    assert list(recorded.labels) == list(model.pipeline.predict(model.X))
    assert list(read.y_index()) == [["ant", "bee", "cat"].index(v) for v in model.y]
    metrics = golden.quality(read.y, recorded.outputs, "multiclass", read.classes)  # type: ignore[arg-type]
    proba = model.pipeline.predict_proba(model.X)
    assert metrics["log_loss"] == pytest.approx(log_loss(model.y, proba), abs=1e-12)
    assert metrics["roc_auc_ovr"] == pytest.approx(
        roc_auc_score(model.y, proba, multi_class="ovr"), abs=1e-12
    )
    assert metrics["accuracy"] == pytest.approx(
        float(np.mean(model.pipeline.predict(model.X) == model.y))
    )


def test_regression_records_values_and_error_metrics() -> None:
    model = task_models.regression()
    read = written(model)
    recorded = read.predictions["sklearn-joblib"]
    assert read.task == "regression" and read.classes is None and recorded.labels is None
    assert np.array_equal(recorded.outputs, model.pipeline.predict(model.X))
    assert read.y is not None and np.array_equal(read.y, model.y)
    metrics = golden.quality(read.y, recorded.outputs, "regression", None)
    assert metrics["rmse"] == pytest.approx(
        mean_squared_error(model.y, recorded.outputs) ** 0.5, abs=1e-12
    )
    assert metrics["r2"] == pytest.approx(r2_score(model.y, recorded.outputs), abs=1e-12)
    with pytest.raises(ValueError, match="a regression model answers values"):
        golden.labels_of(recorded.outputs, "regression", None)


def test_categorical_codes_turn_back_into_the_requests_values() -> None:
    model = task_models.categorical_binary()
    read = written(model)
    instances = read.instances()
    colours = [row["colour"] for row in instances]
    assert colours == [task_models.COLOURS[int(c)] for c in model.X[:, 1]]
    assert {type(c) for c in colours} == {str, int}  # 7 stays the integer 7
    recorded = read.predictions["sklearn-joblib"]
    # Binary over string classes: labels are the class labels, classes[1] from 0.5.
    assert recorded.labels is not None
    assert list(recorded.labels) == list(np.where(recorded.outputs >= 0.5, "yes", "no"))
    content = json.loads(golden.dumps(golden.document(
        model.feature_names, model.X, model.y, {"sklearn": recorded.outputs}, source=SOURCE,
        classes=model.classes, features=model.features,
    )))  # fmt: skip
    assert content["task"] == "binary" and content["classes"] == ["no", "yes"]
    assert content["categories"] == {"colour": ["red", "green", 7]}
    assert content["threshold"] == 0.5


def test_binary_over_0_and_1_keeps_the_first_golden_sets_keys() -> None:
    X = np.array([[1.0, 2.5], [3.0, 4.0]])
    content = golden.document(
        ("a", "b"), X, np.array([0, 1]), {"sklearn": np.array([0.2, 0.7])}, source=SOURCE
    )
    assert list(content) == [
        "format", "rows", "threshold", "source", "feature_names", "features", "labels",
        "predictions",
    ]  # fmt: skip
    assert content["predictions"]["sklearn"]["labels"] == [0, 1]


def test_unlabelled_golden_sets_of_every_task_read_back() -> None:
    for model in (task_models.multiclass(), task_models.regression()):
        read = written(model, labelled=False)
        assert read.y is None
        assert "metrics" not in json.dumps(
            golden.document(
                model.feature_names,
                model.X,
                None,
                {"k": read.predictions["sklearn-joblib"].outputs},
                source=SOURCE,
                task=model.task,
                classes=model.classes,
            )
        )


def test_regression_sample_keeps_the_targets_tails() -> None:
    y = np.arange(1000, dtype=np.float64)
    picked = golden.stratified_sample(y, 100, task="regression")
    assert len(picked) == 100 and len(set(picked.tolist())) == 100
    # About ten per decile of the target (quantile edges are observed values): both
    # tails are in.
    assert np.all(np.abs(np.bincount(picked // 100, minlength=10) - 10) <= 1)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(task="ordinal"), "task 'ordinal' is not one of"),
        (lambda c: c.update(classes=["ant", "ant", "cat"]), "classes must be distinct"),
        (lambda c: c.update(classes=["ant", "bee"]), "a multiclass golden set with 2 classes"),
        (lambda c: c["labels"].__setitem__(0, "dog"), r"each one of \['ant', 'bee', 'cat'\]"),
        (
            lambda c: c["predictions"]["sklearn-joblib"]["probabilities"].pop(),
            r"needs probabilities \(300, 3\) and 300 labels",
        ),
        (lambda c: c.update(categories={"x9": ["a"]}), "categories names 'x9'"),
        (lambda c: c.update(categories={"x0": ["a"]}), "feature 'x0' holds codes outside 0..0"),
    ],
)
def test_a_malformed_task_golden_set_is_named(edit: object, message: str) -> None:
    model = task_models.multiclass()
    outputs = golden.predict("sklearn-joblib", model.payload(), model.X)
    content = golden.document(
        model.feature_names, model.X, model.y, {"sklearn-joblib": outputs}, source=SOURCE,
        task="multiclass", classes=model.classes,
    )  # fmt: skip
    edit(content)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        golden.parse(json.dumps(content).encode(), "g.json")


def test_a_regression_golden_set_needs_values() -> None:
    model = task_models.regression()
    content = golden.document(
        model.feature_names, model.X, model.y, {"k": model.pipeline.predict(model.X)},
        source=SOURCE, task="regression", classes=None,
    )  # fmt: skip
    content["predictions"]["k"]["values"] = content["predictions"]["k"]["values"][:-1]
    with pytest.raises(ValueError, match=r"g\.json: predictions\.k needs values, 300 of them"):
        golden.parse(json.dumps(content).encode(), "g.json")

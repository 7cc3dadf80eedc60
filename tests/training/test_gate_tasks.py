"""The quality gate per task: classifiers against the prior (the base rate for binary),
regressors against the training mean, and each against its previous version."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serving import quality
from serving.quality import Previous, QualityGateError


def test_the_binary_base_rate_is_the_rate_of_the_second_class() -> None:
    y_train = np.array(["benign"] * 6 + ["malignant"] * 4, dtype=object)
    y_test = np.array(["benign", "malignant"], dtype=object)
    base = quality.baseline("binary", y_train, y_test, ["benign", "malignant"])
    assert base == {"rate": 0.4, "log_loss": round(-(math.log(0.4) + math.log(0.6)) / 2, 6)}


def test_the_multiclass_prior_is_the_training_class_frequencies() -> None:
    y_train = np.array([0, 0, 1, 2])
    y_test = np.array([0, 1, 2, 2])
    base = quality.baseline("multiclass", y_train, y_test, [0, 1, 2])
    expected = -(math.log(0.5) + math.log(0.25) + 2 * math.log(0.25)) / 4
    assert base == {"class_rates": {"0": 0.5, "1": 0.25, "2": 0.25}, "log_loss": round(expected, 6)}


def test_the_regression_baseline_predicts_the_training_mean() -> None:
    base = quality.baseline("regression", np.array([1.0, 3.0]), np.array([0.0, 4.0]), None)
    assert base == {"mean": 2.0, "rmse": 2.0}


def _check(task: str, metrics: dict[str, float], base: dict[str, object], **kwargs: object):  # type: ignore[no-untyped-def]
    return quality.check(
        model="m", version="v2", task=task, metrics=metrics, base_rate=base, **kwargs
    )


MULTI_BASE = {"class_rates": {"a": 0.5, "b": 0.25, "c": 0.25}, "log_loss": 1.04}


def test_a_multiclass_model_must_beat_the_prior_and_chance() -> None:
    good = {"log_loss": 0.4, "roc_auc_ovr": 0.9, "accuracy": 0.8}
    record = _check("multiclass", good, MULTI_BASE, previous=None)
    assert record["status"] == quality.PASSED and record["base_rate"] == MULTI_BASE
    with pytest.raises(QualityGateError) as refused:
        _check(
            "multiclass", {**good, "log_loss": 1.1, "roc_auc_ovr": 0.5}, MULTI_BASE, previous=None
        )
    message = str(refused.value)
    assert "holdout log loss 1.1000 is not better than the prior predictor's 1.0400" in message
    assert "training class frequencies" in message
    assert "holdout ROC AUC (one-vs-rest) 0.5000 is no better than chance" in message


def test_a_multiclass_regression_against_the_previous_version_needs_a_reason() -> None:
    metrics = {"log_loss": 0.5, "roc_auc_ovr": 0.85, "accuracy": 0.8}
    previous = Previous("v1", {"log_loss": 0.4, "roc_auc_ovr": 0.9, "accuracy": 0.8})
    with pytest.raises(
        QualityGateError, match=r"ROC AUC \(one-vs-rest\) 0\.8500 is lower than v1's"
    ):
        _check("multiclass", metrics, MULTI_BASE, previous=previous)
    record = _check("multiclass", metrics, MULTI_BASE, previous=previous, accept_regression="small")
    assert record["status"] == quality.ACCEPTED_REGRESSION
    assert record["previous"] == {
        "version": "v1",
        "log_loss": 0.4,
        "roc_auc_ovr": 0.9,
        "tolerance": {
            "log_loss": quality.LOG_LOSS_TOLERANCE,
            "roc_auc_ovr": quality.ROC_AUC_TOLERANCE,
        },
    }


def test_a_regressor_must_beat_the_mean_and_its_previous_version() -> None:
    base = {"mean": 150.0, "rmse": 75.0}
    record = _check("regression", {"rmse": 55.0, "mae": 40.0, "r2": 0.4}, base, previous=None)
    assert record["status"] == quality.PASSED and record["baseline"] == base
    assert "base_rate" not in record
    assert (
        quality.describe({quality.MANIFEST_KEY: record}) == "gate: passed (mean-predictor RMSE 75)"
    )
    with pytest.raises(
        QualityGateError,
        match=r"holdout RMSE 75 is not better than predicting the training mean 150 for every "
        r"row \(RMSE 75\)",
    ):
        _check("regression", {"rmse": 75.0, "mae": 60.0, "r2": 0.0}, base, previous=None)
    previous = Previous("v1", {"rmse": 50.0, "mae": 40.0, "r2": 0.5})
    # Within 2 % of the previous RMSE passes; beyond it is a regression.
    assert (
        _check("regression", {"rmse": 50.9, "mae": 0, "r2": 0}, base, previous=previous)["status"]
        == quality.PASSED
    )
    with pytest.raises(
        QualityGateError, match=r"RMSE 51\.5 is worse than v1's 50 on the same rows"
    ):
        _check("regression", {"rmse": 51.5, "mae": 0, "r2": 0}, base, previous=previous)


def test_a_version_packaged_without_labels_is_not_picked_as_passed() -> None:
    manifest = {quality.MANIFEST_KEY: quality.not_checked("packaged without labelled data")}
    assert not quality.passed(manifest)
    assert quality.describe(manifest) == (
        "gate: quality not checked (packaged without labelled data)"
    )


def test_metrics_per_task_follow_the_contract() -> None:
    from training.publish import evaluate

    binary = evaluate(
        "binary",
        np.array(["no", "yes", "yes", "no"], dtype=object),
        np.array([0.2, 0.9, 0.6, 0.4]),
        ["no", "yes"],
    )
    assert list(binary) == ["roc_auc", "accuracy", "log_loss", "brier_score"]
    assert binary["roc_auc"] == 1.0 and binary["accuracy"] == 1.0
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    multi = evaluate(
        "multiclass", np.array(["a", "b", "c", "b"], dtype=object), proba, ["a", "b", "c"]
    )
    assert list(multi) == ["log_loss", "roc_auc_ovr", "accuracy"]
    # The last row's first column wins (a), its label is b: 3 of 4 right.
    assert multi["accuracy"] == 0.75
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.4)) / 4
    assert multi["log_loss"] == round(expected, 6)
    regression = evaluate("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]), None)
    assert regression == {"rmse": round(math.sqrt(4 / 3), 6), "mae": round(2 / 3, 6), "r2": -1.0}

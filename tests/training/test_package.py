"""python -m training.package: a model fitted elsewhere becomes the same versioned artifact
training writes, or is refused with exit 2, a message naming the problem, and nothing
written."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from serving import artifacts
from tests.training.conftest import WriteCsv
from training import package
from training.dataset import load_csv
from training.schema import CHURN, CHURN_SCHEMA_FILE, FEATURE_NAMES
from training.synthetic import generate
from training.training_rows import RowFilter


def _churn_pipeline(rows: int = 1500) -> Pipeline:
    X, y = generate(rows, seed=21)
    return Pipeline(
        [("scaler", StandardScaler()), ("classifier", GradientBoostingClassifier(n_estimators=10))]
    ).fit(X, y)


def _run(tmp_path: Path, estimator: Path, *extra: str, schema: Path = CHURN_SCHEMA_FILE) -> int:
    return package.main(
        [
            "--model",
            "churn",
            "--version",
            "v7",
            "--schema",
            str(schema),
            "--estimator",
            str(estimator),
            "--output",
            str(tmp_path / "out"),
            # These models are fitted on numpy arrays in the schema's order.
            "--confirm-feature-order",
            *extra,
        ]
    )


def test_a_pipeline_fitted_elsewhere_becomes_a_version_with_the_gate_and_every_runtime(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    path = tmp_path / "churn.joblib"
    joblib.dump(_churn_pipeline(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert _run(tmp_path, path, "--data", str(write_csv(400)), "--sha256", digest) == 0
    version = tmp_path / "out/churn/v7"
    assert artifacts.verify_version(version) == []
    manifest = json.loads((version / "manifest.json").read_text())
    assert list(manifest["artifacts"]) == ["sklearn", "sklearn-joblib", "compiled", "golden"]
    assert manifest["training"]["packaged_from"] == {
        "file": "churn.joblib",
        "format": "joblib",
        "sha256": digest,
    }
    assert manifest["training"]["estimator"] == "StandardScaler + GradientBoostingClassifier"
    assert manifest["training"]["params"]["n_estimators"] == 10
    assert manifest["quality_gate"]["status"] == "passed"
    assert manifest["metrics"]["holdout_rows"] == 400
    assert manifest["target"] == {"name": "churn", "classes": [0, 1], "positive_class": 1}
    assert "reference_distributions" in manifest
    golden = json.loads((version / "golden.json").read_text())
    assert golden["rows"] == 400 and len(golden["labels"]) == 400
    assert (version / "model_card.png").is_file()


def test_without_labels_the_golden_set_has_inputs_and_answers_only(tmp_path: Path) -> None:
    path = tmp_path / "churn.skops"
    path.write_bytes(skops.io.dumps(_churn_pipeline()))
    assert _run(tmp_path, path, "--no-compiled") == 0
    version = tmp_path / "out/churn/v7"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["quality_gate"]["status"] == "not-checked"
    assert "metrics" not in manifest and "reference_distributions" not in manifest
    assert manifest["model_card"] == {"markdown": "model_card.md"}
    golden = json.loads((version / "golden.json").read_text())
    assert golden["labels"] is None and golden["rows"] == package.UNLABELLED_ROWS
    X = np.asarray(golden["features"])
    # Spread over the schema's allowed ranges: integers stay integers.
    assert np.all(X[:, FEATURE_NAMES.index("has_tech_support")] % 1 == 0)
    assert X[:, FEATURE_NAMES.index("tenure_months")].max() > 100


def _dump_joblib(obj: Any) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        path = tmp_path / "model.joblib"
        joblib.dump(obj, path)
        return path

    return write


X7, Y7 = generate(300, seed=4)


def _logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=5000)


class _NoPredict:
    n_features_in_ = 7


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


class Doubler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A user's own class: the runtime cannot know what building it would run."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, X: Any) -> Any:
        return X * 2


def _untrusted_skops(tmp_path: Path) -> Path:
    pipeline = Pipeline([("f", Doubler()), ("m", DecisionTreeClassifier(max_depth=2))]).fit(X7, Y7)
    path = tmp_path / "model.skops"
    path.write_bytes(skops.io.dumps(pipeline))
    return path


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (_dump_joblib(_NoPredict()), [], r"a _NoPredict has no predict\(\)"),
        (
            _dump_joblib(LinearRegression().fit(X7, Y7)),
            [],
            r"task binary needs predict_proba\(\), which a LinearRegression does not have",
        ),
        (
            _dump_joblib(_logistic().fit(X7[:, :5], Y7)),
            [],
            r"the model takes 5 features, the schema lists 7 \(tenure_months, ",
        ),
        (
            _dump_joblib(RandomForestClassifier(3).fit(X7, np.arange(300) % 3)),
            [],
            r"task binary needs 2 classes; the model has 3 \(\[0, 1, 2\]\)",
        ),
        (_write("model.joblib", b"not a pickle"), [], r"not a readable joblib file"),
        (_write("model.skops", b"not a zip"), [], r"not a skops file"),
        (_write("model.pkl", b""), [], r"expected a \.joblib or \.skops file, got '\.pkl'"),
        (
            _dump_joblib(_logistic().fit(X7, Y7)),
            ["--sha256", "0" * 64],
            r"SHA-256 is [0-9a-f]{64}, not the 0{64} given with --sha256",
        ),
        (_untrusted_skops, [], r"types that are not trusted: .*test_package\.Doubler"),
    ],
    ids=[
        "no-predict",
        "regressor-for-binary",
        "feature-count",
        "three-classes-for-binary",
        "not-joblib",
        "not-skops",
        "suffix",
        "sha256",
        "untrusted-skops",
    ],
)
def test_refusals_exit_2_name_the_problem_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    extra: list[str],
    message: str,
) -> None:
    path = make(tmp_path)
    assert _run(tmp_path, path, *extra) == 2
    # A joblib loaded without --sha256 is preceded by the warning that it runs code.
    err = "".join(
        line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("warning:")
    )
    assert err.startswith(f"error: {path}: "), err
    assert any(__import__("re").search(message, line) for line in err.splitlines()), err
    assert not (tmp_path / "out").exists()


def _schema_file(tmp_path: Path, **changes: Any) -> Path:
    document = json.loads(CHURN_SCHEMA_FILE.read_text())
    document.update(changes)
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))
    return path


def test_a_classifier_for_a_regression_and_two_classes_for_multiclass_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dump_joblib(_logistic().fit(X7, Y7))(tmp_path)
    assert _run(tmp_path, path, schema=_schema_file(tmp_path, task="regression")) == 2
    assert "task regression needs a regressor" in capsys.readouterr().err
    assert _run(tmp_path, path, schema=_schema_file(tmp_path, task="multiclass")) == 2
    assert "task multiclass needs at least 3 classes; the model has 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_feature_names_must_match_the_schema_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    frame = pd.DataFrame(X7, columns=[*reversed(FEATURE_NAMES)])
    path = _dump_joblib(_logistic().fit(frame, Y7))(tmp_path)
    assert _run(tmp_path, path) == 2
    err = capsys.readouterr().err
    assert "column 1 of the model is 'payment_method_encoded', of the schema 'tenure_months'" in err
    assert "the model was fitted on payment_method_encoded, " in err


def test_labels_the_model_cannot_answer_are_refused(
    tmp_path: Path, write_csv: WriteCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = np.where(Y7 == 1, 1, 2)
    path = _dump_joblib(_logistic().fit(X7, labels))(tmp_path)
    assert _run(tmp_path, path, "--data", str(write_csv(300))) == 2
    assert "holds 0, which the model cannot answer: its classes are [1, 2]" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_the_gate_refuses_a_packaged_model_worse_than_the_base_rate(
    tmp_path: Path, write_csv: WriteCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    noise = _logistic().fit(X7, rng.permutation(Y7))
    path = _dump_joblib(noise)(tmp_path)
    assert _run(tmp_path, path, "--data", str(write_csv(300))) == 2
    assert "refused by the quality gate" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_a_bare_estimator_is_packaged_and_the_compiled_runtime_says_whether_it_took_it(
    tmp_path: Path, write_csv: WriteCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not a Pipeline: the compiler once failed on it with an AttributeError (exit 1).
    path = _dump_joblib(_logistic().fit(X7, Y7))(tmp_path)
    assert _run(tmp_path, path, "--data", str(write_csv(300))) == 0
    manifest = json.loads((tmp_path / "out/churn/v7/manifest.json").read_text())
    assert manifest["training"]["estimator"] == "LogisticRegression"
    assert manifest["training"]["params"]["max_iter"] == 5000
    if "compiled" not in manifest["artifacts"]:
        reason = manifest["compiled_runtime"]["reason"]
        assert "LogisticRegression" in reason
        assert f"compiled runtime: not supported, written without it: {reason}" in (
            capsys.readouterr().err
        )


def test_the_training_rows_given_are_fingerprinted_and_left_out_of_the_comparison(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    path = tmp_path / "churn.skops"
    path.write_bytes(skops.io.dumps(_churn_pipeline()))
    # The same seeded rows: the labelled rows are the ones the estimator is said to fit.
    training, labelled = write_csv(600, name="train.csv"), write_csv(600, name="labelled.csv")
    for version in ("v1", "v2"):
        code = package.main(
            ["--model", "churn", "--version", version, "--schema", str(CHURN_SCHEMA_FILE),
             "--estimator", str(path), "--data", str(labelled), "--training-data",
             str(training), "--output", str(tmp_path / "out"), "--no-compiled",
             "--confirm-feature-order"]
        )  # fmt: skip
        assert code == 0
    manifest = json.loads((tmp_path / "out/churn/v2/manifest.json").read_text())
    assert manifest["training"]["training_rows_source"] == {"kind": "csv", "file": "train.csv"}
    rows = RowFilter.from_record(manifest["training_rows"], "v2")
    X, y = load_csv(training, CHURN)
    assert rows.rows == 600 and rows.contains(X, y).all()
    # Every labelled row is one v1 trained on: nothing is left to compare on, and it says so.
    assert manifest["quality_gate"]["previous"] == {
        "version": "v1",
        "compared": False,
        "reason": "too few holdout rows that neither version trained on: 0 of 600, the "
        "comparison needs 500",
    }

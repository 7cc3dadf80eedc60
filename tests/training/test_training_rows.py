"""Each version's fingerprint of its training rows, and the comparison with the previous
version on holdout rows that neither version trained on (issue 22, finding 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from serving import golden_sets, quality
from serving.quality import QualityGateError
from tests.training.conftest import FAST_PARAMS
from training import golden
from training.publish import evaluate
from training.synthetic import generate
from training.train import HOLDOUT_FRACTION, SPLIT_SEED, TrainingData, train
from training.training_rows import NO_FINGERPRINT, RowFilter

# Deep enough boosting to fit its training rows better than fresh ones; fast enough.
OVERFIT = {"n_estimators": 60, "max_depth": 6, "learning_rate": 0.2}
# Three stumps: better than the base rate, clearly worse than OVERFIT on any rows.
WEAK = {"n_estimators": 3, "max_depth": 1}
ALL_X, ALL_Y = generate(25_000, 7)


def quiet(_: str) -> None:
    pass


def data(rows: int) -> TrainingData:
    return TrainingData(ALL_X[:rows], ALL_Y[:rows], {"kind": "synthetic", "rows": rows})


def fit(out: Path, rows: int, version: str, params: dict[str, Any]) -> Path:
    options: dict[str, Any] = {"model_name": "churn", "compiled": False, "log": quiet}
    return train(data(rows), version=version, output=out, params=params, **options)


def manifest(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return loaded


def split(rows: int) -> list[Any]:
    return list(
        train_test_split(
            ALL_X[:rows],
            ALL_Y[:rows],
            test_size=HOLDOUT_FRACTION,
            random_state=SPLIT_SEED,
            stratify=ALL_Y[:rows],
        )
    )


def test_the_filter_holds_every_training_row_and_few_others() -> None:
    X_train, X_test, y_train, y_test = split(25_000)
    rows = RowFilter.of(X_train, y_train)
    assert rows.contains(X_train, y_train).all()  # a Bloom filter has no false negatives
    false_positives = float(rows.contains(X_test, y_test).mean())
    assert false_positives < 0.02  # sized for 1 %
    # The label is part of the row: the same features with the other label are fresh.
    assert rows.contains(X_train, 1 - y_train).mean() < 0.02
    # 9.6 bits a row at 1 %: 20,000 rows in 24 KB.
    assert len(rows.filter) == pytest.approx(20_000 * 9.585 / 8, rel=0.01)
    again = RowFilter.from_record(json.loads(json.dumps(rows.record())), "m")
    assert again == rows


def test_a_bad_fingerprint_is_named() -> None:
    record = RowFilter.of(ALL_X[:10], ALL_Y[:10]).record()
    with pytest.raises(ValueError, match=r"m: training_rows.format is 'x'"):
        RowFilter.from_record({**record, "format": "x"}, "m")
    with pytest.raises(ValueError, match=r"m: training_rows has 3 bytes for"):
        RowFilter.from_record({**record, "filter": "AAAA"}, "m")


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1: the default estimator, overfitting a little, on the first 20,000 rows."""
    return fit(tmp_path_factory.mktemp("v1"), 20_000, "v1", OVERFIT)


def with_v1(tmp_path: Path, v1: Path) -> Path:
    shutil.copytree(v1.parent.parent, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_a_retrain_on_more_data_equal_on_fresh_rows_is_accepted(tmp_path: Path, v1: Path) -> None:
    # v2: the same rows plus 5,000 new ones. Part of its holdout is v1's training set.
    out = with_v1(tmp_path, v1)
    v2 = fit(out, 25_000, "v2", OVERFIT)
    record = manifest(v2)["quality_gate"]
    assert record["status"] == "passed"
    previous = record["previous"]
    v1_train, _, v1_train_y, _ = split(20_000)
    _, holdout, _, holdout_y = split(25_000)
    seen = {row.tobytes() for row in v1_train}
    trained_on = sum(row.tobytes() in seen for row in holdout)
    assert trained_on > 1500  # about 36 % of v2's 5,000 holdout rows
    # Every one of them dropped, plus about 2 % of the rest: the false positives of v1's
    # filter and of v2's own (1 % each).
    assert trained_on <= previous["rows_dropped"] <= trained_on + 0.03 * (5000 - trained_on)
    assert previous["rows"] + previous["rows_dropped"] == 5000
    assert previous["rows"] >= quality.MIN_FRESH_ROWS
    # Equal on the fresh rows...
    assert abs(previous["candidate"]["log_loss"] - previous["log_loss"]) < 0.01
    # ...while on the whole holdout, which v1 partly trained on, v1 looks better by more
    # than the tolerance: the comparison of before would have refused v2.
    v1_answers = golden.predict("sklearn", (v1 / "model.skops").read_bytes(), holdout)
    v1_whole = evaluate("binary", holdout_y, v1_answers, None)
    assert manifest(v2)["metrics"]["log_loss"] - v1_whole["log_loss"] > quality.LOG_LOSS_TOLERANCE
    assert len(v1_train_y) == 16_000


def test_a_retrain_on_more_data_worse_on_fresh_rows_is_refused(tmp_path: Path, v1: Path) -> None:
    out = with_v1(tmp_path, v1)
    with pytest.raises(QualityGateError) as caught:
        fit(out, 25_000, "v2", WEAK)
    message = str(caught.value)
    assert "holdout rows neither trained on by" in message
    assert "than v1's" in message
    assert not (out / "churn" / "v2").exists()


def test_a_previous_version_without_a_fingerprint_is_not_compared(tmp_path: Path) -> None:
    v1 = fit(tmp_path, 3000, "v1", FAST_PARAMS)
    content = manifest(v1)
    del content["training_rows"]
    (v1 / "manifest.json").write_text(json.dumps(content, indent=2) + "\n")
    # Three stumps would be refused against v1 on the same rows: here nothing is compared.
    v2 = fit(tmp_path, 3000, "v2", WEAK)
    record = manifest(v2)["quality_gate"]
    assert record["status"] == "passed"
    assert record["previous"] == {"version": "v1", "compared": False, "reason": NO_FINGERPRINT}
    assert "not compared with v1: no fingerprint" in quality.describe(manifest(v2))


def test_too_few_fresh_rows_are_said_and_not_compared(tmp_path: Path) -> None:
    fit(tmp_path, 2000, "v1", FAST_PARAMS)
    v2 = fit(tmp_path, 2000, "v2", WEAK)  # a 400-row holdout: fewer than the minimum
    record = manifest(v2)["quality_gate"]
    assert record["status"] == "passed"
    assert record["previous"]["compared"] is False
    reason = record["previous"]["reason"]
    assert reason.startswith("too few holdout rows that neither version trained on: ")
    assert f"the comparison needs {quality.MIN_FRESH_ROWS}" in reason


def test_every_version_records_its_training_rows(tmp_path: Path) -> None:
    v1 = fit(tmp_path, 3000, "v1", FAST_PARAMS)
    rows = RowFilter.from_record(manifest(v1)["training_rows"], "v1")
    X_train, X_test, y_train, y_test = split(3000)
    assert rows.rows == len(y_train) == 2400
    assert rows.contains(X_train, y_train).all()
    assert rows.contains(X_test, y_test).mean() < 0.03
    assert np.asarray(y_test).size == 600


def test_the_gates_pure_python_reading_agrees_with_training() -> None:
    # The traffic gate runs without numpy: serving.golden_sets reads the same filter.
    X_train, X_test, y_train, y_test = split(3000)
    record = RowFilter.of(X_train, y_train).record()
    rows = np.vstack([X_train[:300], X_test[:300]])
    labels = np.concatenate([y_train[:300], y_test[:300]])
    found = golden_sets.trained_on(record, rows.tolist(), labels.tolist())
    assert found == RowFilter.from_record(record, "m").contains(rows, labels).tolist()
    assert all(found[:300]) and sum(found[300:]) < 10
    # String labels: the same encoding on both sides.
    names = np.asarray(["churned" if v else "stayed" for v in y_train[:50]])
    strings = RowFilter.of(X_train[:50], names).record()
    assert all(golden_sets.trained_on(strings, X_train[:50].tolist(), names.tolist()))


def test_a_golden_set_carries_its_versions_training_rows(tmp_path: Path) -> None:
    v1 = fit(tmp_path, 3000, "v1", FAST_PARAMS)
    document = json.loads((v1 / "golden.json").read_text())
    assert document["training_rows"] == manifest(v1)["training_rows"]
    # Its own golden rows are its holdout's: it trained on none of them (but for the
    # filter's 1 % false positives).
    seen = golden_sets.seen_by(document, document)
    assert seen is not None and len(seen) == document["rows"] == 600
    assert sum(seen) < 0.03 * 600

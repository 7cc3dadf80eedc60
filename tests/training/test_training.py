from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest

from serving.artifacts import sha256_file, verify_version
from tests.training.conftest import FAST_PARAMS, WriteCsv, quiet, train_churn
from training import train as train_module
from training.dataset import DatasetError
from training.schema import FEATURE_NAMES
from training.train import csv_data, synthetic_data, train
from training.versions import ArtifactExistsError


def fit(tmp_path: Path, data: train_module.TrainingData, version: str = "v1") -> Path:
    return train_churn(tmp_path / "out", data, version)


def test_manifest_records_checksum_schema_versions_and_metrics(tmp_path: Path) -> None:
    out = fit(tmp_path, synthetic_data(1000, 1))
    manifest = json.loads((out / "manifest.json").read_text())
    for key, file in (("sklearn", "model.skops"), ("sklearn-joblib", "model.joblib")):
        artifact = manifest["artifacts"][key]
        assert artifact["file"] == file
        assert artifact["sha256"] == sha256_file(out / file)
        assert artifact["size_bytes"] == (out / file).stat().st_size
    assert manifest["artifacts"]["sklearn"]["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert [f["name"] for f in manifest["features"]] == list(FEATURE_NAMES)
    assert all({"dtype", "allowed", "observed"} <= f.keys() for f in manifest["features"])
    assert set(manifest["library_versions"]) == {
        "python",
        "scikit-learn",
        "numpy",
        "joblib",
        "skops",
    }
    assert manifest["training"]["params"]["n_estimators"] == FAST_PARAMS["n_estimators"]
    assert manifest["training"]["params"]["max_depth"] == 4
    assert manifest["data_fingerprint"]["rows"] == 1000
    metrics = manifest["metrics"]
    assert 0.6 < metrics["roc_auc"] <= 1.0 and 0.5 < metrics["accuracy"] <= 1.0
    assert 0 < metrics["log_loss"] < 0.7 and 0 < metrics["brier_score"] < 0.25
    assert metrics["holdout_rows"] == 200
    assert (out / "model_card.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "roc_auc" in (out / "model_card.md").read_text()
    assert verify_version(out) == []


def test_artifact_holds_pipeline_and_schema_and_predicts(tmp_path: Path) -> None:
    out = fit(tmp_path, synthetic_data(1000, 1))
    payload = joblib.load(out / "model.joblib")
    assert payload["format"] == "sklearn-pipeline-joblib/1"
    assert (payload["model_name"], payload["model_version"]) == ("churn", "v1")
    assert [f["name"] for f in payload["features"]] == list(FEATURE_NAMES)
    proba = payload["pipeline"].predict_proba(np.zeros((3, 7)))
    assert proba.shape == (3, 2)


def test_training_is_deterministic(tmp_path: Path) -> None:
    first = fit(tmp_path / "a", synthetic_data(800, 2))
    second = fit(tmp_path / "b", synthetic_data(800, 2))
    for file in ("model.joblib", "model.skops"):
        assert sha256_file(first / file) == sha256_file(second / file)


def test_trains_on_a_users_csv(tmp_path: Path, write_csv: WriteCsv) -> None:
    out = fit(tmp_path, csv_data(write_csv(300)))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["data_source"] == {"kind": "csv", "file": "data.csv"}
    assert manifest["data_fingerprint"]["rows"] == 300


def test_columns_in_another_order_are_accepted(write_csv: WriteCsv) -> None:
    expected = csv_data(write_csv(300)).X

    def reverse_features(rows: list[list[str]]) -> None:
        rows[:] = [[*reversed(row[:7]), row[7]] for row in rows]

    permuted = write_csv(
        300, header=[*reversed(FEATURE_NAMES), "churn"], edit=reverse_features, name="p.csv"
    )
    assert np.array_equal(csv_data(permuted).X, expected)


def _set(row: int, column: str, value: str):  # type: ignore[no-untyped-def]
    index = [*FEATURE_NAMES, "churn"].index(column)

    def edit(rows: list[list[str]]) -> None:
        rows[row][index] = value

    return edit


# A cell set to a bad value: (row, column, value, what the error says after its
# "line N, column 'C': ", N counting the header as line 1).
BAD_CELLS: dict[str, tuple[int, str, str, str]] = {
    "non-numeric": (4, "monthly_charges", "abc", "'abc' is not a number"),
    "nan": (0, "total_charges", "nan", "'nan' is not a finite number"),
    "empty-cell": (1, "total_charges", "", "'' is not a"),
    "infinity": (9, "tenure_months", "inf", "'inf' is not a finite number"),
    "fractional-integer": (2, "num_products", "1.5", "'1.5' is not a whole number"),
    "out-of-range": (3, "has_tech_support", "2", r"2 is outside the allowed range \[0, 1\]"),
    "label-2": (7, "churn", "2", "2 makes 3 classes: a binary label has exactly 2"),
    "label-text": (7, "churn", "yes", "'yes' makes 3 classes"),
}
BAD_FILES = [
    pytest.param(
        {"header": [*FEATURE_NAMES[:-1], "churn"], "edit": lambda r: [x.pop(6) for x in r]},
        r"missing column\(s\) payment_method_encoded",
        id="missing-column",
    ),
    # A column the schema does not list is ignored, with a notice: tests/training/
    # test_frame_data.py.
    *(
        pytest.param(
            {"edit": _set(row, column, value)},
            rf"line {row + 2}, column '{column}': {message}",
            id=name,
        )
        for name, (row, column, value, message) in BAD_CELLS.items()
    ),
    pytest.param(
        {"edit": lambda r: r[5].pop()}, r"line 7 has 7 fields, the header has 8", id="ragged-row"
    ),
    pytest.param({"rows": 50}, r"50 data rows, at least 100 are needed", id="too-few-rows"),
    pytest.param(
        {"edit": lambda r: [x.__setitem__(7, "0") for x in r]},
        r"column 'churn' has 1 class\(es\) \(0\); a binary label needs exactly 2",
        id="single-class",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_FILES)
def test_bad_csv_is_rejected_and_writes_nothing(
    tmp_path: Path,
    write_csv: WriteCsv,
    kwargs: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    path = write_csv(**kwargs)
    with pytest.raises(DatasetError, match=message):
        fit(tmp_path, csv_data(path))
    assert not (tmp_path / "out").exists()


def test_empty_and_missing_files_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="the file is empty"):
        csv_data(empty)
    with pytest.raises(DatasetError, match="cannot open"):
        csv_data(tmp_path / "absent.csv")


def test_cli_reports_bad_csv_with_exit_code_2(
    tmp_path: Path, write_csv: WriteCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(edit=_set(0, "monthly_charges", "12,5"))
    code = train_module.main(
        ["--version", "v9", "--data", str(path), "--output", str(tmp_path / "out")]
    )
    assert code == 2
    assert "column 'monthly_charges': '12,5' is not a number" in capsys.readouterr().err
    assert not (tmp_path / "out" / "churn" / "v9").exists()


def test_existing_version_is_kept_without_force(tmp_path: Path) -> None:
    out = fit(tmp_path, synthetic_data(600, 1))
    before = sha256_file(out / "model.joblib")
    with pytest.raises(ArtifactExistsError, match="pass --force"):
        fit(tmp_path, synthetic_data(600, 2))
    assert sha256_file(out / "model.joblib") == before


def test_force_replaces_an_existing_version(tmp_path: Path) -> None:
    out = fit(tmp_path, synthetic_data(600, 1))
    before = sha256_file(out / "model.joblib")
    train_churn(tmp_path / "out", synthetic_data(600, 2), force=True)
    assert sha256_file(out / "model.joblib") != before
    assert verify_version(out) == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["v1"]


@pytest.mark.parametrize(("model", "version"), [("Churn", "v1"), ("churn", "1"), ("a/b", "v1")])
def test_bad_names_are_refused(tmp_path: Path, model: str, version: str) -> None:
    with pytest.raises(ValueError, match="is not allowed"):
        train(
            synthetic_data(600, 1),
            model_name=model,
            version=version,
            output=tmp_path,
            params=FAST_PARAMS,
            log=quiet,
        )

"""The golden set every version carries: a labelled holdout sample and each runtime's answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving import artifacts
from serving.distributions import read_reference
from tests.training.conftest import train_churn
from training import golden
from training.train import add_quality_records, synthetic_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("artifacts")
    return train_churn(output, synthetic_data(2000, 3), "v3", golden_rows=150)


def test_golden_set_is_a_pinned_artifact_with_every_runtimes_answers(version: Path) -> None:
    manifest = artifacts.load_manifest(version)
    entry = manifest["artifacts"]["golden"]
    assert entry["file"] == "golden.json" and entry["rows"] == 150
    assert entry["sha256"] == artifacts.sha256_file(version / "golden.json")
    assert entry["size_bytes"] == (version / "golden.json").stat().st_size
    read = golden.read(version)
    assert set(read.predictions) == {"sklearn", "sklearn-joblib", "compiled"}
    for key in read.predictions:
        data = (version / manifest["artifacts"][key]["file"]).read_bytes()
        # Exact: the recorded answers are the loader's own, read back bit for bit.
        recorded = read.predictions[key].outputs
        assert np.array_equal(golden.predict(key, data, read.X), recorded)
        assert np.array_equal(read.predictions[key].labels, (read.predictions[key].outputs >= 0.5))


def test_golden_set_keeps_the_holdouts_class_balance(version: Path) -> None:
    read = golden.read(version)
    assert read.y is not None and read.rows == 150
    manifest = artifacts.load_manifest(version)
    holdout_rate = manifest["data_fingerprint"]["positive_rate"]
    # Stratified: the positive share is the holdout's to within one row.
    assert abs(read.y.mean() - holdout_rate) <= 1 / 150 + 1e-9
    metrics = json.loads((version / "golden.json").read_text())["predictions"]["sklearn"]
    assert metrics["metrics"] == golden.quality(read.y, read.predictions["sklearn"].outputs)


def test_a_small_holdout_gives_all_its_rows(tmp_path: Path) -> None:
    out = train_churn(tmp_path, synthetic_data(400, 2), compiled=False)
    read = golden.read(out)
    assert read.rows == 80  # the whole 20 % holdout, fewer than the default 1,000
    assert set(read.predictions) == {"sklearn", "sklearn-joblib"}


def test_stratified_sample_sizes_and_refusal() -> None:
    y = np.array([0] * 70 + [1] * 30)
    picked = golden.stratified_sample(y, 10)
    assert len(picked) == 10 and int(y[picked].sum()) == 3
    assert np.array_equal(picked, golden.stratified_sample(y, 10))  # seeded
    assert len(golden.stratified_sample(y, 500)) == 100
    with pytest.raises(ValueError, match="golden set size 0 is not allowed"):
        golden.stratified_sample(y, 0)


def test_a_rare_class_keeps_its_minimum_rows_so_its_auc_is_defined() -> None:
    # 0.3 % of the holdout: a proportional share of 1,000 rows would be 3 of its rows, of
    # 150 rows none, and its one-vs-rest ROC AUC NaN.
    y = np.array([0] * 6000 + [1] * 3970 + [2] * 30)
    for size in (150, 1000):
        picked = golden.stratified_sample(y, size)
        counts = np.bincount(y[picked], minlength=3)
        assert len(picked) == size
        assert counts[2] == golden.MIN_ROWS_PER_CLASS
        # The rows it gains come from the largest class.
        assert counts[1] == round(size * 3970 / 10_000)
        assert counts[0] == size - counts[1] - counts[2]
    # A class with fewer rows than the minimum keeps all of them.
    y = np.array([0] * 995 + [1] * 4)
    assert np.bincount(y[golden.stratified_sample(y, 100)])[1] == 4
    # A sample of a few rows keeps at least one of each class.
    assert np.bincount(y[golden.stratified_sample(y, 6)]).tolist() == [5, 1]


def test_manifest_records_reference_distributions(version: Path) -> None:
    reference = read_reference(artifacts.load_manifest(version))
    assert reference.prediction.count == 400  # the holdout's answers
    assert set(reference.features) == set(golden.read(version).feature_names)


def test_a_tampered_golden_set_fails_the_manifest_check(tmp_path: Path, version: Path) -> None:
    copy = tmp_path / "churn" / "v3"
    shutil.copytree(version, copy)
    content = json.loads((copy / "golden.json").read_text())
    content["predictions"]["sklearn"]["probabilities"][0] = 0.5
    (copy / "golden.json").write_text(json.dumps(content))
    assert artifacts.verify_version(copy) == [
        f"{copy / 'golden.json'}: SHA-256 does not match the manifest"
    ]


def test_a_malformed_golden_set_is_named() -> None:
    with pytest.raises(ValueError, match=r"g\.json: format is 'x', expected 'golden-set/1'"):
        golden.parse(b'{"format": "x"}', "g.json")
    good = json.loads((ROOT / "model_artifacts/churn/v1/golden.json").read_text())
    good["labels"] = good["labels"][:-1]
    with pytest.raises(ValueError, match="labels must be 1000 values, each 0 or 1"):
        golden.parse(json.dumps(good).encode(), "g.json")


def test_adding_records_to_an_older_version_keeps_its_model_files(tmp_path: Path) -> None:
    data = synthetic_data(600, 4)
    out = train_churn(tmp_path, data)
    fresh = artifacts.load_manifest(out)
    fresh_golden = (out / "golden.json").read_bytes()
    # An older version: no golden set, no reference distributions.
    old = {k: v for k, v in fresh.items() if k not in ("reference_distributions",)}
    old["artifacts"] = {k: v for k, v in fresh["artifacts"].items() if k != "golden"}
    (out / "golden.json").unlink()
    (out / "manifest.json").write_text(json.dumps(old, indent=2) + "\n")
    models = {p.name: p.read_bytes() for p in out.glob("model.*")}

    add_quality_records(data, out)
    assert artifacts.load_manifest(out) == fresh
    assert (out / "golden.json").read_bytes() == fresh_golden
    assert {p.name: p.read_bytes() for p in out.glob("model.*")} == models
    with pytest.raises(ValueError, match="was not trained on this data"):
        add_quality_records(synthetic_data(600, 5), out)


def test_committed_versions_carry_a_golden_set_matching_their_artifacts() -> None:
    for version in ("v1", "v2"):
        directory = ROOT / "model_artifacts" / "churn" / version
        manifest = artifacts.load_manifest(directory)
        read = golden.read(directory)
        assert read.rows == 1000 and manifest["artifacts"]["golden"]["rows"] == 1000
        for key, recorded in read.predictions.items():
            data = (directory / manifest["artifacts"][key]["file"]).read_bytes()
            assert np.array_equal(golden.predict(key, data, read.X), recorded.outputs)
        read_reference(manifest)


def test_a_golden_set_of_no_rows_is_refused_before_fitting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.train import main

    code = main(["--version", "v3", "--rows", "400", "--output", str(tmp_path),
                 "--golden-rows", "0"])  # fmt: skip
    assert code == 2
    assert "error: golden set size 0 is not allowed: at least 1 row" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

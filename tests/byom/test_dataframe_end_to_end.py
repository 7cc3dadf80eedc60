"""Issue 21's "Done when", end to end: pipelines written the usual way (a DataFrame with
raw strings and NA kept, imputer, scaler and encoder by column name) are saved with skops
and with joblib, their schema drafted with ``--write-schema``, packaged unchanged with
``--data`` pointing at a holdout CSV that keeps its empty cells, then served by
``tools.serve`` (its own process, real HTTP on loopback) with runtime compiled and
runtime sklearn: every answer equals ``pipeline.predict_proba`` on the user's DataFrame
of the same rows within 1e-9, rows with nulls and a row with an unknown category
included. On Palmer penguins (the issue's pipeline as written there) and on
scikit-learn's breast cancer data (NaN injected, a string column derived from a
feature). And a model fitted on a numpy array, with two columns swapped in the schema,
is refused without ``--confirm-feature-order``, the order it would use shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from tests.training.frame_data import NUMERIC, PENGUIN_FEATURES, breast_cancer, penguins
from training import package

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-9
RUNTIMES = ("compiled", "sklearn")
FORMATS = {"v1": "skops", "v2": "joblib"}
# tools.serve's own main, in its own process, with the artifacts root pointed at the
# test's folder instead of model_artifacts/.
SERVE = (
    "import sys; from pathlib import Path; from tools import serve; "
    "serve.ARTIFACTS = Path(sys.argv[1]); serve.main(sys.argv[2:])"
)


@dataclass(frozen=True)
class Case:
    """One dataset: its frames, the pipeline written for it, and an unknown category."""

    name: str
    label: str
    features: list[str]
    load: Callable[[], tuple[pd.DataFrame, pd.DataFrame]]
    pipeline: Callable[[], Pipeline]
    unknown: tuple[str, str]  # (column, a value the encoder never saw)


def _issue_pipeline() -> Pipeline:
    """Issue 21's pipeline exactly as its "Why" writes it."""
    return Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"]),
                    ]
                ),
            ),
            ("clf", HistGradientBoostingClassifier()),
        ]
    )


_CANCER_NUMERIC = ["mean_radius", "mean_texture", "mean_smoothness", "worst_concavity"]


def _cancer_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, holdout, numeric = breast_cancer()
    assert numeric == _CANCER_NUMERIC
    return train, holdout


def _cancer_pipeline() -> Pipeline:
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    band = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    pre = ColumnTransformer([("num", numbers, _CANCER_NUMERIC), ("band", band, ["size_band"])])
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    return Pipeline([("pre", pre), ("clf", forest)])


CASES = {
    "penguins": Case(
        "penguins", "species", PENGUIN_FEATURES, penguins, _issue_pipeline, ("island", "Anvers")
    ),
    "cancer": Case(
        "cancer",
        "diagnosis",
        [*_CANCER_NUMERIC, "size_band"],
        _cancer_frames,
        _cancer_pipeline,
        ("size_band", "huge"),
    ),
}


@dataclass
class Built:
    case: Case
    pipeline: Pipeline
    root: Path  # the artifacts root: <name>/v1 packaged from skops, v2 from joblib
    draft: dict[str, Any]
    frame: pd.DataFrame  # the holdout as the user reads it back: pandas.read_csv, NA kept


def _build(case: Case, folder: Path) -> Built:
    train, holdout = case.load()
    pipeline = case.pipeline().fit(train[case.features], train[case.label])
    files = {"skops": folder / f"{case.name}.skops", "joblib": folder / f"{case.name}.joblib"}
    skops.io.dump(pipeline, files["skops"])
    joblib.dump(pipeline, files["joblib"])
    data = folder / "holdout.csv"
    holdout.to_csv(data, index=False)  # every column; empty cells stay empty
    assert ",," in data.read_text() or ",\n" in data.read_text()
    draft = folder / f"{case.name}.yaml"
    argv = ["--estimator", str(files["skops"]), "--data", str(data), "--label", case.label]
    assert package.main([*argv, "--write-schema", str(draft)]) == 0
    root = folder / "model_artifacts"
    for version, kind in FORMATS.items():
        pin = ["--sha256", hashlib.sha256(files[kind].read_bytes()).hexdigest()]
        code = package.main(
            ["--model", case.name, "--version", version, "--schema", str(draft),
             "--estimator", str(files[kind]), "--data", str(data), "--output", str(root),
             *(pin if kind == "joblib" else [])]
        )  # fmt: skip
        assert code == 0, (case.name, kind)
    return Built(case, pipeline, root, yaml.safe_load(draft.read_text()), pd.read_csv(data))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    # One OpenMP thread: HistGradientBoosting's threads spin against each other on a busy
    # 2-core machine (the penguins fit and packaging took 60 s instead of 5 s at load 7).
    with threadpool_limits(limits=1, user_api="openmp"):
        return {name: _build(case, tmp_path_factory.mktemp(name)) for name, case in CASES.items()}


@pytest.fixture(scope="module")
def servers(built: dict[str, Built], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``python -m tools.serve``'s main for every (dataset, version, runtime), started
    together; the URL each one prints on its start-up line."""
    logs = tmp_path_factory.mktemp("serve")
    processes: dict[tuple[str, str, str], tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for name, result in built.items():
            for version in FORMATS:
                for runtime in RUNTIMES:
                    key = (name, version, runtime)
                    processes[key] = _serve(result.root, key, logs / f"{'-'.join(key)}.txt")
        urls = {key: _started(key, *entry) for key, entry in processes.items()}
        yield urls
    finally:
        for process, _ in processes.values():
            process.terminate()
        for process, _ in processes.values():
            process.wait(timeout=30)


def _serve(
    root: Path, key: tuple[str, str, str], log: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    name, version, runtime = key
    argv = ["--port", "0", "--model", name, "--version", version, "--runtime", runtime]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(root), *argv],
            cwd=REPO,
            # As in ``built``: eight servers share the machine's cores.
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return process, log


def _started(key: tuple[str, str, str], process: subprocess.Popen[bytes], log: Path) -> str:
    name, version, runtime = key
    pattern = rf"serving {name} {version} \({runtime}\) at (http://127\.0\.0\.1:\d+/)"
    for _ in range(600):  # up to 60 s for the model to load
        match = re.search(pattern, log.read_text())
        if match:
            return match.group(1)
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{key} did not start: {log.read_text()}")


def _post(url: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"instances": records}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _records(frame: pd.DataFrame, draft: dict[str, Any]) -> list[dict[str, Any]]:
    """The frame's rows as a caller sends them: null for NaN, an integer feature's value
    as a JSON integer."""
    integers = {f["name"] for f in draft["features"] if f["type"] == "integer"}
    records = []
    for row in frame.to_dict("records"):
        record: dict[str, Any] = {}
        for name, value in row.items():
            if isinstance(value, float) and np.isnan(value):
                record[name] = None
            elif name in integers:
                record[name] = int(value)
            else:
                record[name] = value
        records.append(record)
    return records


def _probabilities(answer: dict[str, Any], classes: list[Any]) -> np.ndarray:
    predictions = answer["predictions"]
    if "probabilities" in predictions[0]:
        return np.array([[p["probabilities"][str(c)] for c in classes] for p in predictions])
    # Binary: the positive class's probability, scikit-learn's second class.
    return np.array([[1.0 - p["probability"], p["probability"]] for p in predictions])


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("version", ["v1", "v2"], ids=["skops", "joblib"])
@pytest.mark.parametrize("name", list(CASES))
def test_served_answers_equal_predict_proba_on_the_users_dataframe(
    built: dict[str, Built], servers: Any, name: str, version: str, runtime: str
) -> None:
    result = built[name]
    case = result.case
    manifest = json.loads((result.root / name / version / "manifest.json").read_text())
    # Packaged unchanged as a frame model, both runtimes written (the compiled one took it).
    assert manifest["model_input"] == "frame"
    assert set(RUNTIMES) <= set(manifest["artifacts"]), manifest.get("compiled_runtime")
    assert manifest["quality_gate"]["status"] == "passed"
    assert manifest["training"]["packaged_from"]["format"] == FORMATS[version]
    frame = result.frame[case.features].copy()
    # The drafted schema passes unknown values to this encoder: one row says so.
    column, value = case.unknown
    entry = next(f for f in result.draft["features"] if f["name"] == column)
    assert entry["unknown"] == "pass"
    odd = frame.iloc[[0]].copy()
    odd[column] = value
    frame = pd.concat([frame, odd], ignore_index=True)
    records = _records(frame, result.draft)
    assert any(v is None for r in records for v in r.values())  # rows with nulls
    answer = _post(servers[(name, version, runtime)], records)
    assert (answer["model_name"], answer["model_version"]) == (name, version)
    classes = result.pipeline.classes_.tolist()
    got = _probabilities(answer, classes)
    expected = result.pipeline.predict_proba(frame)
    assert got.shape == expected.shape == (len(records), len(classes))
    assert np.max(np.abs(got - expected)) <= TOLERANCE
    # And the labels, by the handler's rule (binary: the second class from 0.5, which a
    # forest's tie of 0.5 gives where scikit-learn's argmax picks the first).
    if len(classes) == 2:
        labels = [classes[int(p >= 0.5)] for p in expected[:, 1]]
    else:
        labels = [classes[i] for i in np.argmax(expected, axis=1)]
    assert [p["prediction"] for p in answer["predictions"]] == labels


# bill_length_mm and bill_depth_mm swapped: the schema a numpy model is wrongly given.
SWAPPED = ["bill_depth_mm", "bill_length_mm", "flipper_length_mm", "body_mass_g"]


def test_a_numpy_model_with_two_columns_swapped_is_refused_without_confirming_the_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, holdout = (f.dropna(subset=NUMERIC) for f in penguins())
    model = RandomForestClassifier(n_estimators=100, max_depth=2, min_samples_leaf=30)
    model.set_params(random_state=0).fit(train[NUMERIC].to_numpy(), train["species"])
    estimator = tmp_path / "numpy.joblib"
    joblib.dump(model, estimator)
    ranges = {"bill_length_mm": (25, 70), "bill_depth_mm": (10, 25),
              "flipper_length_mm": (150, 250), "body_mass_g": (2000, 7000)}  # fmt: skip
    features = [{"name": n, "type": "number", "min": ranges[n][0], "max": ranges[n][1]}
                for n in SWAPPED]  # fmt: skip
    schema = tmp_path / "swapped.json"
    schema.write_text(json.dumps({"task": "multiclass", "label": "species", "features": features}))
    data, fitted_on = tmp_path / "holdout.csv", tmp_path / "train.csv"
    holdout[[*NUMERIC, "species"]].to_csv(data, index=False)
    train[[*NUMERIC, "species"]].to_csv(fitted_on, index=False)
    argv = ["--model", "penguins", "--version", "v1", "--schema", str(schema),
            "--estimator", str(estimator), "--data", str(data), "--output",
            str(tmp_path / "out"), "--no-compiled"]  # fmt: skip
    assert package.main(argv) == 2
    err = capsys.readouterr().err
    assert "fitted without column names (no feature_names_in_)" in err
    assert (
        "The order that will be used: 1. bill_depth_mm, 2. bill_length_mm, "
        "3. flipper_length_mm, 4. body_mass_g" in err
    )
    assert "--confirm-feature-order" in err
    assert not (tmp_path / "out").exists()
    # Confirmed (wrongly), it packages; the training rows show the holdout far below.
    assert package.main([*argv, "--confirm-feature-order", "--training-data", str(fitted_on)]) == 0
    manifest = json.loads((tmp_path / "out/penguins/v1/manifest.json").read_text())
    assert manifest["feature_order"]["order"] == SWAPPED
    assert manifest["training_metric_check"]["flagged"] is True

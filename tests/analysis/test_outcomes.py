"""python -m tools.outcomes: the better version is found, equal ones are not told apart."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from serving import labels
from tests.analysis import synthetic
from tools.outcomes.__main__ import EXIT_BAD_INPUT, main

ROUNDS = "300"


@pytest.fixture(scope="module")
def better(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_outcomes_example(tmp_path_factory.mktemp("better"), rows=3000)


@pytest.fixture(scope="module")
def equal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_outcomes_example(tmp_path_factory.mktemp("equal"), rows=3000, noise=0)


def run(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    status = main([str(a) for a in argv], out=out)
    return status, out.getvalue()


def report(files: dict[str, Path], *extra: str) -> dict[str, Any]:
    status, text = run(
        "--capture",
        files["capture"],
        "--labels",
        files["labels"],
        "--rounds",
        ROUNDS,
        "--json",
        *extra,
    )
    assert status == 0
    result: dict[str, Any] = json.loads(text)
    return result


def test_the_better_version_wins_on_every_metric(better: dict[str, Path]) -> None:
    result = report(better)
    assert result["baseline"] == "v1" and result["matched"] == 3000
    assert result["versions"]["v1"]["count"] + result["versions"]["v2"]["count"] == 3000
    differences = result["differences"]["v2"]
    assert differences["ROC AUC"]["low"] > 0
    assert differences["log loss"]["high"] < 0
    for metric in ("ROC AUC", "log loss", "Brier"):
        assert differences[metric]["verdict"].startswith(f"v2 better than v1 on {metric} by ")


def test_one_model_on_both_sides_shows_no_significant_difference(equal: dict[str, Path]) -> None:
    differences = report(equal)["differences"]["v2"]
    for metric, difference in differences.items():
        assert difference["low"] <= 0 <= difference["high"], metric
        assert difference["verdict"].startswith(f"no significant difference on {metric}")


def test_each_version_has_its_figures_with_intervals(better: dict[str, Path]) -> None:
    v2 = report(better)["versions"]["v2"]
    for metric in ("ROC AUC", "log loss", "Brier"):
        figure = v2[metric]
        assert figure["low"] <= figure["estimate"] <= figure["high"], metric
        assert figure["rounds"] == int(ROUNDS)
    # Binned calibration error is biased upwards on resamples (noise in a bin only adds to
    # |observed - predicted|), so its interval may sit just above the estimate.
    ece = v2["calibration error"]
    assert ece["low"] < ece["high"] and ece["low"] < 2 * ece["estimate"]


def test_the_baseline_can_be_chosen(better: dict[str, Path]) -> None:
    result = report(better, "--baseline", "v2")
    assert result["baseline"] == "v2"
    verdict = result["differences"]["v1"]["log loss"]["verdict"]
    assert verdict.startswith("v2 better than v1 on log loss by ")
    status, _ = run(
        "--capture", better["capture"], "--labels", better["labels"], "--baseline", "v9"
    )
    assert status == EXIT_BAD_INPUT


def test_the_text_report_reads_as_a_verdict(better: dict[str, Path]) -> None:
    status, text = run(
        "--capture", better["capture"], "--labels", better["labels"], "--rounds", ROUNDS
    )
    assert status == 0
    assert text.startswith("joined 3000 outcomes with captured predictions")
    assert re.search(
        r"^  v2 better than v1 on log loss by 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]$", text, re.M
    )


def test_the_same_seed_gives_the_same_report(better: dict[str, Path]) -> None:
    quick = ("--rounds", "50")
    assert report(better, *quick) == report(better, *quick)
    assert report(better, *quick) != report(better, *quick, "--seed", "1")


def test_outcomes_without_a_prediction_are_counted(better: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text(better["labels"].read_text(encoding="utf-8-sig") + "nobody,0,1\r\n")
    result = report({"capture": better["capture"], "labels": path})
    assert result["unmatched_labels"] == 1 and result["matched"] == 3000


# ---------------------------------------------------------------- the CSV


def write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "outcomes.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_csv_as_spreadsheets_write_it(tmp_path: Path) -> None:
    text = (
        '\ufeff"Request_ID","Note", Label \r\n'
        '"a,1","said ""bye""\r\nby phone",1\r\n'
        "b,,false\r\n\r\n"
    )
    outcomes = labels.read(write(tmp_path, text))
    assert [(o.request_id, o.row, o.label, o.line) for o in outcomes] == [
        ("a,1", 0, 1, 3),
        ("b", 0, 0, 4),
    ]


def test_rows_of_batches_are_read(tmp_path: Path) -> None:
    outcomes = labels.read(write(tmp_path, "request_id,row,label\nr,0,1\nr,1,0\ns,,yes\n"))
    assert [(o.request_id, o.row, o.label) for o in outcomes] == [
        ("r", 0, 1),
        ("r", 1, 0),
        ("s", 0, 1),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "the file is empty"),
        ("id,label\nr,1\n", "line 1: missing column\\(s\\) request_id"),
        ("request_id,label,label\nr,1,1\n", "line 1: column 'label' appears 2 times"),
        ("request_id,label\n", "no outcomes after the header"),
        ("request_id,label\nr,1\ns,maybe\n", "line 3, column 'label': 'maybe' is not a label"),
        ("request_id,row,label\nr,-1,1\n", "line 2, column 'row': '-1' is not a row number"),
        ("request_id,row,label\nr,x,1\n", "line 2, column 'row': 'x'"),
        ("request_id,label\n,1\n", "line 2, column 'request_id': empty"),
        ("request_id,label\nr\n", "line 2, column 'label': missing \\(the line has 1 fields\\)"),
        ("request_id,label\nr,1\nr,0\n", "line 3: request 'r' row 0 is already labelled on line 2"),
        (b"request_id,label\nr\xe9,1\n", "not UTF-8"),
        ('request_id,label\n"r,1\n', "not valid CSV"),
    ],
)
def test_bad_outcomes_are_named(tmp_path: Path, text: bytes | str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(labels.LabelsError, match=f"^{re.escape(str(path))}: .*{message}"):
        labels.read(path)


def test_bad_files_exit_2_with_the_message(
    better: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "request_id,label\nr,2\n")
    assert run("--capture", better["capture"], "--labels", bad)[0] == EXIT_BAD_INPUT
    assert "line 2, column 'label': '2' is not a label (0 or 1)" in capsys.readouterr().err
    none = write(tmp_path, "request_id,label\nnobody,1\n")
    assert run("--capture", better["capture"], "--labels", none)[0] == EXIT_BAD_INPUT
    assert "no outcome in" in capsys.readouterr().err
    missing = tmp_path / "nope.csv"
    assert run("--capture", better["capture"], "--labels", missing)[0] == EXIT_BAD_INPUT
    assert "nope.csv: cannot read" in capsys.readouterr().err


def test_a_single_version_gets_its_figures_and_no_comparison(
    better: dict[str, Path], tmp_path: Path
) -> None:
    lines = better["capture"].read_text().splitlines()
    only_v2 = tmp_path / "v2.jsonl"
    only_v2.write_text("\n".join(line for line in lines if '"model_version":"v2"' in line))
    result = report({"capture": only_v2, "labels": better["labels"]})
    assert list(result["versions"]) == ["v2"] and result["differences"] == {}
    assert result["unmatched_labels"] == 3000 - result["matched"]
    assert result["versions"]["v2"]["ROC AUC"]["rounds"] == int(ROUNDS)


def captured_row(
    version: str,
    request: str,
    task: str,
    prediction: Any,
    timestamp: str = "2026-11-25T10:00:00.000Z",
    row: int = 0,
) -> Any:
    from serving.capture_export import CapturedRow

    return CapturedRow(line=1, request_id=request, row=row, model_name="m",
                       model_version=version, lambda_version="3", timestamp=timestamp,
                       prediction=prediction, features=None,
                       task=task, probability=None,
                       probabilities=(0.5, 0.3, 0.2) if task == "multiclass" else None)  # fmt: skip


def test_multiclass_versions_are_compared_on_the_class_they_answered(tmp_path: Path) -> None:
    import numpy as np

    from serving.outcomes import compare, join

    rng = np.random.default_rng(3)
    truth = rng.choice(["ant", "bee", "2"], 600)
    rows, outcomes = [], []
    for i, label in enumerate(truth):
        # v1 answers right 60 % of the time, v2 95 %; 2 is answered as the integer 2.
        right = rng.random() < (0.6 if i % 2 else 0.95)
        answer = label if right else "ant" if label != "ant" else "bee"
        rows.append(captured_row("v1" if i % 2 else "v2", f"r{i}", "multiclass",
                                 2 if answer == "2" else answer))  # fmt: skip
        outcomes.append(f"r{i},{label}")
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\n" + "\n".join(outcomes) + "\n")
    report = compare(join(rows, labels.read(path, task="multiclass")), rounds=200)
    assert [r.version for r in report.versions] == ["v1", "v2"]
    accuracy = {r.version: r.metrics["accuracy"].estimate for r in report.versions}
    assert 0.5 < accuracy["v1"] < 0.7 and accuracy["v2"] > 0.9
    (difference,) = report.differences["v2"]
    assert difference.verdict("v2", "v1").startswith("v2 better than v1 on accuracy by 0.3")
    assert "positives" in report.render() and " - " in report.render()


def test_regression_versions_are_compared_on_rmse_and_mae(tmp_path: Path) -> None:
    import numpy as np

    from serving.outcomes import compare, join

    rng = np.random.default_rng(4)
    rows, outcomes = [], []
    for i in range(400):
        value = float(rng.normal(100, 10))
        noise = 1.0 if i % 2 else 8.0  # v1 close, v2 far off
        rows.append(captured_row("v1" if i % 2 else "v2", f"r{i}", "regression",
                                 value + float(rng.normal(0, noise))))  # fmt: skip
        outcomes.append(f"r{i},{value!r}")
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\n" + "\n".join(outcomes) + "\n")
    report = compare(join(rows, labels.read(path, task="regression")), rounds=200)
    verdicts = [d.verdict("v2", "v1") for d in report.differences["v2"]]
    assert verdicts[0].startswith("v1 better than v2 on RMSE by ")
    assert verdicts[1].startswith("v1 better than v2 on MAE by ")
    assert report.to_json()["versions"]["v1"]["positives"] is None  # type: ignore[index]


def test_labels_are_read_as_the_task_labels_them(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\nr1,bee\nr2,12.5\n")
    assert [o.label for o in labels.read(path, task="multiclass")] == ["bee", "12.5"]
    with pytest.raises(labels.LabelsError, match="line 2, column 'label': 'bee' is not a finite"):
        labels.read(path, task="regression")
    with pytest.raises(labels.LabelsError, match="line 2, column 'label': 'bee' is not a label"):
        labels.read(path)


def test_a_capture_of_two_tasks_is_refused() -> None:
    from serving.outcomes import join

    rows = [captured_row("v1", "r1", "regression", 1.0),
            captured_row("v2", "r2", "multiclass", "bee")]  # fmt: skip
    with pytest.raises(ValueError, match="records of multiclass and regression models"):
        join(rows, [])

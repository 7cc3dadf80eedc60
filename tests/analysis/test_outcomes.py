"""python -m tools.outcomes: the better version is found, equal ones are not told apart."""

from __future__ import annotations

import dataclasses
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


# ---------------------------------------------------------------- requests, windows, families


def test_resampled_metrics_at_one_count_each_are_the_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numpy as np

    from serving import bootstrap, stats

    rng = np.random.default_rng(8)
    request = np.repeat(np.arange(50), rng.integers(1, 9, 50))
    p = rng.uniform(0, 1, request.size).round(1)  # ties, and 1.0 at a bin's edge
    y = (rng.random(request.size) < p).astype(float)
    sample = bootstrap.clustered(y, p, request)
    ones = np.ones((1, sample.clusters))
    binary = [stats.roc_auc, stats.log_loss, stats.brier, stats.expected_calibration_error]
    for metric in binary:
        assert bootstrap.RESAMPLED[metric](sample)(ones)[0] == pytest.approx(metric(y, p))
    # ROC AUC over the rows (many requests for their rows) gives the same figure.
    monkeypatch.setattr(bootstrap, "PAIRS_PER_ROW", 0)
    auc = bootstrap.RESAMPLED[stats.roc_auc](sample)(np.vstack([ones, 2 * ones]))
    assert auc == pytest.approx([stats.roc_auc(y, p)] * 2)
    # Counts weight rows by their request: twice request 0 is request 0's rows twice.
    counts = ones.copy()
    counts[0, 0] = 2
    doubled = np.r_[np.flatnonzero(request == 0), np.arange(request.size)]
    for metric in binary:
        got = bootstrap.RESAMPLED[metric](sample)(counts)[0]
        assert got == pytest.approx(metric(y[doubled], p[doubled])), metric.__name__
    values = rng.normal(0, 1, request.size)
    regression = bootstrap.clustered(values, values + 0.5, request, pairing="regression")
    for metric in (stats.rmse, stats.mae):
        assert bootstrap.RESAMPLED[metric](regression)(ones)[0] == pytest.approx(0.5)
    answered = np.array(["a", "b", "a", "c"], dtype=object)
    truth = np.array(["a", "b", "b", "b"], dtype=object)
    labels = bootstrap.clustered(truth, answered, [1, 1, 2, 3], pairing="labels")
    accuracy = bootstrap.RESAMPLED[stats.label_accuracy](labels)
    assert accuracy(np.array([[1.0, 1, 1], [2, 0, 1]]))[0] == pytest.approx(0.5)


def test_resampling_requests_widens_intervals_by_the_design_effect() -> None:
    import numpy as np

    from serving import bootstrap, stats

    rng = np.random.default_rng(9)
    p = rng.uniform(0, 1, 300)
    y = (rng.random(300) < p).astype(float)
    one_row_each = bootstrap.cluster_intervals([stats.brier], bootstrap.clustered(y, p, range(300)))
    by_rows = bootstrap.bootstrap_interval(stats.brier, y, p, rounds=2000)
    width = one_row_each[0].high - one_row_each[0].low
    assert width == pytest.approx(by_rows.high - by_rows.low, rel=0.15)
    # Ten identical rows per request: the rows say no more than the requests, so the
    # interval is about sqrt(10) times the one that takes the rows as independent.
    tenfold = bootstrap.clustered(np.repeat(y, 10), np.repeat(p, 10), np.repeat(range(300), 10))
    (clustered,) = bootstrap.cluster_intervals([stats.brier], tenfold)
    naive = bootstrap.bootstrap_interval(stats.brier, tenfold.y, tenfold.p, rounds=2000)
    ratio = (clustered.high - clustered.low) / (naive.high - naive.low)
    assert 2.5 < ratio < 4.0, ratio


def spread(days: tuple[int, int], version: str, rng: Any, rows: int = 200) -> list[Any]:
    """Captured binary predictions of ``version``, one request a row, over ``days``."""
    first, last = days
    out = []
    for i in range(rows):
        day = first + (last - first) * i / (rows - 1)
        stamp = f"2026-11-{1 + int(day):02d}T{int(day % 1 * 24):02d}:00:00.000Z"
        row = captured_row(version, f"{version}-{i}", "binary", None, stamp)
        out.append(dataclasses.replace(row, probability=float(rng.uniform())))
    return out


def outcomes_of(rows: list[Any], rng: Any) -> list[labels.Outcome]:
    return [labels.Outcome(i + 2, r.request_id, 0, int(rng.random() < r.probability))
            for i, r in enumerate(rows)]  # fmt: skip


def test_versions_are_compared_only_while_both_served() -> None:
    import numpy as np

    from serving.outcomes import compare, epoch_seconds, join

    rng = np.random.default_rng(10)
    # v1 served days 0-10, v2 days 5-15: compared from v2's first to v1's last record.
    v1, v2 = spread((0, 10), "v1", rng), spread((5, 15), "v2", rng)
    result = compare(join(v1 + v2, outcomes_of(v1 + v2, rng)), rounds=200)
    window = result.windows["v2"]
    assert not isinstance(window, str)
    start, end = epoch_seconds(v2[0]), epoch_seconds(v1[-1])
    assert (window.start, window.end) == (start, end)
    inside = {
        "v1": sum(epoch_seconds(r) >= start for r in v1),
        "v2": sum(epoch_seconds(r) <= end for r in v2),
    }
    assert 50 < inside["v1"] < 150 and 50 < inside["v2"] < 150
    assert {r.version: r.count for r in result.versions} == inside
    for version, rows in inside.items():
        assert window.left_out[version] == (200 - rows, 200 - rows)  # a request a row
    text = result.render()
    assert "v2 against v1, compared while both served, 2026-11-06T00:00:00Z to 2026-11-11T" in text
    assert f"(labelled rows left out: v1 {200 - inside['v1']} rows of " in text
    assert result.to_json()["windows"]["v2"]["left_out"]["v2"]["rows"] == 200 - inside["v2"]  # type: ignore[index]


def test_versions_that_never_served_together_are_not_compared() -> None:
    import numpy as np

    from serving.outcomes import compare, join

    rng = np.random.default_rng(11)
    rows = spread((0, 4), "v1", rng) + spread((6, 9), "v2", rng)
    result = compare(join(rows, outcomes_of(rows, rng)), rounds=200)
    assert result.differences == {}
    assert [r.count for r in result.versions] == [200, 200]
    assert "v2 against v1: not compared: they never served at the same time (v1 " in (
        result.render()
    )
    windows = result.to_json()["windows"]
    assert "never served" in windows["v2"]["not_compared"]  # type: ignore[index]


def test_the_correction_counts_every_verdict_the_report_gives() -> None:
    import numpy as np

    from serving.outcomes import compare, join

    rng = np.random.default_rng(12)
    rows = [r for v in ("v1", "v2", "v3") for r in spread((0, 4), v, rng)]
    result = compare(join(rows, outcomes_of(rows, rng)), rounds=200, confidence=0.9)
    assert result.family == 8  # four metrics, two versions against the baseline
    assert result.difference_confidence == pytest.approx(1 - 0.1 / 8)
    for differences in result.differences.values():
        for d in differences:
            assert d.interval.confidence == pytest.approx(0.9875)
    assert all(i.confidence == 0.9 for r in result.versions for i in r.metrics.values())
    assert "differences: 98.75 % intervals (Bonferroni over 8 verdicts" in result.render()


@pytest.mark.parametrize("stamp", ["t", "2026-11-25T10:00:00", ""])
def test_a_timestamp_that_is_not_a_time_is_named(stamp: str) -> None:
    from serving.outcomes import join

    with pytest.raises(ValueError, match=f"line 1: timestamp {re.escape(repr(stamp))} is not"):
        join([captured_row("v1", "r", "binary", None, stamp)], [])


def test_bad_bootstrap_input_is_named() -> None:
    from serving import bootstrap, stats

    with pytest.raises(ValueError, match="2 request ids for 3 rows"):
        bootstrap.clustered([0, 1, 1], [0.2, 0.4, 0.9], ["a", "b"])
    sample = bootstrap.clustered([0, 1, 1], [0.2, 0.4, 0.9], ["a", "b", "b"])
    with pytest.raises(ValueError, match="no request-resampled form of r2"):
        bootstrap.cluster_intervals([stats.r2], sample)


def test_the_json_report_names_its_window_and_correction(better: dict[str, Path]) -> None:
    result = report(better)
    assert result["family"] == 4 and result["difference_confidence"] == pytest.approx(0.9875)
    window = result["windows"]["v2"]
    assert window["start"] <= window["end"] and window["start"].endswith("Z")
    assert window["left_out"] == {v: {"rows": 0, "requests": 0} for v in ("v1", "v2")}
    assert result["differences"]["v2"]["log loss"]["confidence"] == pytest.approx(0.9875)
    assert result["versions"]["v2"]["log loss"]["confidence"] == pytest.approx(0.95)

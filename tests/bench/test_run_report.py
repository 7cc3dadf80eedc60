from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import record as record_module
from benchmarks.record import BEGIN, END, RecordError, record
from benchmarks.report import LEAN, OURS, SEED, TARGETS, build_report, metric
from benchmarks.run import main


def result(scale: float, *, log_bytes: float = 0.0) -> dict[str, Any]:
    return {
        "cold_ms": 1000 * scale,
        "cold_import_ms": 900 * scale,
        "cold_first_request_ms": 100 * scale,
        "warm": {
            size: {"p50_ms": base * scale, "p99_ms": 2 * base * scale, "samples": 10}
            for size, base in (("1", 1.0), ("100", 2.0), ("1000", 10.0))
        },
        "model_only": {
            "1": {"p50_ms": 0.3 * scale, "samples": 10},
            "1000": {"p50_ms": 3.0 * scale, "samples": 10},
        },
        "peak_rss_mb": 100.0,
        "log_bytes_per_request": {"1": log_bytes, "100": log_bytes, "1000": log_bytes},
        "parity_max_abs_diff": 0.0,
        "parity_label_mismatches": 0,
        "deps_mb": 50.0,
    }


def with_rounds(result: dict[str, Any], *, ours: bool) -> dict[str, Any]:
    """Two rounds: the second slower for everybody, and twice as much again for ours."""
    first = {key: metric(result, key) for _, key, _ in TARGETS}
    second = {key: value * (4 if ours else 2) for key, value in first.items()}
    return {**result, "rounds": [first, second]}


MACHINE = {
    "machine": "x86_64",
    "cores": 2,
    "python": "3.12.1",
    "pinned_cpu": 0,
    "load_average_before": 1.0,
    "load_average_after": 1.5,
    "date": "2026-11-25",
    "duration_s": 1.0,
}


def report(compiled_scale: float, *, quick: bool = False) -> dict[str, Any]:
    results = {
        SEED: result(2.0),
        LEAN: with_rounds(result(1.0), ours=False),
        OURS[0]: result(1.0, log_bytes=700),
        OURS[1]: with_rounds(result(compiled_scale, log_bytes=700), ours=True),
    }
    return build_report(
        results,
        machine=MACHINE,
        rounds=3,
        quick=quick,
        iterations={"warm": {"1": 10}, "model_only": {"1": 10}},
        parity_rows=4000,
    )


def test_ratios_are_against_each_baseline_of_the_same_run() -> None:
    markdown = report(0.1)["markdown"]
    row = next(line for line in markdown.splitlines() if "warm p50, batch of 1,000" in line)
    # seed 20 ms, lean 10 ms, ours (sklearn) 10 ms, ours (compiled) 1 ms
    assert row.split(" | ")[1:] == [
        "20.00 ms",
        "10.00 ms",
        "10.00 ms",
        "1.000x",
        "0.500x",
        "1.00 ms",
        "0.100x",
        "0.050x |",
    ]
    assert "pinned to CPU 0" in markdown and "load average 1.0 before, 1.5 after" in markdown


def test_targets_are_met_or_missed_against_the_lean_baseline() -> None:
    assert report(0.1)["targets_met"] is True
    missed = report(0.4)
    assert missed["targets_met"] is False
    assert missed["targets"]["warm p50 1 record <= 0.3x lean"] == {
        "ratio": 0.4,
        "met": False,
        "rounds": [0.4, 0.8],
    }
    assert "| warm p50 1 record <= 0.3x lean | 0.400x | 0.40 0.80 | NO |" in missed["markdown"]
    assert missed["targets"]["warm p50 batch of 100 <= 0.5x lean"]["met"] is True


def test_bad_options_are_refused_with_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])
    assert "--rounds must be 1 or more, not 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cpu", "4096"])
    assert "--cpu 4096 is not one of the CPUs" in capsys.readouterr().err


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "build"
    run.mkdir()
    full = report(0.1)
    (run / "latest.json").write_text(json.dumps(full))
    (run / "latest.md").write_text(full["markdown"])
    return run


def test_record_copies_the_run_and_replaces_only_the_marked_table(
    run_dir: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    record(run_dir, tmp_path / "results", doc)
    text = doc.read_text()
    assert "old table" not in text
    assert text.startswith("# Performance\n\nbefore\n" + BEGIN + "\nMeasured by `make bench`")
    assert text.endswith(END + "\nafter\n")
    assert json.loads((tmp_path / "results" / "latest.json").read_text())["rounds"] == 3


def test_record_refuses_a_quick_run_and_a_doc_without_markers(
    run_dir: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n")
    with pytest.raises(RecordError, match="must hold the lines"):
        record(run_dir, tmp_path / "results", doc)
    (run_dir / "latest.json").write_text(json.dumps(report(0.1, quick=True)))
    doc.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(RecordError, match="is a --quick run"):
        record(run_dir, tmp_path / "results", doc)
    assert not (tmp_path / "results").exists()


def test_record_without_a_run_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="run `make bench` first"):
        record(tmp_path, tmp_path / "results", tmp_path / "performance.md")
    assert record_module.main(["--run", str(tmp_path)]) == 2


def test_record_prices_the_environments_from_the_recorded_run(
    run_dir: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(
        f"# Performance\n{BEGIN}\n{END}\n## Cost\n{record_module.COST_BEGIN}\nstale cost table\n"
        f"{record_module.COST_END}\n"
    )
    record(run_dir, tmp_path / "results", doc)
    text = doc.read_text()
    assert "stale cost table" not in text
    assert "| prod, PC 4 (configured total) | 1M / month |" in text
    assert "From `make bench` of 2026-11-25 (benchmarks/results/latest.json)." in text


def test_the_baselines_read_the_columns_training_writes_in_its_order() -> None:
    from benchmarks.churn_features import FEATURES
    from training.schema import FEATURE_NAMES

    assert list(FEATURE_NAMES) == FEATURES

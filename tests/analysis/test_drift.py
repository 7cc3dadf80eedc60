"""python -m tools.drift: synthetic drift is found, training-like traffic is not flagged."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from serving import capture_export
from tests.analysis import synthetic
from tools.drift.__main__ import EXIT_BAD_INPUT, EXIT_DRIFT, EXIT_TOO_FEW, main
from training.schema import FEATURE_NAMES


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_drift_example(tmp_path_factory.mktemp("drift"))


def run(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    status = main([str(a) for a in argv], out=out)
    return status, out.getvalue()


def verdicts(example: dict[str, Path], name: str) -> dict[str, Any]:
    status, text = run("--capture", example[name], "--manifest", example["manifest"], "--json")
    table = json.loads(text)
    return {"status": status, **{line["name"]: line for line in table["lines"]}}


def test_traffic_drawn_like_the_training_data_is_not_flagged(example: dict[str, Path]) -> None:
    result = verdicts(example, "same")
    assert result["status"] == 0
    for name in (*FEATURE_NAMES, "prediction"):
        assert result[name]["verdict"] == "stable", name
        assert result[name]["psi"] < 0.05, name


def test_shifted_tenure_and_charges_are_detected(example: dict[str, Path]) -> None:
    result = verdicts(example, "drifted")
    assert result["status"] == EXIT_DRIFT
    assert result["tenure_months"]["verdict"] == "drift"
    assert result["monthly_charges"]["verdict"] == "drift"
    unshifted = set(FEATURE_NAMES) - {"tenure_months", "monthly_charges"}
    assert all(result[name]["verdict"] == "stable" for name in unshifted)


def test_the_table_names_each_line_and_the_result(example: dict[str, Path]) -> None:
    status, text = run("--capture", example["drifted"], "--manifest", example["manifest"])
    assert status == EXIT_DRIFT
    assert "3000 rows (3000 requests) of v1 in capture-drifted.jsonl" in text
    assert text.rstrip().endswith(
        "drift (PSI above 0.25, p <= 0.01 after Holm) in tenure_months, monthly_charges"
    )


def test_thresholds_are_configurable(example: dict[str, Path]) -> None:
    args = ("--capture", example["drifted"], "--manifest", example["manifest"])
    status, text = run(*args, "--watch", "0.5", "--alarm", "2")
    assert status == 0 and "watch tenure_months" in text
    status, _ = run(*args, "--watch", "0.3", "--alarm", "0.2")
    assert status == EXIT_BAD_INPUT


def test_too_few_rows_give_no_verdict(example: dict[str, Path], tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text("".join(example["drifted"].read_text().splitlines(True)[:50]))
    status, text = run("--capture", small, "--manifest", example["manifest"])
    assert status == EXIT_TOO_FEW
    assert "too few requests (< 200)" in text and "result: too few requests to judge" in text
    status, _ = run("--capture", small, "--manifest", example["manifest"], "--min-requests", "50")
    assert status == EXIT_DRIFT


def test_the_old_min_rows_option_says_what_to_write(
    example: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run("--capture", example["same"], "--manifest", example["manifest"],
                    "--min-rows", "50")  # fmt: skip
    assert status == EXIT_BAD_INPUT
    assert "--min-rows 50 is not an option any more" in capsys.readouterr().err


def test_rows_of_one_request_count_once(example: dict[str, Path], tmp_path: Path) -> None:
    """3,000 drifted rows sent as 30 requests of 100 rows are 30 requests: too few."""
    lines = [json.loads(line) for line in example["drifted"].read_text().splitlines()]
    batched = tmp_path / "batched.jsonl"
    batched.write_text(
        "\n".join(json.dumps(r | {"request_id": f"b-{i // 100}"}) for i, r in enumerate(lines))
    )
    status, text = run("--capture", batched, "--manifest", example["manifest"], "--json")
    table = {line["name"]: line for line in json.loads(text)["lines"]}
    assert status == EXIT_TOO_FEW
    assert (table["tenure_months"]["rows"], table["tenure_months"]["requests"]) == (3000, 30)


def test_other_log_lines_and_other_versions_are_skipped(
    example: dict[str, Path], tmp_path: Path
) -> None:
    lines = example["same"].read_text().splitlines()
    other = json.loads(lines[0]) | {"model_version": "v2"}
    mixed = tmp_path / "mixed.jsonl.gz"
    with gzip.open(mixed, "wt") as handle:
        handle.write('{"level":"INFO","message":"prediction"}\n\n')
        handle.write('{"_aws":{},"ModelVersion":"v1"}\n')
        handle.write(json.dumps(other) + "\n")
        handle.write("\n".join(lines) + "\n")
    status, text = run("--capture", mixed, "--manifest", example["manifest"])
    assert status == 0
    assert "(1 rows of other versions and 2 other lines skipped)" in text


def write(tmp_path: Path, text: str, name: str = "bad.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def a_line(example: dict[str, Path], **changes: Any) -> str:
    record = json.loads(example["same"].read_text().splitlines()[0])
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ({"capture": "yes"}, "line 2: field 'capture' is 'yes', expected 1"),
        ({"format": "capture/2"}, "line 2: field 'format' is 'capture/2': this reader knows"),
        (
            {"probability": 1.5},
            r"line 2: field 'probability' must be a number in \[0, 1\], got 1.5",
        ),
        ({"row": -1}, "line 2: field 'row' must be an integer >= 0, got -1"),
        ({"request_id": ...}, "line 2: field 'request_id' must be a non-empty string"),
        ({"features": {"tenure_months": "12"}}, "line 2: field 'features.tenure_months'"),
        ({"features": {"tenure_months": 3}}, "line 2: field 'features.monthly_charges' is missing"),
    ],
)
def test_a_bad_capture_line_is_named(
    example: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: Any,
    message: str,
) -> None:
    text = line if isinstance(line, str) else a_line(example, **line)
    path = write(tmp_path, a_line(example) + "\n" + text + "\n")
    status, _ = run("--capture", path, "--manifest", example["manifest"])
    assert status == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ")
    assert re.search(message, err), err


def test_bad_files_are_named(
    example: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads(example["manifest"].read_text())
    del manifest["reference_distributions"]
    old = write(tmp_path, json.dumps(manifest), "old-manifest.json")
    cases = [
        (("--capture", tmp_path / "missing.jsonl"), "missing.jsonl: cannot read"),
        (("--manifest", old), "old-manifest.json has no 'reference_distributions'"),
        (("--manifest", write(tmp_path, "{", "broken.json")), "broken.json: not valid JSON"),
        (
            ("--capture", write(tmp_path, a_line(example, model_version="v2") + "\n")),
            "no capture records of churn v1 (versions found: v2)",
        ),
    ]
    for override, message in cases:
        args = {"--capture": example["same"], "--manifest": example["manifest"]}
        args.update(dict(zip(override[::2], override[1::2], strict=True)))
        status, _ = run(*[x for pair in args.items() for x in pair])
        assert status == EXIT_BAD_INPUT, override
        assert message in capsys.readouterr().err


def test_a_non_utf8_export_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"capture": 1, "x": "\xe9"}\n')
    with pytest.raises(capture_export.CaptureFileError, match=r"latin\.jsonl: line 1: not UTF-8"):
        capture_export.read(path)


def test_versions_sort_by_number() -> None:
    assert sorted(["v10", "v2", "v1", "canary"], key=capture_export.version_key) == [
        "canary",
        "v1",
        "v2",
        "v10",
    ]


def test_rows_without_features_still_count_for_the_prediction(
    example: dict[str, Path], tmp_path: Path
) -> None:
    lines = [json.loads(line) for line in example["same"].read_text().splitlines()]
    omitted = tmp_path / "omitted.jsonl"
    omitted.write_text(
        "\n".join(
            json.dumps(r | {"features": None, "features_omitted_bytes": 70000}) for r in lines
        )
    )
    status, text = run("--capture", omitted, "--manifest", example["manifest"], "--json")
    table = {line["name"]: line for line in json.loads(text)["lines"]}
    assert status == EXIT_TOO_FEW
    assert table["tenure_months"] == {
        "name": "tenure_months",
        "rows": 0,
        "requests": 0,
        "psi": None,
        "p_value": None,
        "verdict": None,
        "missing": 0.0,
        "unknown": 0.0,
    }
    assert table["prediction"]["rows"] == 3000 and table["prediction"]["verdict"] == "stable"


# ---------------------------------------------------------------------------- every task

COLOURS = ["red", "green", 7]
TASK_SCHEMA = [
    {"name": "size", "dtype": "number"},
    {"name": "colour", "dtype": "categorical", "allowed": {"values": COLOURS}},
]


def task_files(tmp_path: Path, colour_shares: list[float]) -> tuple[Path, Path]:
    """A multiclass model's manifest and a capture export of its traffic."""
    import numpy as np

    from serving.distributions import reference_distributions

    rng = np.random.default_rng(8)
    X = np.column_stack([rng.normal(size=2000), rng.choice(3, 2000, p=[0.6, 0.3, 0.1])])
    rows = rng.dirichlet([3, 2, 1], 2000)
    reference = reference_distributions(
        X, TASK_SCHEMA, rows, task="multiclass", classes=["ant", "bee", "cat"]
    )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"model_name": "zoo", "model_version": "v1",
                                    "reference_distributions": reference}))  # fmt: skip
    answered = reference["prediction"]["proportions"][:3]
    lines = []
    for row in range(1000):
        label = ["ant", "bee", "cat"][int(rng.choice(3, p=np.array(answered) / sum(answered)))]
        lines.append(json.dumps({
            "capture": 1, "format": "capture/1", "request_id": f"r{row}", "row": 0,
            "model_name": "zoo", "model_version": "v1", "lambda_version": "3",
            "timestamp": "2026-11-25T10:00:00Z", "prediction": label,
            "probabilities": [0.5, 0.3, 0.2],
            "features": {"size": float(rng.normal()),
                         "colour": COLOURS[int(rng.choice(3, p=colour_shares))]},
        }))  # fmt: skip
    capture = tmp_path / "capture.jsonl"
    capture.write_text("\n".join(lines) + "\n")
    return manifest, capture


@pytest.mark.parametrize(("shares", "status"), [([0.6, 0.3, 0.1], 0), ([0.1, 0.3, 0.6], 1)])
def test_a_multiclass_models_categorical_traffic_is_judged(
    tmp_path: Path, shares: list[float], status: int
) -> None:
    manifest, capture = task_files(tmp_path, shares)
    code, text = run("--capture", capture, "--manifest", manifest, "--json")
    lines = {line["name"]: line for line in json.loads(text)["lines"]}
    assert code == status
    assert lines["prediction"]["verdict"] == "stable" and lines["size"]["verdict"] == "stable"
    assert lines["colour"]["verdict"] == ("drift" if status else "stable")


def test_a_capture_of_another_task_than_the_reference_is_named(
    example: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _ = task_files(tmp_path, [0.6, 0.3, 0.1])
    # The churn example's records, judged against a multiclass reference.
    content = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**content, "model_name": "churn"}))
    status, _ = run("--capture", example["same"], "--manifest", manifest)
    assert status == EXIT_BAD_INPUT
    assert "line 1: a binary capture record, but the manifest's reference is of a multiclass " in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--alpha", "0.7"), r"alpha must be a number in \(0, 0.5\), got 0.7"),
        (("--min-requests", "0"), "min_requests must be a positive integer, got 0"),
    ],
)
def test_bad_rule_options_are_named(
    example: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, str],
    message: str,
) -> None:
    status, _ = run("--capture", example["same"], "--manifest", example["manifest"], *option)
    assert status == EXIT_BAD_INPUT
    assert re.search(message, capsys.readouterr().err)

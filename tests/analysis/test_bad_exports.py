"""python -m tools.drift and python -m tools.outcomes refuse a bad capture export with exit
status 2 and a bounded message naming the file and the line (issue 23, finding 6).

Before, a deeply nested line (RecursionError) or a corrupt gzip (zlib.error) crashed both
tools with a traceback and exit status 1, which is drift's "drift found"; a 5 MB field was
echoed whole on stderr; invalid UTF-8 was reported without its line.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from serving import capture_export
from tests.analysis import synthetic
from tools.drift import __main__ as drift
from tools.outcomes import __main__ as outcomes

ROOT = Path(__file__).resolve().parents[2]
# Room for the path of a pytest temporary file, the line number and an 80-character excerpt.
STDERR_MAX_CHARS = 600
OTHER_LINE = b'{"message": "an ordinary log line", "level": "INFO"}\n'


def capture_line(**fields: object) -> bytes:
    record = {
        "capture": 1,
        "format": "capture/1",
        "request_id": "r-1",
        "row": 0,
        "model_name": "churn",
        "model_version": "v1",
        "lambda_version": "1",
        "timestamp": "2026-12-07T00:00:00Z",
        "prediction": 1,
        "probability": 0.75,
        "features": None,
        **fields,
    }
    return json.dumps(record).encode() + b"\n"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def corrupt(data: bytes) -> bytes:
    """A gzip whose deflate stream is damaged in the middle."""
    packed = bytearray(gzipped(data))
    middle = len(packed) // 2
    packed[middle : middle + 16] = b"\xff" * 16
    return bytes(packed)


def bad_block(data: bytes) -> bytes:
    """A gzip whose first deflate block has the reserved type: zlib.error at once."""
    packed = gzipped(data)
    return packed[:10] + b"\xff" * 8 + packed[18:]


VALID = OTHER_LINE + capture_line() * 50
# name: (file name, bytes, the line the message names)
BAD_EXPORTS: dict[str, tuple[str, bytes, int]] = {
    "deep nesting": ("deep.jsonl", OTHER_LINE + b"[" * 100_000 + b"\n", 2),
    "deep nesting in an object": ("deep-object.jsonl", b'{"a": ' + b"[" * 100_000 + b"\n", 1),
    # Where gzip finds a truncation or damage depends on its buffering: some line, named.
    "truncated gzip": ("truncated.jsonl.gz", gzipped(VALID * 40)[:-200], 0),
    "corrupt gzip": ("corrupt.jsonl.gz", corrupt(VALID * 40), 0),
    "zlib error": ("bad-block.jsonl.gz", bad_block(VALID), 1),
    "not gzip at all": ("plain.jsonl.gz", VALID, 1),
    "5 MB field": ("big.jsonl", OTHER_LINE + capture_line(capture="x" * 5_000_000), 2),
    "5 MB field name": ("key.jsonl", capture_line(features={"x" * 5_000_000: 1.0}), 1),
    "5 MB list": ("list.jsonl", capture_line(probabilities=[2.0] * 1_000_000), 1),
    # Under the line bound: the message echoes 80 characters of the value.
    "500 KB field": ("half.jsonl", OTHER_LINE + capture_line(capture="x" * 500_000), 2),
    "500 KB field name": ("half-key.jsonl", capture_line(features={"x" * 500_000: True}), 1),
    "500 KB value": ("half-value.jsonl", capture_line(features={"a": [0] * 200_000}), 1),
    "100,000 probabilities": ("half-list.jsonl", capture_line(probabilities=[2.0] * 100_000), 1),
    "invalid UTF-8": ("latin1.jsonl", OTHER_LINE * 3 + b'{"message": "caf\xe9"}\n', 4),
    "invalid UTF-8 in a gzip": ("latin1.jsonl.gz", gzipped(OTHER_LINE + b"\xff\xfe\n"), 2),
    "not an object": ("list-line.jsonl", OTHER_LINE + b"[1, 2]\n", 2),
    "a 5 MB string as the line": ("string.jsonl", b'"' + b"y" * 5_000_000 + b'"\n', 1),
}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("bad-exports")
    paths = synthetic.write_drift_example(directory, rows=10)
    labels = directory / "outcomes.csv"
    labels.write_text("request_id,label\nr-1,1\n")
    paths["labels"] = labels
    for name, (file, data, _) in BAD_EXPORTS.items():
        path = directory / file
        path.write_bytes(data)
        paths[name] = path
    return paths


def run_drift(example: dict[str, Path], capture: Path) -> int:
    argv = ["--capture", str(capture), "--manifest", str(example["manifest"])]
    return drift.main(argv, out=io.StringIO())


def run_outcomes(example: dict[str, Path], capture: Path) -> int:
    argv = ["--capture", str(capture), "--labels", str(example["labels"])]
    return outcomes.main(argv, out=io.StringIO())


TOOLS: dict[str, Callable[[dict[str, Path], Path], int]] = {
    "drift": run_drift,
    "outcomes": run_outcomes,
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_a_bad_export_exits_2_naming_the_file_and_line_briefly(
    example: dict[str, Path], capsys: pytest.CaptureFixture[str], tool: str, case: str
) -> None:
    capture = example[case]
    status = TOOLS[tool](example, capture)
    err = capsys.readouterr().err
    assert status == 2, err[:2000]
    assert len(err) < STDERR_MAX_CHARS, err[:2000]
    assert str(capture) in err
    line = BAD_EXPORTS[case][2]
    if line:
        assert f"line {line}:" in err, err
    else:
        assert "line " in err, err


def test_a_valid_export_still_reads(example: dict[str, Path]) -> None:
    valid = example["manifest"].parent / "valid.jsonl.gz"
    valid.write_bytes(gzipped(VALID))
    from serving.capture_export import read

    export = read(valid)
    assert (len(export.rows), export.skipped_lines) == (50, 1)


@pytest.mark.parametrize("tool", ["drift", "outcomes"])
def test_the_command_exits_2_not_1_on_a_crashing_line(example: dict[str, Path], tool: str) -> None:
    # As an operator runs it: exit status 1 would read as "drift found".
    second = "--manifest" if tool == "drift" else "--labels"
    value = example["manifest"] if tool == "drift" else example["labels"]
    command = [sys.executable, "-m", f"tools.{tool}", "--capture", str(example["deep nesting"])]
    done = subprocess.run(
        [*command, second, str(value)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "line 2:" in done.stderr
    assert len(done.stderr) < STDERR_MAX_CHARS


@pytest.mark.parametrize("tool", ["drift", "outcomes"])
def test_a_bug_is_not_exit_status_1_either(
    example: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tool: str,
) -> None:
    module = drift if tool == "drift" else outcomes

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(module, "read" if tool == "drift" else "read_capture", broken)
    argv = ["--capture", str(example["same"])]
    argv += ["--manifest", str(example["manifest"])] if tool == "drift" else []
    argv += ["--labels", str(example["labels"])] if tool == "outcomes" else []
    with pytest.raises(SystemExit) as exited:
        module.cli(argv)
    assert exited.value.code == capture_export.EXIT_FAILED == 4
    assert "RuntimeError: a bug" in capsys.readouterr().err

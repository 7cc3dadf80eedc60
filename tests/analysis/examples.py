"""The worked examples of docs/capture-and-drift.md, made by running the tools on
synthetic data; a test keeps the doc equal to them.

    python -m tests.analysis.examples           # prints each example
    python -m tests.analysis.examples --write   # puts them into the doc after a change
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import joblib
import numpy as np

from serving.canary import evaluate
from tests.analysis import synthetic
from tools.drift.__main__ import main as drift_main
from tools.outcomes.__main__ import main as outcomes_main
from training.synthetic import generate

DOC = Path(__file__).resolve().parents[2] / "docs" / "capture-and-drift.md"
DRIFT = "python -m tools.drift --capture capture-drifted.jsonl --manifest manifest.json"
OUTCOMES = "python -m tools.outcomes --capture capture.jsonl --labels outcomes.csv"
CANARY = 'serving.canary.evaluate(stable, candidate, "binary")'


@contextlib.contextmanager
def _in(directory: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def _run(main: object, command: str, directory: Path) -> str:
    out = io.StringIO()
    with _in(directory):
        main(command.split()[3:], out=out)  # type: ignore[operator]
    return out.getvalue().rstrip("\n")


def canary_report() -> str:
    """v1 (stable) and v2 (candidate) answering requests drawn alike, 90/10 split, one row
    a request."""
    X, _ = generate(6000, seed=303)
    side = np.random.default_rng(304).random(len(X)) < 0.1
    v2 = joblib.load(synthetic.V1.parent / "v2" / "model.joblib")["pipeline"]
    stable = synthetic.predict(X[~side])
    candidate = v2.predict_proba(X[side])[:, 1]
    ids = [str(i) for i in range(len(X))]
    return evaluate(
        ([i for i, s in zip(ids, side, strict=True) if not s], stable.tolist()),
        ([i for i, s in zip(ids, side, strict=True) if s], candidate.tolist()),
        "binary",
    ).render()


@cache
def examples() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        synthetic.write_drift_example(directory)
        synthetic.write_outcomes_example(directory)
        return {
            DRIFT: _run(drift_main, DRIFT, directory),
            OUTCOMES: _run(outcomes_main, OUTCOMES, directory),
            CANARY: canary_report(),
        }


def write_doc() -> None:
    text = DOC.read_text()
    for command, output in examples().items():
        block = re.compile(
            r"(<!-- output of: " + re.escape(command) + r" -->\n```text\n)(.*?)(\n```)", re.S
        )
        text, found = block.subn(lambda m, new=output: m.group(1) + new + m.group(3), text)
        if found != 1:
            raise SystemExit(f"{DOC}: no single block for {command!r}")
    DOC.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_doc()
    else:
        for command, output in examples().items():
            print(f"<!-- output of: {command} -->\n```text\n{output}\n```\n")

"""`make demo`'s batch-scoring step: a generated churn file scored locally."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from tools.batch.local import run

ROWS = 2_000


def show_batch_scoring(model: str = "churn", version: str = "v2") -> dict[str, int | float]:
    """Write ROWS generated churn rows (one with a bad cell) to a CSV, score them through
    the real handler as the state machine would, print the first answers and the bad one."""
    from training.schema import FEATURE_NAMES
    from training.synthetic import generate

    print("== batch scoring, locally (python -m tools.batch run) ==")
    X, _ = generate(ROWS, 7)
    with tempfile.TemporaryDirectory() as directory:
        source, scored = Path(directory) / "customers.csv", Path(directory) / "scored.csv"
        with source.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(FEATURE_NAMES)
            for index, row in enumerate(X.tolist()):
                cells = [repr(v) if not float(v).is_integer() else str(int(v)) for v in row]
                if index == 3:
                    cells[0] = "unknown"  # a bad cell: its row gets an error, the rest go on
                writer.writerow(cells)
        done = run(model, version, source, scored, workers=2, rows_per_invocation=500,
                   progress=False)  # fmt: skip
        with scored.open(newline="") as handle:
            lines = handle.read().splitlines()
    rate = done["rows"] / max(done["seconds"], 1e-9)
    print(f"{model} {version}: {done['rows']:,} rows scored, {done['refused']} refused, "
          f"{rate:,.0f} rows/s with 2 worker processes")  # fmt: skip
    for line in lines[:5]:  # the header, three answers, the bad row's error
        print(f"  {line}")
    return done

"""python -m tools.outcomes --capture capture.jsonl --labels outcomes.csv

Joins ground-truth outcomes (CSV: request_id, optional row, label) with the predictions in
a capture export (JSON lines, plain or .gz) and reports, per model version, the labelled
count, ROC AUC, log loss, Brier score and calibration error with bootstrap intervals, then
each version against the baseline: the difference with its interval and a verdict.

Exit status: 0 report printed, 2 bad input (the message names the file, line and column).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from tools import stats
from tools.capture_export import CaptureFileError
from tools.capture_export import read as read_capture
from tools.outcomes.labels import LabelsError
from tools.outcomes.labels import read as read_labels
from tools.outcomes.report import compare, join

EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m tools.outcomes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--capture", type=Path, required=True, help="capture export (JSON lines)")
    top.add_argument("--labels", type=Path, required=True, help="outcomes CSV")
    top.add_argument("--baseline", help="version the others are compared with (the lowest)")
    top.add_argument(
        "--rounds",
        type=int,
        default=stats.DEFAULT_ROUNDS,
        help=f"bootstrap rounds ({stats.DEFAULT_ROUNDS})",
    )
    top.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    top.add_argument(
        "--confidence",
        type=float,
        default=stats.DEFAULT_CONFIDENCE,
        help=f"interval confidence ({stats.DEFAULT_CONFIDENCE})",
    )
    top.add_argument("--json", action="store_true", help="print the report as JSON")
    return top


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        outcomes = read_labels(args.labels)
        export = read_capture(args.capture)
        if not export.rows:
            raise ValueError(f"{args.capture}: no capture records")
        joined = join(export.rows, outcomes)
        if not joined.by_version:
            raise ValueError(
                f"no outcome in {args.labels} matched a captured prediction in {args.capture}: "
                "are request_id (and row) the ids the service answered with?"
            )
        report = compare(
            joined,
            baseline=args.baseline,
            rounds=args.rounds,
            seed=args.seed,
            confidence=args.confidence,
        )
    except (LabelsError, CaptureFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        out.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        out.write(report.render() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

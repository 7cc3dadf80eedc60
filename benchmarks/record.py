"""`make bench-record`: keep the last `make bench` run as the project's measured figures.

Copies build/bench/latest.{json,md} into benchmarks/results/ and puts the table between
the markers in docs/performance.md. `make bench` itself writes only under build/, so that
running it never dirties the tracked files; recording is this separate, explicit step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- recorded by make bench-record: begin -->"
END = "<!-- recorded by make bench-record: end -->"


class RecordError(ValueError):
    """The run cannot be recorded as it is."""


def record(run_dir: Path, results_dir: Path, doc: Path, *, allow_quick: bool = False) -> None:
    source = run_dir / "latest.json"
    if not source.is_file():
        raise RecordError(f"no run to record: {source} does not exist (run `make bench` first)")
    report = json.loads(source.read_text())
    if report.get("quick") and not allow_quick:
        raise RecordError(f"{source} is a --quick run: its figures are too few to keep")
    text = doc.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise RecordError(f"{doc} must hold the lines {BEGIN!r} and {END!r} once each, in order")
    results_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, results_dir / "latest.json")
    shutil.copyfile(run_dir / "latest.md", results_dir / "latest.md")
    before, rest = text.split(BEGIN)
    _, after = rest.split(END)
    doc.write_text(f"{before}{BEGIN}\n{report['markdown'].strip()}\n{END}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record")
    parser.add_argument("--run", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--allow-quick", action="store_true", help="record a --quick run too")
    args = parser.parse_args(argv)
    try:
        record(
            args.run,
            ROOT / "benchmarks" / "results",
            ROOT / "docs" / "performance.md",
            allow_quick=args.allow_quick,
        )
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("recorded into benchmarks/results/ and docs/performance.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

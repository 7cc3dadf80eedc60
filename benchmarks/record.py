"""`make bench-record`: keep the last `make bench` run as the project's measured figures.

Copies build/bench/latest.{json,md} into benchmarks/results/, puts the table between the
bench markers in docs/performance.md and the cost model priced from that run (benchmarks/
pricing.py) between the cost markers. `make bench` itself writes only under build/, so that
running it never dirties the tracked files; recording is this separate, explicit step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from benchmarks import pricing
from stacks.config import committed_context

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- recorded by make bench-record: begin -->"
END = "<!-- recorded by make bench-record: end -->"
COST_BEGIN = "<!-- cost model recorded by make bench-record: begin -->"
COST_END = "<!-- cost model recorded by make bench-record: end -->"


class RecordError(ValueError):
    """The run cannot be recorded as it is."""


def replace_block(text: str, begin: str, end: str, content: str, *, where: Path) -> str:
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise RecordError(f"{where} must hold the lines {begin!r} and {end!r} once each, in order")
    before, rest = text.split(begin)
    _, after = rest.split(end)
    return f"{before}{begin}\n{content.strip()}\n{end}{after}"


def record(run_dir: Path, results_dir: Path, doc: Path, *, allow_quick: bool = False) -> None:
    source = run_dir / "latest.json"
    if not source.is_file():
        raise RecordError(f"no run to record: {source} does not exist (run `make bench` first)")
    report = json.loads(source.read_text())
    if report.get("quick") and not allow_quick:
        raise RecordError(f"{source} is a --quick run: its figures are too few to keep")
    text = replace_block(doc.read_text(), BEGIN, END, report["markdown"], where=doc)
    recorded = results_dir / "latest.json"
    if COST_BEGIN in text or COST_END in text:
        where = f"`make bench` of {report['machine']['date']} (benchmarks/results/latest.json)"
        try:
            measured = {
                runtime: pricing.measured_from(report, runtime, where)
                for runtime in ("compiled", "sklearn")
            }
        except pricing.PricingError as exc:
            raise RecordError(str(exc)) from None
        environments = committed_context()["environments"]
        costs = pricing.report(sorted(environments), measured)
        text = replace_block(text, COST_BEGIN, COST_END, costs, where=doc)
    results_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, recorded)
    shutil.copyfile(run_dir / "latest.md", results_dir / "latest.md")
    doc.write_text(text)


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

"""``python -m tools.rollout compare``'s verdict: the canary evaluator's rule on the live
capture records of the two sides (``live``), or on a capture export (``export``).

With ``--export FILE``, the export is the one ``tools.drift`` and ``tools.outcomes`` read
(``serving.capture_export``). Its rows are split by model version into the stable and the
candidate side, grouped by request, and judged by ``serving.canary.evaluate``, the function
the deployed evaluator (lambda_src/monitors/canary.py) calls: the same export gets the
same verdict from both.

Exit status of ``--export``: 0 promote, 1 roll back, 3 hold (a page, or too few
requests), 2 refused (an unreadable export, an unknown or ambiguous version).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serving import canary
from serving.capture_export import CapturedRow, CaptureFileError, read, version_key
from tools.rollout.live import Comparison, Live, LiveUnavailableError, phrase

EXIT = {"promote": 0, "roll back": 1, "hold": 3}
EXIT_REFUSED = 2


def answer(row: CapturedRow) -> Any:
    """What the row predicted, as the evaluator reads it: binary the probability, else the
    class label or value."""
    return row.probability if row.task == "binary" else row.prediction


def sides(rows: list[CapturedRow], stable: str | None, candidate: str | None) -> tuple[str, str]:
    """(stable, candidate) model versions: as given, or the older and newer of exactly two."""
    versions = sorted({row.model_version for row in rows}, key=version_key)
    for name, given in (("--stable-version", stable), ("--candidate-version", candidate)):
        if given is not None and given not in versions:
            raise ValueError(f"{name} {given!r} is not in the export (it has {versions})")
    if stable is None or candidate is None:
        if len(versions) != 2:
            raise ValueError(
                f"the export has model versions {versions}: name the two sides with "
                "--stable-version and --candidate-version"
            )
        stable = stable or next(v for v in versions if v != candidate)
        candidate = candidate or next(v for v in versions if v != stable)
    if stable == candidate:
        raise ValueError(f"the stable and candidate version are both {stable!r}")
    return stable, candidate


def judge(
    path: Path, stable: str | None, candidate: str | None, thresholds: canary.Thresholds
) -> tuple[canary.CanaryReport, str, str]:
    export = read(path)
    stable, candidate = sides(export.rows, stable, candidate)
    split = {
        version: [row for row in export.rows if row.model_version == version]
        for version in (stable, candidate)
    }
    tasks = {row.task for rows in split.values() for row in rows}
    if len(tasks) != 1:
        raise ValueError(f"the two versions' rows are of tasks {sorted(tasks)}: not comparable")
    stable_rows, candidate_rows = (
        ([r.request_id for r in rows], [answer(r) for r in rows]) for rows in split.values()
    )
    report = canary.evaluate(stable_rows, candidate_rows, tasks.pop(), thresholds)
    return report, stable, candidate


def export(
    path: Path, stable: str | None, candidate: str | None, thresholds: canary.Thresholds
) -> int:
    try:
        report, stable, candidate = judge(path, stable, candidate, thresholds)
    except (CaptureFileError, ValueError) as error:
        print(f"refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"compare {path}: stable {stable}, candidate {candidate} (capture export)")
    for line in report.render().splitlines():
        print(f"  {line}")
    return EXIT[report.verdict]


def live(
    client: Live,
    function: str,
    results: Sequence[Comparison],
    start: dt.datetime,
    end: dt.datetime,
    thresholds: canary.Thresholds | None = None,
    task: str = "binary",
) -> None:
    """The canary evaluator's rule (serving.canary) on each side's capture records, their
    rows grouped by request."""
    stable, candidate = results
    try:
        group = client.log_group(function)
        samples = [client.captured(group, r.side.lambda_version, start, end)
                   for r in (stable, candidate)]  # fmt: skip
    except LiveUnavailableError as error:
        print(f"prediction analysis {phrase(error)}")
        return
    print(f"predictions (Logs Insights on {group}, the capture records of each version):")
    try:
        report = canary.evaluate(
            (samples[0].request_ids, samples[0].predictions),
            (samples[1].request_ids, samples[1].predictions),
            samples[0].task or samples[1].task or task,
            thresholds,
        )
    except ValueError as error:
        print(f"  prediction analysis refused: {error}")
        return
    for line in report.render().splitlines():
        print(f"  {line}")
    for result, sample in zip((stable, candidate), samples, strict=True):
        if sample.truncated:
            print(
                f"  note: the {result.side.label} side has more capture records in the window "
                f"than the {len(sample.predictions)} read; the analysis uses the newest ones"
            )

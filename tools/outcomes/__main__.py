"""python -m tools.outcomes --capture capture.jsonl --labels outcomes.csv
python -m tools.outcomes --env prod --labels outcomes.csv [--days 30]

Joins ground-truth outcomes (CSV: request_id, optional row, label) with the predictions in
a capture export (JSON lines, plain or .gz) and reports, per model version, the labelled
count, ROC AUC, log loss, Brier score and calibration error with bootstrap intervals (a
multiclass model: the accuracy of the class answered; a regression model: RMSE and MAE),
then each version against the baseline: the difference with its interval and a verdict.
With --env, the captures of the last --days come from the environment's capture bucket
(AWS credentials needed; the bucket is the model-store stack's CaptureBucketName output).

Exit status: 0 report printed, 2 bad input (the message names the file, line and column,
with at most 80 characters of the bad value), 4 the tool failed (a bug). Never 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from serving import bootstrap
from serving.capture_export import CaptureFileError, run_command
from serving.capture_export import read as read_capture
from tools.outcomes.labels import LabelsError
from tools.outcomes.labels import read as read_labels
from tools.outcomes.report import compare, join, task_of
from tools.stack_outputs import clients, stack_outputs

EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m tools.outcomes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = top.add_mutually_exclusive_group(required=True)
    source.add_argument("--capture", type=Path, help="capture export (JSON lines)")
    source.add_argument("--env", help="an environment in cdk.json: read its capture bucket")
    top.add_argument(
        "--model",
        metavar="NAME",
        help="with --env: which of the environment's models (default: its model_name)",
    )
    top.add_argument("--days", type=int, default=30, help="with --env: dates to read (30)")
    top.add_argument("--region", help="with --env: the AWS region (default: the credentials')")
    top.add_argument("--labels", type=Path, required=True, help="outcomes CSV")
    top.add_argument("--baseline", help="version the others are compared with (the lowest)")
    top.add_argument(
        "--rounds",
        type=int,
        default=bootstrap.DEFAULT_ROUNDS,
        help=f"bootstrap rounds ({bootstrap.DEFAULT_ROUNDS})",
    )
    top.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    top.add_argument(
        "--confidence",
        type=float,
        default=bootstrap.DEFAULT_CONFIDENCE,
        help=f"interval confidence ({bootstrap.DEFAULT_CONFIDENCE})",
    )
    top.add_argument("--json", action="store_true", help="print the report as JSON")
    return top


def main(
    argv: list[str] | None = None,
    out: TextIO | None = None,
    clients: Callable[[str | None], tuple[Any, Any]] | None = None,
) -> int:
    """``clients(region)`` gives (cloudformation, s3) for --env; boto3's by default."""
    out = out or sys.stdout
    args = parser().parse_args(argv)
    if args.env is not None:
        with tempfile.TemporaryDirectory(prefix="captures-") as scratch:
            args.capture = Path(scratch) / f"{args.env}-captures.jsonl"
            try:
                _download(args, clients or _boto3_clients)
            except (DownloadError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            return _report(args, out)
    return _report(args, out)


class DownloadError(Exception):
    pass


def _boto3_clients(region: str | None) -> tuple[Any, Any]:
    cloudformation, s3 = clients(region, "cloudformation", "s3")
    return cloudformation, s3


def _download(args: argparse.Namespace, clients: Callable[[str | None], tuple[Any, Any]]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from stacks.config import load_committed
    from stacks.settings import STACK_PREFIX
    from tools.capture_download import download

    if args.days < 1:
        raise ValueError(f"--days {args.days} is not allowed: at least 1")
    model_name = load_committed(args.env).model_named(args.model).model.model_name
    stack = f"{STACK_PREFIX}-{args.env}-model-store"
    try:
        cloudformation, s3 = clients(args.region)
        outputs = stack_outputs(cloudformation, stack)
        if "CaptureBucketName" not in outputs:
            raise DownloadError(f"stack {stack} has no CaptureBucketName output: deploy it")
        since = dt.date.today() - dt.timedelta(days=args.days - 1)
        objects, size = download(s3, outputs["CaptureBucketName"], model_name, since,
                                 args.capture)  # fmt: skip
    except (BotoCoreError, ClientError) as exc:
        raise DownloadError(f"reading the captures of {stack} failed: {exc}") from None
    print(f"read {objects} capture objects ({size:,} bytes) of {model_name} since {since}",
          file=sys.stderr)  # fmt: skip


def _report(args: argparse.Namespace, out: TextIO) -> int:
    try:
        export = read_capture(args.capture)
        if not export.rows:
            raise ValueError(f"{args.capture}: no capture records")
        # The labels are read as the captured model's task labels them.
        outcomes = read_labels(args.labels, task=task_of(export.rows))
        try:
            joined = join(export.rows, outcomes)
        except ValueError as exc:
            raise ValueError(f"{args.capture}: {exc}") from None
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


def cli(argv: list[str] | None = None) -> None:
    """The command: ``main``; a bug exits EXIT_FAILED (see serving.capture_export)."""
    run_command(main, argv)


if __name__ == "__main__":
    cli()

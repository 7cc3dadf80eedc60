"""python -m tools.outcomes --capture capture.jsonl --labels outcomes.csv
python -m tools.outcomes --env prod --labels outcomes.csv [--days 30]

Joins ground-truth outcomes (CSV: request_id, optional row, label) with the predictions in
a capture export (JSON lines, plain or .gz) and reports, per model version, the labelled
count, ROC AUC, log loss, Brier score and calibration error with bootstrap intervals (a
multiclass model: the accuracy of the class answered; a regression model: RMSE and MAE),
then each version against the baseline: the difference with its interval and a verdict.
Each pair is compared only on the rows captured while both versions served (the report
names the window and what it left out); the bootstrap resamples requests, not rows; the
difference intervals are Bonferroni-corrected over every verdict the report gives, so any
false "better" verdict has at most 1 - --confidence chance (docs/capture-and-drift.md).
With --env, the captures of the last --days come from the environment's capture bucket
(AWS credentials needed; the bucket is the model-store stack's CaptureBucketName output).

Exit status: 0 report printed, 2 bad input (the message names the file, line and column,
with at most 80 characters of the bad value), 4 the tool failed (a bug). Never 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from serving import bootstrap
from serving.capture_export import CaptureFileError
from serving.capture_export import read as read_capture
from serving.labels import LabelsError
from serving.labels import read as read_labels
from serving.outcomes import compare, join, task_of
from tools import capture_cli
from tools.stack_outputs import stack_outputs

EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    top = capture_cli.capture_parser(
        "python -m tools.outcomes", __doc__, "an environment in cdk.json: read its capture bucket"
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
    return capture_cli.with_json_option(top, "the report")


def _from_env(args: argparse.Namespace, out: TextIO, clients: capture_cli.Clients) -> int:
    """The report of the captures of the environment's last --days, downloaded first."""
    with tempfile.TemporaryDirectory(prefix="captures-") as scratch:
        args.capture = Path(scratch) / f"{args.env}-captures.jsonl"
        try:
            _download(args, clients)
        except (DownloadError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _report(args, out)


class DownloadError(Exception):
    pass


def _download(args: argparse.Namespace, clients: capture_cli.Clients) -> None:
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
    """The report of the capture export at --capture joined with the --labels outcomes."""
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
    capture_cli.write_report(out, report, as_json=args.json)
    return 0


main, cli = capture_cli.command(
    parser, from_file=_report, from_env=_from_env, services=("cloudformation", "s3")
)


if __name__ == "__main__":
    cli()

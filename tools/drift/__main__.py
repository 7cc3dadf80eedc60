"""python -m tools.drift --capture capture.jsonl --manifest model_artifacts/churn/v1/manifest.json
python -m tools.drift --env prod [--minutes 60]

Prints the population stability index of each feature and of the prediction (binary:
the probability; multiclass: the predicted class; regression: the value) against the
reference distributions that training recorded in the model version's manifest, with a
verdict per line: of a capture export (JSON lines, plain or .gz), or,
with --env, of the deployed model version's capture records of the last minutes, read
from the function's log group with Logs Insights (as the scheduled monitor does).
The rule is the monitor's (serving.drift): each request weighs 1, a line drifts when its
PSI is above --alarm and the reference itself reaches that PSI at this many requests with
probability at most --alpha (features: Holm-adjusted over the features).

Exit status: 0 no drift, 1 drift in at least one line, 3 too few requests to judge,
2 bad input (the message names the file, line and field, with at most 80 characters of
the bad value), 4 the tool failed (a bug). Nothing else exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from serving import histograms
from serving.capture_export import CaptureFileError, excerpt, read
from serving.distributions import read_reference
from serving.drift import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_REQUESTS,
    DriftReport,
    DriftThresholds,
    drift_report,
)
from serving.insights import Window, fetch
from tools import capture_cli
from tools.stack_outputs import stack_outputs

EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_TOO_FEW = 3
# How long --env waits for the Logs Insights query.
QUERY_SECONDS = 120


class InputError(ValueError):
    pass


def parser() -> argparse.ArgumentParser:
    top = capture_cli.capture_parser(
        "python -m tools.drift",
        __doc__,
        "an environment in cdk.json: read its live capture records",
    )
    top.add_argument(
        "--manifest",
        type=Path,
        help="the model version's manifest (with --env: the deployed version's, by default)",
    )
    top.add_argument(
        "--minutes", type=int, default=60, help="with --env: the window ending now (60)"
    )
    top.add_argument("--region", help="with --env: the AWS region (default: the credentials')")
    top.add_argument(
        "--watch", type=float, default=histograms.PSI_WATCH, help="PSI from which to watch (0.1)"
    )
    top.add_argument(
        "--alarm",
        type=float,
        default=histograms.PSI_ALARM,
        help="PSI above which it is drift (0.25)",
    )
    top.add_argument(
        "--min-requests",
        type=int,
        default=DEFAULT_MIN_REQUESTS,
        help=f"distinct requests needed for a verdict ({DEFAULT_MIN_REQUESTS})",
    )
    top.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"false-alarm rate per run over all features ({DEFAULT_ALPHA:g})",
    )
    # Renamed: the minimum counts requests. Refused with what to write instead.
    top.add_argument("--min-rows", type=int, help=argparse.SUPPRESS)
    return capture_cli.with_json_option(top, "the table")


def _from_file(args: argparse.Namespace, out: TextIO) -> int:
    """--capture: the drift of a capture export's rows of the manifest's model version."""
    if args.manifest is None:
        print("error: --capture needs --manifest (the model version's manifest)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        thresholds = _thresholds(args)
        manifest = _manifest(args.manifest)
        reference = read_reference(manifest, where=str(args.manifest))
        model_name, model_version = manifest.get("model_name"), manifest.get("model_version")
        export = read(args.capture)
        rows = [
            row
            for row in export.rows
            if row.model_name == model_name and row.model_version == model_version
        ]
        if not rows:
            found = ", ".join(export.versions()) or "none"
            raise InputError(
                f"{args.capture}: no capture records of {model_name} {model_version} "
                f"(versions found: {found})"
            )
        other_task = next((row for row in rows if row.task != reference.task), None)
        if other_task is not None:
            raise InputError(
                f"{args.capture}: line {other_task.line}: a {other_task.task} capture record, "
                f"but the manifest's reference is of a {reference.task} model"
            )
        with_features = [row for row in rows if row.features is not None]
        # Features binned as numbers: a string there is a bad record, not a new category.
        numeric = [
            name
            for name, histogram in reference.features.items()
            if not any(isinstance(c, str) for c in histogram.categories)
        ]
        for row in with_features:
            assert row.features is not None
            for name in numeric:
                if isinstance(row.features.get(name), str):
                    raise InputError(
                        f"{args.capture}: line {row.line}: field 'features.{name}' must be a "
                        f"finite number, got {excerpt(row.features[name])}"
                    )
            missing = [name for name in reference.features if name not in row.features]
            if missing:
                raise InputError(
                    f"{args.capture}: line {row.line}: field 'features.{missing[0]}' is missing "
                    f"(the manifest's reference has it)"
                )
        report = drift_report(
            reference,
            [row.features for row in with_features if row.features is not None],
            # binary: the probability; multiclass: the class answered; regression: the value.
            [row.probability if row.task == "binary" else row.prediction for row in rows],
            thresholds,
            feature_requests=[row.request_id for row in with_features],
            prediction_requests=[row.request_id for row in rows],
        )
    except (InputError, CaptureFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    other = len(export.rows) - len(rows)
    omitted = len(rows) - len(with_features)
    return _verdict(
        out,
        report,
        args.json,
        f"drift of {model_name} {model_version} against its training reference\n"
        f"capture: {len(rows)} rows ({len({row.request_id for row in rows})} requests) of "
        f"{model_version} in {args.capture.name}"
        f" ({other} rows of other versions and {export.skipped_lines} other lines skipped"
        f"{f'; {omitted} rows without features' if omitted else ''})\n\n",
    )


def _verdict(out: TextIO, report: DriftReport, as_json: bool, heading: str) -> int:
    """Prints ``report`` (text: after ``heading``) and returns the exit status it calls for."""
    capture_cli.write_report(out, report, as_json=as_json, heading=heading)
    if not report.judged:
        return EXIT_TOO_FEW
    return EXIT_DRIFT if report.drifted else 0


def _live(args: argparse.Namespace, out: TextIO, clients: capture_cli.Clients) -> int:
    """--env: the drift of the deployed version's capture records of the last --minutes."""
    from botocore.exceptions import BotoCoreError, ClientError

    from stacks.config import load_committed
    from stacks.settings import ConfigError, stack_name_of

    try:
        config = load_committed(args.env).model_named(args.model)
        version = config.model.model_version
        manifest = _manifest(args.manifest or config.model.directory / "manifest.json")
        reference = read_reference(manifest, where=str(args.manifest or config.model.directory))
        thresholds = _thresholds(args)
        if args.minutes < 1:
            raise InputError(f"--minutes {args.minutes} is not allowed: at least 1")
    except (ConfigError, InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    stack = stack_name_of(config)
    try:
        cloudformation, logs = clients(args.region)
        outputs = stack_outputs(cloudformation, stack)
        if "LogGroupName" not in outputs:
            raise InputError(f"stack {stack} has no LogGroupName output: deploy this version")
        now = int(time.time())
        deadline = time.monotonic() + QUERY_SECONDS
        rows = fetch(
            logs,
            outputs["LogGroupName"],
            version,
            Window(start=now - args.minutes * 60, end=now),
            expired=lambda: time.monotonic() > deadline,
        )
    except (BotoCoreError, ClientError, InputError, RuntimeError, TimeoutError) as exc:
        print(f"error: reading the capture records of {stack} failed: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = drift_report(
        reference,
        rows.features,
        rows.predictions,
        thresholds,
        feature_requests=rows.request_ids,
        prediction_requests=rows.request_ids,
    )
    if rows.truncated and args.json:
        print(TRUNCATED, end="", file=sys.stderr)
    return _verdict(
        out,
        report,
        args.json,
        f"drift of {config.model.model_name} {version} ({args.env}) against its training "
        f"reference\ncapture: {len(rows.features)} rows ({rows.requests} requests) of the last "
        f"{args.minutes} minutes ({rows.skipped} unreadable records skipped)\n"
        f"{TRUNCATED if rows.truncated else ''}\n",
    )


TRUNCATED = "sample truncated: the window held more capture records than its queries read\n"


def _thresholds(args: argparse.Namespace) -> DriftThresholds:
    if args.min_rows is not None:
        raise InputError(
            f"--min-rows {args.min_rows} is not an option any more: the minimum counts "
            f"distinct requests, write --min-requests N (default {DEFAULT_MIN_REQUESTS})"
        )
    return DriftThresholds(args.watch, args.alarm, args.min_requests, args.alpha)


def _manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a manifest is a JSON object")
    return data


main, cli = capture_cli.command(
    parser, from_file=_from_file, from_env=_live, services=("cloudformation", "logs")
)


if __name__ == "__main__":
    cli()

"""What the two commands that write a version (training.train, training.package) share on
the command line: the options about the version written, and how a refusal ends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from training import tracked, versions


def add_version_options(parser: argparse.ArgumentParser, default_output: Path) -> None:
    parser.add_argument("--output", type=Path, default=default_output, help="artifact root")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing version (only one never deployed: Lambda pins its SHA-256)",
    )
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="skip the compiled-runtime artifact (only runtime 'sklearn' can serve it)",
    )
    parser.add_argument(
        "--accept-regression",
        metavar="REASON",
        help="write a model the quality gate finds worse than the previous version, and "
        "record REASON with the figures in the manifest",
    )


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.accept_regression is not None and not args.accept_regression.strip():
        parser.error('--accept-regression needs a reason, e.g. --accept-regression "new data"')
    return args


class VersionArguments(TypedDict):
    model_name: str
    version: str
    output: Path
    force: bool
    compiled: bool
    accept_regression: str | None
    log: Callable[[str], None]


def version_arguments(args: argparse.Namespace) -> VersionArguments:
    """The keyword arguments of ``train``/``package`` that ``--model``, ``--version`` and the
    options of ``add_version_options`` give, with logging to stderr."""
    return {
        "model_name": args.model,
        "version": args.version,
        "output": args.output,
        "force": args.force,
        "compiled": not args.no_compiled,
        "accept_regression": args.accept_regression,
        "log": log,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr)


def run(action: Callable[[], object]) -> int:
    """0 when ``action`` wrote the version; 2 with the reason on stderr when it was refused
    (every refusal is a ``ValueError`` naming the problem, an existing version, or another
    writer holding the model's lock)."""
    try:
        action()
    except (ValueError, versions.ArtifactExistsError, tracked.TrackedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

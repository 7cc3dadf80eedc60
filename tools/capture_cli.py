"""The command line that the commands reading captured predictions share (tools.drift,
tools.outcomes): where the captures come from (--capture FILE, or --env NAME with --model),
the ``main`` that reads them with AWS clients under --env, and printing a report as text or as
JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

from serving.capture_export import run_command
from tools.stack_outputs import clients

# ``clients(region)`` gives the two AWS clients a command reads with under --env.
Clients = Callable[[str | None], tuple[Any, Any]]

# What a command does once its arguments are parsed (with the clients under --env): its
# exit status.
FromFile = Callable[[argparse.Namespace, TextIO], int]
FromEnv = Callable[[argparse.Namespace, TextIO, Clients], int]


class Main(Protocol):
    def __call__(
        self,
        argv: list[str] | None = None,
        out: TextIO | None = None,
        clients: Clients | None = None,
    ) -> int: ...


class Cli(Protocol):
    def __call__(self, argv: list[str] | None = None) -> None: ...


class Report(Protocol):
    def to_json(self) -> dict[str, object]: ...

    def render(self) -> str: ...


def capture_parser(prog: str, description: str | None, env_help: str) -> argparse.ArgumentParser:
    """A parser with the required choice of --capture or --env (``env_help``), and --model."""
    top = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = top.add_mutually_exclusive_group(required=True)
    source.add_argument("--capture", type=Path, help="capture export (JSON lines)")
    source.add_argument("--env", help=env_help)
    top.add_argument(
        "--model",
        metavar="NAME",
        help="with --env: which of the environment's models (default: its model_name)",
    )
    return top


def command(
    parser: Callable[[], argparse.ArgumentParser],
    *,
    from_file: FromFile,
    from_env: FromEnv,
    services: tuple[str, str],
) -> tuple[Main, Cli]:
    """A command's ``main`` and its console entry ``cli``.

    ``main`` parses its arguments with ``parser()`` and runs ``from_env`` under --env (with
    the AWS clients of ``services``, boto3's unless a test passes its own), ``from_file``
    under --capture, and returns their exit status. ``cli`` exits with it; a bug exits
    EXIT_FAILED (see serving.capture_export).
    """

    def main(
        argv: list[str] | None = None, out: TextIO | None = None, clients: Clients | None = None
    ) -> int:
        args = parser().parse_args(argv)
        if args.env is not None:
            return from_env(args, out or sys.stdout, clients or _boto3_clients(services))
        return from_file(args, out or sys.stdout)

    def cli(argv: list[str] | None = None) -> None:
        run_command(main, argv)

    return main, cli


def _boto3_clients(services: tuple[str, str]) -> Clients:
    def make(region: str | None) -> tuple[Any, Any]:
        first, second = clients(region, *services)
        return first, second

    return make


def with_json_option(top: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    """``top`` with --json: print ``what`` as JSON (``write_report``'s ``as_json``)."""
    top.add_argument("--json", action="store_true", help=f"print {what} as JSON")
    return top


def write_report(out: TextIO, report: Report, *, as_json: bool, heading: str = "") -> None:
    """``report`` as indented JSON, or ``heading`` followed by its text rendering."""
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        out.write(heading + report.render() + "\n")

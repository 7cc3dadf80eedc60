"""Every command README.md and docs/*.md show is one the tool that runs it accepts.

Commands come from fenced ``bash``/``sh`` blocks (continuation lines and multi-line quotes
joined, comments dropped) and from inline code that starts with a command this project
documents. Each is checked by the real thing, offline: the rollout command's and the
project modules' own argparse parsers, ``make -n`` against the Makefile, the pinned CDK
CLI's ``--help`` (and the app's configuration parser for ``-c`` context), botocore's
service models for ``aws``, and the installed curl's option list. Anything else must at
least be valid shell words (shlex). A span with a ``<placeholder>`` is a pattern, not a
command, and is skipped; so is a bare ``...``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from stacks.config import load_config
from stacks.settings import REPO_ROOT, ConfigError
from tools.rollout.__main__ import parser as rollout_parser
from tools.rollout.plan import cdk_commands

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# Inline code is a command only when it starts like one the docs teach; other inline code
# (`cdk.json`, `--force`, `cdk diff` in a sentence) is a name, not something to run.
INLINE_COMMAND = re.compile(r"^(python -m |make |npx cdk |aws |curl |awscurl )")
PLACEHOLDER = re.compile(r"<[A-Za-z][\w .-]*>")
OPERATORS = {"&&", "||", ";", "|"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PROJECT_PACKAGES = ("tools", "training", "benchmarks")
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"


@dataclass(frozen=True)
class Command:
    where: str  # "docs/deploying.md:42"
    text: str


def _fenced_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of each fenced block."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^\s*```(\w*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        start = index + 1
        index = start
        while index < len(lines) and not re.match(r"^\s*```\s*$", lines[index]):
            index += 1
        yield opening.group(1).lower(), start + 1, lines[start:index]
        index += 1


def _shell_commands(first_line: int, lines: list[str]) -> Iterator[tuple[int, str]]:
    """Whole commands of a shell block: backslash continuations and open quotes joined."""
    pending: list[str] = []
    start = first_line
    for offset, raw in enumerate(lines):
        line = raw.strip()
        if not pending:
            if not line or line.startswith("#"):
                continue
            start = first_line + offset
        pending.append(line[:-1] if line.endswith("\\") else line)
        if line.endswith("\\"):
            continue
        joined = " ".join(pending)
        try:
            shlex.split(joined, comments=True)
        except ValueError:  # a quote that closes on a later line
            pending[-1] += "\n"
            continue
        pending = []
        yield start, joined
    assert not pending, f"line {start}: a command never ends: {' '.join(pending)!r}"


def _without_fences(text: str) -> str:
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.MULTILINE | re.DOTALL)


def commands_in(path: Path) -> list[Command]:
    text = path.read_text()
    name = path.relative_to(REPO_ROOT).as_posix()
    found: list[Command] = []
    for language, first_line, lines in _fenced_blocks(text):
        if language in SHELL_LANGUAGES:
            for line_number, command in _shell_commands(first_line, lines):
                found.append(Command(f"{name}:{line_number}", command))
    for span in re.findall(r"`([^`\n]+)`", _without_fences(text)):
        if INLINE_COMMAND.match(span):
            found.append(Command(f"{name} (inline)", span))
    return [c for c in found if not _is_pattern(c.text)]


def _is_pattern(text: str) -> bool:
    # Comments are not part of the command; "<env>" or a bare "..." in it makes a pattern.
    return any(PLACEHOLDER.search(w) or w == "..." for w in shlex.split(text, comments=True))


def python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in DOCUMENTS:
        for language, first_line, lines in _fenced_blocks(path.read_text()):
            if language == "python":
                where = f"{path.relative_to(REPO_ROOT).as_posix()}:{first_line}"
                blocks.append((where, "\n".join(lines)))
    return blocks


ALL_COMMANDS = sorted(
    {c.text: c for path in DOCUMENTS for c in commands_in(path)}.values(),
    key=lambda c: (c.where, c.text),
)


def _id(command: Command) -> str:
    text = command.text if len(command.text) <= 60 else command.text[:57] + "..."
    return f"{command.where} {text}"


# ---------------------------------------------------------------------------- checkers


class _ParsedError(Exception):
    """Raised right after a real parser accepted the arguments: nothing else runs."""


def _segments(words: list[str]) -> Iterator[list[str]]:
    segment: list[str] = []
    for word in [*words, ";"]:
        if word in OPERATORS:
            while segment and ENV_ASSIGNMENT.match(segment[0]):
                segment.pop(0)
            if segment:
                yield segment
            segment = []
        else:
            segment.append(word)


def _substitutions(text: str) -> Iterator[str]:
    """The commands inside $( ... ), which run too."""
    start = text.find("$(")
    while start != -1:
        depth, index = 1, start + 2
        while index < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            index += 1
        yield text[start + 2 : index - 1]
        start = text.find("$(", index)


def check_python_module(words: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, argv = words[2], words[3:]
    if module_name == "tools.rollout":
        if argv:  # bare, it names the tool in a sentence
            rollout_parser().parse_args(argv)
        return
    spec = importlib.util.find_spec(module_name)
    assert spec is not None, f"no module {module_name}"
    if not module_name.startswith(PROJECT_PACKAGES):
        return  # another tool's module (compileall, pytest): that it exists is what we know
    if spec.submodule_search_locations is not None:
        module_name += ".__main__"
    module = importlib.import_module(module_name)
    main: Callable[..., Any] = module.main
    if not inspect.signature(main).parameters:
        assert not argv, f"python -m {words[2]} takes no arguments, the docs give {argv}"
        return
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        raise _ParsedError

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(_ParsedError):
        main(argv)


def _run_tool(command: list[str], *, timeout: int) -> subprocess.CompletedProcess[str]:
    """``command`` from the repository root with the project's tools first on PATH."""
    env = {
        **os.environ,
        "PATH": f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    }
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@cache
def make_dry_run(arguments: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return _run_tool(["make", "-n", *arguments], timeout=60)


def check_make(words: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    result = make_dry_run(tuple(words[1:]))
    assert result.returncode == 0, result.stderr
    # What the target would run with these variables: the project's own modules must
    # accept their arguments too (e.g. SERVE_ARGS reaching tools.serve).
    # A recipe line continued with a backslash is one command.
    for line in result.stdout.replace("\\\n", " ").splitlines():
        words_run = shlex.split(line, comments=True)
        if (
            len(words_run) >= 3
            and words_run[0].endswith("python")
            and words_run[1] == "-m"
            and words_run[2].startswith(PROJECT_PACKAGES)
        ):
            check_python_module(["python", *words_run[1:]], monkeypatch)


def _cdk_help(arguments: list[str]) -> str:
    result = _run_tool([str(CDK), *arguments, "--help"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclass(frozen=True)
class CdkCli:
    subcommands: frozenset[str]
    options: dict[str, frozenset[str]]  # subcommand -> every option spelling it accepts


def _options(help_text: str) -> frozenset[str]:
    # yargs lists each option at two spaces' indent ("  --context, -c   ..."); deeper
    # lines are wrapped descriptions.
    names: set[str] = set()
    for match in re.finditer(r"^  (-{1,2}[\w-]+(?:, -{1,2}[\w-]+)*)", help_text, re.MULTILINE):
        names.update(match.group(1).split(", "))
    return frozenset(names)


@pytest.fixture(scope="session")
def cdk_cli() -> CdkCli:
    """The pinned CLI's commands and options: each --help runs once per session."""
    top = _cdk_help([])
    subcommands = set(re.findall(r"^  cdk ([\w-]+)", top, re.MULTILINE))
    for aliases in re.findall(r"\[aliases: ([^\]]+)\]", top):
        subcommands.update(a.strip() for a in aliases.split(","))
    used = sorted(
        {
            shlex.split(c.text)[2]
            for c in ALL_COMMANDS
            if c.text.startswith("npx cdk ") and len(shlex.split(c.text)) > 2
        }
        & subcommands
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        helps = dict(zip(used, pool.map(lambda s: _cdk_help([s]), used), strict=True))
    return CdkCli(frozenset(subcommands), {s: _options(h) for s, h in helps.items()})


def _cdk_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def check_cdk(words: list[str], cli: CdkCli) -> None:
    if len(words) == 2:
        return  # `npx cdk` alone prints its help
    subcommand, rest = words[2], words[3:]
    assert subcommand in cli.subcommands, f"the pinned CLI has no `cdk {subcommand}`"
    accepted = cli.options[subcommand]
    context: dict[str, str] = {}
    for index, word in enumerate(rest):
        if not word.startswith("-"):
            continue
        name = word.split("=", 1)[0]
        if name.startswith("--no-") and f"--{name[5:]}" in accepted:
            continue
        assert name in accepted, (
            f"`cdk {subcommand}` of the pinned CLI has no option {name} "
            f"(it would warn 'Unknown option(s)' and ignore it)"
        )
        if name in ("-c", "--context"):
            key, _, value = rest[index + 1].partition("=")
            context[key] = value
    if context:
        # The context is the app's interface: the configuration parser must take it.
        try:
            load_config({**_cdk_context(), **context})
        except ConfigError as exc:
            pytest.fail(f"the app refuses the context {context}: {exc}")


# The AWS CLI's own commands, which are not operations of a service model.
AWS_CLI_CUSTOMIZATIONS = {
    ("configure", "get"),
    ("configure", "export-credentials"),
    ("configure", "sso"),
    ("sso", "login"),
    ("logs", "tail"),
}
# Options every `aws` operation accepts (the CLI's global options and input helpers).
AWS_GLOBAL_OPTIONS = {
    "--query", "--output", "--region", "--profile", "--endpoint-url", "--debug",
    "--no-paginate", "--no-verify-ssl", "--no-sign-request", "--no-cli-pager", "--color",
    "--ca-bundle", "--cli-read-timeout", "--cli-connect-timeout", "--cli-binary-format",
    "--cli-input-json", "--cli-input-yaml", "--generate-cli-skeleton",
}  # fmt: skip
PAGINATION_OPTIONS = {"--max-items", "--starting-token", "--page-size"}


@cache
def _aws_session() -> botocore.session.Session:
    return botocore.session.get_session()


def check_aws(words: list[str]) -> None:
    service, operation = words[1], words[2]
    if (service, operation) in AWS_CLI_CUSTOMIZATIONS:
        return
    session = _aws_session()
    assert service in session.get_available_services(), f"no AWS service {service!r}"
    model = session.get_service_model(service)
    by_cli_name = {xform_name(name, "-"): name for name in model.operation_names}
    assert operation in by_cli_name, f"`aws {service}` has no operation {operation!r}"
    name = by_cli_name[operation]
    members = model.operation_model(name).input_shape.members
    accepted = {f"--{xform_name(member, '-')}" for member in members} | AWS_GLOBAL_OPTIONS
    try:
        if session.get_paginator_model(service).get_paginator(name):
            accepted |= PAGINATION_OPTIONS
    except ValueError:
        pass  # not a paginated operation
    for word in words[3:]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            plain = option.replace("--no-", "--", 1)
            assert option in accepted or plain in accepted, (
                f"`aws {service} {operation}` has no option {option}"
            )


@cache
def _curl_options() -> frozenset[str] | None:
    if shutil.which("curl") is None:
        return None
    help_text = subprocess.run(
        ["curl", "--help", "all"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(re.findall(r"(?<![\w-])(--[\w-]+|-\w)\b", help_text))


def check_curl(words: list[str]) -> None:
    accepted = _curl_options()
    if accepted is None:
        return  # no curl here: shell syntax was checked
    for word in words[1:]:
        if word.startswith("--"):
            assert word in accepted, f"curl has no option {word}"
        elif re.fullmatch(r"-[A-Za-z]+", word):
            for letter in word[1:]:
                assert f"-{letter}" in accepted, f"curl has no option -{letter}"


def check_command(text: str, monkeypatch: pytest.MonkeyPatch, cli: Callable[[], CdkCli]) -> None:
    words = shlex.split(text, comments=True)
    for segment in _segments(words):
        if segment[:2] == ["python", "-m"]:
            check_python_module(segment, monkeypatch)
        elif segment[0] == "make":
            check_make(segment, monkeypatch)
        elif segment[:2] == ["npx", "cdk"]:
            check_cdk(segment, cli())
        elif segment[0] == "aws" and len(segment) >= 3:
            check_aws(segment)
        elif segment[0] == "curl":
            check_curl(segment)
    for inner in _substitutions(text):
        check_command(inner, monkeypatch, cli)


# ---------------------------------------------------------------------------- tests


def test_the_docs_show_rollout_commands() -> None:
    rollout = [c for c in ALL_COMMANDS if c.text.startswith("python -m tools.rollout ")]
    assert len(rollout) >= 8


def test_the_docs_cover_every_kind_of_command() -> None:
    starts = {c.text.split()[0] for c in ALL_COMMANDS}
    assert {"python", "make", "npx", "aws", "curl"} <= starts


def test_extraction_joins_continuations_and_open_quotes() -> None:
    lines = ["# a comment", "curl -s x \\", "  -d '{", '  "a": 1}\'', "", "make test  # why"]
    found = [(line, shlex.split(text, comments=True)) for line, text in _shell_commands(10, lines)]
    assert found == [(11, ["curl", "-s", "x", "-d", '{\n "a": 1}']), (15, ["make", "test"])]


REFUSED = [
    # the pinned CLI's diff has no --all: it warns and ignores it
    "npx cdk diff --all -c env=prod",
    "npx cdk deploy --all -c env=staging",
    "npx cdk deploy --all -c env=prod -c canary_weight=0.2",
    "npx cdk deplyo --all",
    "make no-such-target",
    'make serve SERVE_ARGS="--runtime tensorflow"',
    "python -m tools.rollout start --env prod --weight 0.1",
    "python -m training.train --versoin v3",
    "python -m training.reference --force",
    "python -m no_such_module",
    "aws lambda invokee --function-name f out.json",
    "aws lambda invoke --function-nam f out.json",
    "aws lambdas invoke --function-name f out.json",
    "curl --aws-sigv5 aws:amz:eu-west-1:lambda http://127.0.0.1/",
    'export URL="$(aws cloudformation describe-stacks --stack-nme s)"',
]


@pytest.mark.parametrize("text", REFUSED)
def test_a_wrong_command_is_refused(
    text: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    with pytest.raises((AssertionError, SystemExit, pytest.fail.Exception)):
        check_command(text, monkeypatch, lambda: request.getfixturevalue("cdk_cli"))


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=_id)
def test_documented_command_is_accepted(
    command: Command,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    try:
        check_command(command.text, monkeypatch, lambda: request.getfixturevalue("cdk_cli"))
    except SystemExit:
        pytest.fail(
            f"{command.where} shows `{command.text}`, which the parser refuses: "
            f"{capsys.readouterr().err}"
        )


@pytest.mark.parametrize("where, source", python_blocks(), ids=[w for w, _ in python_blocks()])
def test_documented_python_compiles_and_imports(where: str, source: str) -> None:
    tree = ast.parse(source, filename=where)
    compile(tree, where, "exec")
    for node in ast.walk(tree):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module]
            if isinstance(node, ast.ImportFrom) and node.module
            else []
        )
        for name in names:
            assert importlib.util.find_spec(name) is not None, f"{where}: no module {name}"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_rollout_command_prints_commands_the_cli_accepts(
    environment: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    for text in cdk_commands(REPO_ROOT / "cdk.json", environment):
        check_command(text, monkeypatch, lambda: request.getfixturevalue("cdk_cli"))

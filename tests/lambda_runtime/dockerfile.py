"""Read a Dockerfile into the steps a build runs: ARG, COPY, RUN, CMD (and FROM).

Only what the project's Dockerfiles use, parsed the way Docker does: comments and line
continuations, ``${VAR}`` from ARG and the base image's ``LAMBDA_TASK_ROOT``, COPY of
files and directories (a directory's contents), CMD in exec (JSON) form. Anything else
is refused by name, so a Dockerfile that grows an instruction fails this suite loudly
instead of being built differently from the image.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_KNOWN = frozenset({"FROM", "ARG", "COPY", "RUN", "CMD"})


@dataclass(frozen=True)
class Step:
    instruction: str  # COPY or RUN
    text: str  # the arguments, variables not yet substituted (RUN's shell expands them)


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    base_image: str
    args: dict[str, str]  # ARG defaults
    steps: tuple[Step, ...]
    cmd: tuple[str, ...]


def parse(path: Path) -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment inside a continued RUN is skipped too, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending)
    base = ""
    args: dict[str, str] = {}
    steps: list[Step] = []
    cmd: tuple[str, ...] = ()
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction not in _KNOWN:
            raise ValueError(f"{path}: {instruction} is not understood by tests/lambda_runtime")
        if instruction == "FROM":
            base = rest
        elif instruction == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "CMD":
            value = json.loads(rest)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: CMD {rest} is not the exec form (a JSON list)")
            cmd = tuple(value)
        else:
            steps.append(Step(instruction, rest))
    if not cmd:
        raise ValueError(f"{path}: no CMD: Lambda would not know the handler")
    return Dockerfile(path, base, args, tuple(steps), cmd)


def substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"${{{name}}} is not defined (ARG or the base image's ENV)")
        return variables[name]

    return _VARIABLE.sub(value, text)


def copy_sources(step: Step, variables: dict[str, str]) -> tuple[list[str], str]:
    """(sources relative to the build context, destination) of a COPY step."""
    words = substitute(step.text, variables).split()
    if any(word.startswith("--") for word in words):
        raise ValueError(f"COPY {step.text}: options are not understood by tests/lambda_runtime")
    if len(words) < 2:
        raise ValueError(f"COPY {step.text}: needs a source and a destination")
    return words[:-1], words[-1]

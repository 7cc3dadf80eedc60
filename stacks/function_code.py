"""The code each deployed function ships, assembled from ``lambda_src/`` by one rule.

Every deployed function lives in ``lambda_src/``: its own package (``inference``,
``monitors``, ``reconciler``, ``traffic_gate``) and, for an image, its build files in
``lambda_src/images/<function>/`` (Dockerfile, pinned requirements). What ships is

* the function's package, every ``.py`` file of it;
* every module of ``serving`` (the library) and of ``custom_resource`` that the function's
  code imports, followed transitively, and nothing else: the inference image carries the
  few library modules its handler imports (cold start reads no statistics code);
* one generated entry module per entry point (``index.py`` holding
  ``from traffic_gate.handler import handler``), so the handler setting of existing
  stacks (``index.handler``, the canary evaluator's ``canary.handler``) stays as it was.

An image's asset is ``Dockerfile`` and the requirements files at the top and the task
root under ``task/`` (the Dockerfile copies ``task/`` into ``LAMBDA_TASK_ROOT``); a zip
asset is the task root itself. Imports that are neither the standard library, the
project's nor a package the function is given (``provided``) are refused here, at synth:
a zip function imports no numpy, since Lambda's Python runtime has none.

Assets are written to ``build/function-code/<function>-<digest>/``, named by the digest
of their content: identical content is written once, so concurrent synths never see a
half-written tree, and the CDK asset hash (taken over the same files) changes exactly when
a shipped file does.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stacks.settings import REPO_ROOT

SOURCE_ROOT = REPO_ROOT / "lambda_src"
LIBRARY_ROOT = REPO_ROOT
# Importable by any deployed function, followed file by file.
SHARED_PACKAGES = ("serving", "custom_resource")
OUTPUT_ROOT = REPO_ROOT / "build" / "function-code"
# What Lambda's Python runtime provides beside the standard library.
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore")


class FunctionCodeError(ValueError):
    """A function's code cannot be assembled; the message names the file and the import."""


@dataclass(frozen=True)
class DeployedFunction:
    name: str
    package: str  # the function's own package under lambda_src/
    image: bool  # True: lambda_src/images/<name>/ holds its Dockerfile and requirements
    # Third-party packages the function may import (its requirements, or Lambda's runtime).
    provided: tuple[str, ...] = LAMBDA_RUNTIME_PACKAGES
    # Generated entry modules of a zip function: module name -> the module it re-exports
    # ``handler`` from.
    entry_points: Mapping[str, str] = field(default_factory=dict)


FUNCTIONS: dict[str, DeployedFunction] = {
    f.name: f
    for f in (
        DeployedFunction(
            "inference",
            "inference",
            image=True,
            provided=(
                "numpy",
                "orjson",
                "joblib",
                "sklearn",
                "skops",
                "pandas",
                *LAMBDA_RUNTIME_PACKAGES,
            ),
        ),
        DeployedFunction(
            "monitors",
            "monitors",
            image=True,
            provided=("numpy", *LAMBDA_RUNTIME_PACKAGES),
            entry_points={"index": "monitors.drift", "canary": "monitors.canary"},
        ),
        DeployedFunction(
            "reconciler", "reconciler", image=False, entry_points={"index": "reconciler.handler"}
        ),
        DeployedFunction(
            "traffic_gate",
            "traffic_gate",
            image=False,
            entry_points={"index": "traffic_gate.handler"},
        ),
    )
}


def shipped_files(function: DeployedFunction, source_root: Path = SOURCE_ROOT) -> dict[str, Path]:
    """Task-root path -> source file, for every Python file the function ships."""
    own = source_root / function.package
    if not (own / "__init__.py").is_file():
        raise FunctionCodeError(f"{own}: not a package (no __init__.py)")
    files = {
        str(path.relative_to(source_root)): path
        for path in sorted(own.rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    pending = list(files.values())
    while pending:
        path = pending.pop()
        for module in _imports(path, function, source_root):
            for relative, found in _module_files(module, source_root):
                if relative not in files:
                    files[relative] = found
                    pending.append(found)
    return dict(sorted(files.items()))


def stage(name: str, source_root: Path = SOURCE_ROOT, output_root: Path = OUTPUT_ROOT) -> Path:
    """The function's asset directory (see the module docstring), written if missing."""
    function = FUNCTIONS[name]
    contents: dict[str, bytes] = {}
    prefix = "task/" if function.image else ""
    for relative, path in shipped_files(function, source_root).items():
        contents[prefix + relative] = path.read_bytes()
    for module, target in function.entry_points.items():
        contents[f"{prefix}{module}.py"] = (
            f'"""Entry point ``{module}.handler`` of the {name} function: '
            f'``{target}.handler``."""\n\nfrom {target} import handler as handler\n'
        ).encode()
    if function.image:
        build = source_root / "images" / name
        for path in sorted(build.iterdir()):
            if path.is_file():
                contents[path.name] = path.read_bytes()
    digest = hashlib.sha256()
    for relative, data in sorted(contents.items()):
        digest.update(f"{relative}\0{len(data)}\0".encode() + data)
    final = output_root / f"{name}-{digest.hexdigest()[:16]}"
    if final.is_dir():
        return final
    output_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=output_root))
    try:
        for relative, data in contents.items():
            written = tmp / relative
            written.parent.mkdir(parents=True, exist_ok=True)
            written.write_bytes(data)
        os.chmod(tmp, 0o755)  # noqa: S103 - read by the CDK CLI and Docker, like the source tree
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _imports(path: Path, function: DeployedFunction, source_root: Path) -> list[str]:
    """The project modules ``path`` imports; refuses any other non-standard import."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = _package_of(path, source_root)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in (function.package, *SHARED_PACKAGES):
                found.append(name)
            elif top in FUNCTIONS or top in _PROJECT_TOPS:
                raise FunctionCodeError(
                    f"{path}: imports {name!r}, which the {function.name} function does not "
                    f"ship (a function imports its own package, {', '.join(SHARED_PACKAGES)})"
                )
            elif (
                top
                and top not in sys.stdlib_module_names
                and top not in function.provided
                and top != "__future__"
            ):
                raise FunctionCodeError(
                    f"{path}: imports {top!r}, which the {function.name} function is not given "
                    f"(allowed beyond the standard library: {', '.join(function.provided)})"
                )
    return found


# Project packages no deployed function may import.
_PROJECT_TOPS = frozenset({"stacks", "tools", "training", "benchmarks", "tests", "app"})


def _package_of(path: Path, source_root: Path) -> str:
    root = source_root if path.is_relative_to(source_root) else LIBRARY_ROOT
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


def _module_files(module: str, source_root: Path) -> list[tuple[str, Path]]:
    """(task-root path, file) of ``module`` and of every package above it that exists."""
    parts = module.split(".")
    root = LIBRARY_ROOT if parts[0] == "serving" else source_root
    found = []
    for depth in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:depth])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                found.append((str(candidate.relative_to(root)), candidate))
                break
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m stacks.function_code NAME``: assemble NAME's asset, print its directory
    (e.g. as the context of ``docker build``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in FUNCTIONS:
        print(f"usage: python -m stacks.function_code {{{','.join(FUNCTIONS)}}}", file=sys.stderr)
        return 2
    print(stage(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build task roots the way the Dockerfiles and the zip assets do, without Docker.

Each tree is cached under ``build/lambda_runtime/<name>-<hash>/``, the hash taken over
every input (the Dockerfile, the build args, each file it copies, the pins, the Python
version), so a rerun reuses it and any change rebuilds it; an older tree of the same name
is removed. A tree is finished when its ``.complete`` marker exists; then it is made
read-only (mode a-w; the files belong to whoever built them, root on CI).

* an image's task root (``/var/task``): its Dockerfile's COPY and RUN steps in order, RUN
  by bash with ``LAMBDA_TASK_ROOT`` and the build args set and ``pip``/``python`` meaning
  this venv's interpreter (the same Python version as the base image's, 3.12);
* a zip asset's task root: the asset directory as CDK zips it (no compileall);
* the runtime directory (``/var/runtime``): awslambdaric and boto3/botocore pinned in
  requirements-dev.txt, installed by pip, as the Lambda base image ships them beside,
  not inside, the task root;
* the interpreter (``/var/lang``): this Python's installation without its site-packages
  (nothing installed leaks in) or test suite, copied because pyenv keeps it under /root,
  which the function's non-root user cannot reach.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.lambda_runtime import dockerfile

ROOT = Path(__file__).resolve().parents[2]
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
_LANG_IGNORED = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip")


def cache_dir() -> Path:
    """``build/lambda_runtime``, or a temporary folder if a non-root user could not reach it."""
    preferred = ROOT / "build" / "lambda_runtime"
    if all(p.stat().st_mode & stat.S_IXOTH for p in (ROOT, *ROOT.parents)):
        return preferred
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"lambda-runtime-{digest}"


@dataclass(frozen=True)
class TaskRoot:
    path: Path
    cmd: tuple[str, ...]  # the image's CMD, or (handler,) of a zip function


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()[:16]


def _tree_bytes(path: Path) -> Iterable[bytes]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if "__pycache__" in file.parts or file.suffix == ".pyc":
            continue
        yield str(file.relative_to(ROOT if file.is_relative_to(ROOT) else path)).encode()
        yield file.read_bytes()


def make_read_only(path: Path) -> None:
    for entry in [path, *path.rglob("*")]:
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        readable = 0o555 if stat.S_ISDIR(mode) or mode & 0o111 else 0o444
        entry.chmod((stat.S_IMODE(mode) | readable) & ~0o222)


def remove(path: Path) -> None:
    """Remove a tree this module made read-only (as root, or as the user who built it)."""
    if not path.exists():
        return
    for entry in [path, *path.rglob("*")]:
        if entry.is_dir() and not entry.is_symlink():
            entry.chmod(stat.S_IMODE(entry.stat().st_mode) | 0o700)
    shutil.rmtree(path)


def cached(name: str, key: Iterable[bytes], build: Callable[[Path], None]) -> Path:
    digest = _digest([sys.version.encode(), *key])
    folder = cache_dir() / f"{name}-{digest}"
    if (folder / ".complete").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    for old in folder.parent.glob(f"{name}-*"):
        remove(old)
    folder.mkdir()
    build(folder)
    (folder / ".complete").write_text(f"{name} {digest}\n")
    make_read_only(folder)
    return folder


def _shims(folder: Path) -> Path:
    """``pip`` and ``python`` for RUN steps: this venv's interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pip").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip "$@"\n')
    (folder / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for shim in ("pip", "python"):
        (folder / shim).chmod(0o755)
    return folder


def image_task_root(
    path: Path, context: Path, build_args: dict[str, str] | None = None, name: str = ""
) -> TaskRoot:
    """The task root ``docker build -f path context`` would leave in /var/task."""
    parsed = dockerfile.parse(path)
    args = {**parsed.args, **(build_args or {})}
    key: list[bytes] = [path.read_bytes(), repr(sorted(args.items())).encode()]
    placeholder = {**args, "LAMBDA_TASK_ROOT": "/var/task"}
    for step in parsed.steps:
        if step.instruction == "COPY":
            sources, _ = dockerfile.copy_sources(step, placeholder)
            for source in sources:
                key.extend(_tree_bytes(context / source))

    def build(root: Path) -> None:
        variables = {**args, "LAMBDA_TASK_ROOT": str(root)}
        with tempfile.TemporaryDirectory() as scratch:
            shims = _shims(Path(scratch) / "bin")
            for step in parsed.steps:
                if step.instruction == "COPY":
                    _copy(step, variables, context)
                    continue
                env = {**os.environ, **variables, "PATH": f"{shims}:{os.environ['PATH']}"}
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", step.text],
                    env=env,
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode:
                    raise RuntimeError(
                        f"{path}: RUN {step.text} failed ({done.returncode}):\n"
                        f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
                    )

    folder = cached(f"task-{name or path.parent.name}", key, build)
    return TaskRoot(folder, parsed.cmd)


def _copy(step: dockerfile.Step, variables: dict[str, str], context: Path) -> None:
    sources, destination = dockerfile.copy_sources(step, variables)
    target = Path(destination)
    if len(sources) > 1 and not destination.endswith("/"):
        raise ValueError(f"COPY {step.text}: several sources need a destination ending in /")
    for source in sources:
        origin = context / source
        if not origin.exists():
            raise FileNotFoundError(f"COPY {step.text}: {origin} does not exist")
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=_IGNORED, dirs_exist_ok=True)
        elif destination.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def zip_task_root(directory: Path, handler: str, name: str) -> TaskRoot:
    """A zip asset's code as Lambda unpacks it into /var/task (no compiled files)."""
    key = [name.encode(), *_tree_bytes(directory)]

    def build(root: Path) -> None:
        shutil.copytree(directory, root, ignore=_IGNORED, dirs_exist_ok=True)

    return TaskRoot(cached(f"zip-{name}", key, build), (handler,))


def pins(*names: str) -> list[str]:
    """``name==version`` of each package, as requirements-dev.txt pins it."""
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    found = [line.split("#")[0].strip() for line in lines]
    result = []
    for name in names:
        match = [line for line in found if line.split("[")[0].split("==")[0] == name]
        if not match:
            raise LookupError(f"requirements-dev.txt does not pin {name}")
        result.append(match[0])
    return result


def runtime_dir() -> Path:
    """/var/runtime: the runtime interface client and the runtime's boto3."""
    wanted = pins("awslambdaric", "boto3")

    def build(folder: Path) -> None:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--target", str(folder), *wanted],
            check=True,
        )  # fmt: skip

    return cached("runtime", [" ".join(wanted).encode()], build)


def interpreter() -> Path:
    """/var/lang: this Python without site-packages; returns its ``bin/python3.X``."""
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    binary = base / "bin" / version
    info = binary.stat()
    key = [str(base).encode(), f"{info.st_size} {info.st_mtime_ns}".encode()]
    libdir = Path(sysconfig.get_config_var("LIBDIR") or base / "lib")

    def build(folder: Path) -> None:
        (folder / "bin").mkdir()
        shutil.copy2(binary, folder / "bin" / version)
        (folder / "lib").mkdir()
        for library in libdir.glob("libpython*.so*"):
            shutil.copy2(library, folder / "lib" / library.name, follow_symlinks=True)
        shutil.copytree(
            base / "lib" / version,
            folder / "lib" / version,
            ignore=shutil.ignore_patterns(*_LANG_IGNORED, "config-*"),
            symlinks=True,
        )

    return cached("lang", key, build) / "bin" / version

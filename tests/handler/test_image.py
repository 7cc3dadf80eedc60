"""The image without a Docker engine: its Python, its pins, its wheels, what it imports."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from inference.config import RUNTIMES
from tests.handler.conftest import ARTIFACTS, LAMBDA_SRC, ROOT

DOCKERFILE = (LAMBDA_SRC / "Dockerfile").read_text()
INSTRUCTIONS = "\n".join(
    line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")
)
ARCHITECTURES = ("x86_64", "aarch64")
# Lambda's Python 3.12 image runs on Amazon Linux 2023 (glibc 2.34).
MANYLINUX_TAGS = ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34")


def pins(path: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line, following ``-r`` includes."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif "==" in line:
            name, version = line.split("==", 1)
            found[name.split("[", 1)[0].strip().lower()] = version.strip()
    return found


def base_image_python() -> str:
    match = re.search(r"^FROM public\.ecr\.aws/lambda/python:(\d+\.\d+)\s*$", DOCKERFILE, re.M)
    assert match, "Dockerfile must start FROM the AWS Lambda Python base image with a version tag"
    return match.group(1)


def test_base_image_python_is_the_one_we_test_with() -> None:
    image = base_image_python()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if image != running:
        pytest.skip(f"tests run on Python {running} but the image uses {image}")
    assert image == running


def test_dockerfile_builds_every_runtime_and_names_the_handler() -> None:
    assert "ARG MODEL_RUNTIME=sklearn" in DOCKERFILE
    assert "requirements-${MODEL_RUNTIME}.txt" in DOCKERFILE
    assert "python -m compileall" in DOCKERFILE
    assert DOCKERFILE.rstrip().endswith('CMD ["inference.handler.handler"]')
    # One Dockerfile for both architectures: nothing may pin a platform.
    assert not re.search(r"platform|x86_64|amd64|arm64|aarch64", INSTRUCTIONS)
    for runtime in RUNTIMES:
        assert (LAMBDA_SRC / f"requirements-{runtime}.txt").is_file()


def test_cmd_names_a_callable_handler() -> None:
    from inference import handler

    assert callable(handler.handler)


def test_runtime_requirements_match_what_the_tests_run_with() -> None:
    dev = pins(ROOT / "requirements-dev.txt")
    for runtime in RUNTIMES:
        image = pins(LAMBDA_SRC / f"requirements-{runtime}.txt")
        for name in ("boto3", "numpy", "scikit-learn", "joblib"):
            if name in image:
                assert image[name] == dev[name], f"{runtime}: {name}"


def test_compiled_image_carries_nothing_of_scikit_learn_or_boto3() -> None:
    compiled = pins(LAMBDA_SRC / "requirements-compiled.txt")
    assert set(compiled) == {"numpy"}
    assert {"scikit-learn", "joblib", "boto3"} <= set(pins(LAMBDA_SRC / "requirements-sklearn.txt"))
    assert not {"pandas", "matplotlib"} & set(pins(LAMBDA_SRC / "requirements-sklearn.txt"))


@pytest.mark.parametrize(
    "manifest_path", sorted(ARTIFACTS.glob("*/manifest.json")), ids=lambda p: p.parent.name
)
def test_sklearn_image_unpickles_with_the_training_versions(manifest_path: Path) -> None:
    trained_with = json.loads(manifest_path.read_text())["library_versions"]
    image = pins(LAMBDA_SRC / "requirements-sklearn.txt")
    for name in ("scikit-learn", "numpy", "joblib"):
        assert image[name] == trained_with[name], name
    assert trained_with["python"].rsplit(".", 1)[0] == base_image_python()


def test_dockerignore_keeps_tests_and_caches_out() -> None:
    ignored = (LAMBDA_SRC / ".dockerignore").read_text().split()
    assert {"**/__pycache__", "**/*.pyc", "**/tests"} <= set(ignored)


@pytest.mark.parametrize(
    ("runtime", "must_not_import"),
    [("sklearn", ["boto3", "botocore"]), ("compiled", ["sklearn", "joblib", "boto3"])],
)
def test_cold_start_imports_only_what_the_runtime_needs(
    runtime: str, must_not_import: list[str]
) -> None:
    probe = (
        "import sys, json; import inference.handler as h;"
        "print(json.dumps([type(h.current_state()).__name__,"
        f" [m for m in {must_not_import!r} if m in sys.modules]]))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(LAMBDA_SRC),
        "MODEL_RUNTIME": runtime,
        "MODEL_PATH": str(ARTIFACTS / "v1" / "model.joblib"),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    state, imported = json.loads(result.stdout.splitlines()[-1])
    if runtime == "sklearn":
        assert state == "Ready"
    assert imported == []


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_requirements_resolve_to_binary_wheels(arch: str, runtime: str, tmp_path: Path) -> None:
    if not _pypi_reachable():
        pytest.skip("PyPI (pypi.org:443) is unreachable: cannot resolve wheels offline")
    python = base_image_python()
    platforms = [arg for tag in MANYLINUX_TAGS for arg in ("--platform", f"{tag}_{arch}")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            *platforms,
            "--dest",
            str(tmp_path),
            "-r",
            str(LAMBDA_SRC / f"requirements-{runtime}.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.endswith(".whl") for name in files), files
    expected = set(pins(LAMBDA_SRC / f"requirements-{runtime}.txt"))
    downloaded = {re.split(r"-\d", name, maxsplit=1)[0].lower().replace("_", "-") for name in files}
    assert downloaded == expected, "every pinned package, and only those, is in the image"
    cp = f"cp{python.replace('.', '')}"
    for name in files:
        tags = name[:-4].split("-")[-3:]
        if tags[2] != "any":
            assert tags[0] == cp and arch in tags[2], name

"""The image without a Docker engine: its Python, its pins, its wheels, what it imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from inference.config import RUNTIMES
from tests.handler.conftest import ARTIFACTS, LAMBDA_SRC, ROOT

IMAGE = LAMBDA_SRC / "images" / "inference"
DOCKERFILE = (IMAGE / "Dockerfile").read_text()
INSTRUCTIONS = "\n".join(
    line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")
)
ARCHITECTURES = ("x86_64", "aarch64")
# The one Python the project targets: the image's base tag, mypy's python_version, the
# interpreter the tests are meant to run on. Changing it is a decision, made here.
PROJECT_PYTHON = "3.12"
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


def test_base_image_python_is_the_project_python() -> None:
    assert base_image_python() == PROJECT_PYTHON
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["mypy"]["python_version"] == PROJECT_PYTHON


def test_tests_run_on_the_project_python() -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != PROJECT_PYTHON:
        pytest.skip(
            f"this interpreter is Python {running}, the image runs {PROJECT_PYTHON}: the "
            f"handler tests prove nothing about the image's Python (use make test's venv)"
        )
    assert running == PROJECT_PYTHON


def test_dockerfile_builds_every_runtime_and_names_the_handler() -> None:
    assert "ARG MODEL_RUNTIME=sklearn" in DOCKERFILE
    assert "requirements-${MODEL_RUNTIME}.txt" in DOCKERFILE
    assert "python -m compileall" in DOCKERFILE
    assert DOCKERFILE.rstrip().endswith('CMD ["inference.handler.handler"]')
    # One Dockerfile for both architectures: nothing may pin a platform.
    assert not re.search(r"platform|x86_64|amd64|arm64|aarch64", INSTRUCTIONS)
    for runtime in RUNTIMES:
        assert (IMAGE / f"requirements-{runtime}.txt").is_file()


def test_cmd_names_a_callable_handler() -> None:
    from inference import handler

    assert callable(handler.handler)


def test_runtime_requirements_match_what_the_tests_run_with() -> None:
    dev = pins(ROOT / "requirements-dev.txt")
    for runtime in RUNTIMES:
        image = pins(IMAGE / f"requirements-{runtime}.txt")
        for name in ("boto3", "numpy", "orjson", "scikit-learn", "joblib", "skops", "pandas"):
            if name in image:
                assert image[name] == dev[name], f"{runtime}: {name}"


def test_compiled_image_carries_nothing_of_scikit_learn_or_boto3() -> None:
    compiled = pins(IMAGE / "requirements-compiled.txt")
    # orjson: the request path's JSON (inference/json_codec.py), ~0.3 MB.
    assert set(compiled) == {"numpy", "orjson"}
    sklearn = set(pins(IMAGE / "requirements-sklearn.txt"))
    assert {"scikit-learn", "joblib"} <= sklearn
    # The base image ships the SDK: installing it again only makes the image bigger.
    assert not {"boto3", "botocore", "s3transfer"} & sklearn
    # pandas calls a pipeline fitted on a DataFrame; plotting is training's alone.
    assert "pandas" in sklearn
    assert "matplotlib" not in sklearn


@pytest.mark.parametrize(
    "manifest_path", sorted(ARTIFACTS.glob("*/manifest.json")), ids=lambda p: p.parent.name
)
def test_sklearn_image_unpickles_with_the_training_versions(manifest_path: Path) -> None:
    trained_with = json.loads(manifest_path.read_text())["library_versions"]
    image = pins(IMAGE / "requirements-sklearn.txt")
    for name in ("scikit-learn", "numpy", "joblib", "skops"):
        assert image[name] == trained_with[name], name
    assert trained_with["python"].rsplit(".", 1)[0] == base_image_python()


@pytest.mark.parametrize(
    ("runtime", "must_not_import"),
    [
        ("sklearn", ["boto3", "botocore"]),
        ("compiled", ["sklearn", "joblib", "scipy", "boto3", "botocore"]),
    ],
)
def test_cold_start_imports_only_what_the_runtime_needs(
    runtime: str, must_not_import: list[str]
) -> None:
    """A fresh process loads the runtime's own artifact, pinned, and imports nothing heavy."""
    artifact = json.loads((ARTIFACTS / "v1" / "manifest.json").read_text())["artifacts"][runtime]
    probe = (
        "import sys, json; import inference.handler as h; s = h.current_state();"
        "print(json.dumps([type(s).__name__, getattr(s, 'reason', None),"
        f" [m for m in {must_not_import!r} if m in sys.modules]]))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(LAMBDA_SRC),
        "MODEL_RUNTIME": runtime,
        "MODEL_PATH": str(ARTIFACTS / "v1" / artifact["file"]),
        "MODEL_SHA256": artifact["sha256"],
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    state, reason, imported = json.loads(result.stdout.splitlines()[-1])
    assert (state, reason) == ("Ready", None)
    assert imported == []


# No skip when PyPI is unreachable: make test installs from PyPI, so it is reachable
# wherever the suite is meant to run, and a skip would hide an image that cannot build.
@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_requirements_resolve_to_binary_wheels(arch: str, runtime: str, tmp_path: Path) -> None:
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
            str(IMAGE / f"requirements-{runtime}.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.endswith(".whl") for name in files), files
    expected = set(pins(IMAGE / f"requirements-{runtime}.txt"))
    downloaded = {re.split(r"-\d", name, maxsplit=1)[0].lower().replace("_", "-") for name in files}
    assert downloaded == expected, "every pinned package, and only those, is in the image"
    cp = f"cp{python.replace('.', '')}"
    for name in files:
        tags = name[:-4].split("-")[-3:]
        if tags[2] != "any":
            # A stable-ABI wheel (abi3, e.g. wcwidth's cp310) serves every later CPython.
            python_ok = tags[0] == cp or (tags[1] == "abi3" and tags[0] <= cp)
            assert python_ok and arch in tags[2], name

"""The installed size of an image's Python requirements: the wheels pip would install for
the image's Python and platform, installed once into a cache under build/ and measured.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPS_CACHE = ROOT / "build" / "bench-deps"
IMAGE_PYTHON = "3.12"
# cdk.json deploys arm64 in every environment: size the wheels the image would install.
IMAGE_ARCH = "aarch64"


def dependency_size_mb(requirements: Path) -> float | None:
    """Installed size of ``requirements`` for the image's Python and platform (cached)."""
    text = (
        "".join(p.read_text() for p in sorted(requirements.parent.glob("requirements*.txt")))
        + requirements.name
        + IMAGE_ARCH
        + IMAGE_PYTHON
    )
    target = DEPS_CACHE / hashlib.sha256(text.encode()).hexdigest()[:16]
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        print(
            f"  installing {requirements.relative_to(ROOT)} for cp{IMAGE_PYTHON} {IMAGE_ARCH} ...",
            flush=True,
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                IMAGE_PYTHON,
                "--platform",
                f"manylinux2014_{IMAGE_ARCH}",
                "--platform",
                f"manylinux_2_28_{IMAGE_ARCH}",
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"  could not install (network?): {result.stderr.strip()[-300:]}")
            return None
        (target / ".complete").touch()
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return total / 1e6

"""docs/architecture.md names files and folders; each must exist, and each layer it lists
must be a package the import-direction test places."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_layers import ALLOWED

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# A backticked repository path: a top-level folder of the project, then a path.
PATH = re.compile(
    r"`((?:serving|lambda_src|training|stacks|tools|benchmarks|tests|docs)/[\w./<>-]*)`"
)


def named_paths(text: str) -> list[str]:
    return sorted(set(PATH.findall(text)))


def test_every_path_the_page_names_exists() -> None:
    paths = named_paths(DOC.read_text())
    assert len(paths) > 40  # the page is read, not an empty match
    missing = [p for p in paths if "<" not in p and not (ROOT / p).exists()]
    assert missing == []


def test_a_missing_path_is_found() -> None:
    assert named_paths("see `serving/nowhere.py` and `lambda_src/inference/`") == [
        "lambda_src/inference/",
        "serving/nowhere.py",
    ]
    assert not (ROOT / "serving/nowhere.py").exists()


def test_every_deployed_package_is_a_placed_layer() -> None:
    folders = {p.parent.name for p in (ROOT / "lambda_src").glob("*/__init__.py")}
    assert folders <= set(ALLOWED)

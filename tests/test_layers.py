"""Imports run one way: serving <- {lambda_src, training} <- {stacks, tools, benchmarks}.

Every import of every non-test module is read (ast, including imports inside functions)
and held against ALLOWED: which project packages each package may import. A deployed
function imports only its own package, the library and the custom-resource helpers; the
library imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOYED = ROOT / "lambda_src"

# package -> the project packages it may import (besides itself).
LIBRARY = frozenset({"serving"})
ALLOWED: dict[str, frozenset[str]] = {
    "serving": frozenset(),
    "custom_resource": frozenset(),
    "inference": LIBRARY,
    "monitors": LIBRARY,
    "reconciler": LIBRARY | {"custom_resource"},
    "traffic_gate": LIBRARY | {"custom_resource"},
    # Training verifies an artifact with the runtime that will serve it.
    "training": LIBRARY | {"inference"},
    "stacks": LIBRARY,
    "tools": LIBRARY | {"inference", "training", "stacks"},
    "benchmarks": LIBRARY | {"inference", "training", "stacks"},
    "app": frozenset({"stacks"}),
}
PROJECT = frozenset(ALLOWED)


def package_of(path: Path) -> str:
    relative = path.relative_to(DEPLOYED if path.is_relative_to(DEPLOYED) else ROOT)
    return relative.parts[0].removesuffix(".py")


def sources() -> list[Path]:
    found = [ROOT / "app.py"]
    for folder in ("serving", "training", "stacks", "tools", "benchmarks"):
        found += (ROOT / folder).rglob("*.py")
    found += (p for p in DEPLOYED.rglob("*.py") if p.parent != DEPLOYED)
    return sorted(p for p in found if "__pycache__" not in p.parts)


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of each import of a project package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops = [node.module.split(".")[0]]
        else:
            continue
        found += [(node.lineno, top) for top in tops if top in PROJECT]
    return found


def violations(paths: list[Path]) -> list[str]:
    wrong = []
    for path in paths:
        mine = package_of(path)
        allowed = ALLOWED[mine] | {mine}
        wrong += [
            f"{path.relative_to(ROOT)}:{line}: {mine} imports {top}"
            for line, top in project_imports(path)
            if top not in allowed
        ]
    return wrong


def test_every_package_is_placed() -> None:
    assert {package_of(p) for p in sources()} <= PROJECT


def test_imports_run_one_way() -> None:
    assert violations(sources()) == []


@pytest.mark.parametrize(
    ("where", "line", "expected"),
    [
        ("serving/psi_copy.py", "from training import schema", "serving imports training"),
        ("lambda_src/monitors/x.py", "import tools.drift", "monitors imports tools"),
        ("lambda_src/inference/x.py", "from traffic_gate import handler", "inference imports"),
        ("training/x.py", "from stacks.settings import REPO_ROOT", "training imports stacks"),
        ("stacks/x.py", "    from training import golden", "stacks imports training"),
    ],
)
def test_an_import_against_the_direction_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, line: str, expected: str
) -> None:
    """The check itself: a wrong import, even one inside a function, is reported."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    monkeypatch.setattr(f"{__name__}.DEPLOYED", tmp_path / "lambda_src")
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    body = f"def f():\n{line}\n" if line.startswith(" ") else f"{line}\n"
    path.write_text(body)
    found = violations([path])
    assert len(found) == 1 and expected in found[0] and found[0].startswith(where)


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """A module that outgrows this is split by job (docs/architecture.md says where)."""
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sources()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}

"""Each deployed function's asset: its package, exactly the library modules it imports, and
its build files (stacks/function_code.py), written once per content."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from stacks import function_code
from stacks.function_code import FUNCTIONS, FunctionCodeError, shipped_files, stage

ROOT = Path(__file__).resolve().parents[2]


def copy_sources(tmp_path: Path) -> Path:
    """lambda_src/ copied (the library stays where it is: it is read from the repository)."""
    copy = tmp_path / "lambda_src"
    shutil.copytree(
        ROOT / "lambda_src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return copy


def test_every_function_of_the_tree_is_declared() -> None:
    packages = {
        p.parent.name
        for p in (ROOT / "lambda_src").glob("*/__init__.py")
        if p.parent.name not in function_code.SHARED_PACKAGES
    }
    assert packages == {f.package for f in FUNCTIONS.values()}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_an_asset_holds_its_package_and_only_imported_library_modules(name: str) -> None:
    function = FUNCTIONS[name]
    files = shipped_files(function)
    own = {
        str(p.relative_to(ROOT / "lambda_src")) for p in (ROOT / "lambda_src" / name).rglob("*.py")
    }
    assert own <= set(files)
    library = {f for f in files if f.startswith("serving/")}
    # The library modules it ships are those its own code reaches, nothing more: each shipped
    # library module is imported by some shipped file.
    text = "\n".join(path.read_text() for path in files.values())
    for module in library - {"serving/__init__.py"}:
        assert f"serving.{Path(module).stem}" in text or f"import {Path(module).stem}" in text


def test_the_inference_image_ships_no_statistics_and_the_gate_no_numpy() -> None:
    inference = set(shipped_files(FUNCTIONS["inference"]))
    assert "serving/stats.py" not in inference and "serving/drift.py" not in inference
    assert "serving/stats.py" in set(shipped_files(FUNCTIONS["monitors"]))
    for zipped in ("reconciler", "traffic_gate"):
        for path in shipped_files(FUNCTIONS[zipped]).values():
            tree = ast.parse(path.read_text())
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                (node.module or "").split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
            }
            assert "numpy" not in imported, path


@pytest.mark.parametrize(
    ("function", "module", "line", "refusal"),
    [
        # Lambda's Python runtime has no numpy.
        ("reconciler", "reconciler/handler.py", "import numpy", r"handler\.py: imports 'numpy'"),
        # A deployed function never imports a command-line tool.
        ("monitors", "monitors/drift.py", "from tools.drift import __main__", "'tools.drift'"),
    ],
)
def test_an_import_the_function_is_not_given_is_refused_at_synth(
    tmp_path: Path, function: str, module: str, line: str, refusal: str
) -> None:
    sources = copy_sources(tmp_path)
    path = sources / module
    path.write_text(f"{path.read_text()}\n{line}\n")
    with pytest.raises(FunctionCodeError, match=refusal):
        shipped_files(FUNCTIONS[function], sources)


def test_layout_of_image_and_zip_assets(tmp_path: Path) -> None:
    image = stage("monitors", output_root=tmp_path)
    assert (image / "Dockerfile").is_file() and (image / "requirements.txt").is_file()
    assert (image / "task" / "monitors" / "drift.py").is_file()
    assert "from monitors.canary import handler" in (image / "task" / "canary.py").read_text()
    assert "COPY task/ ${LAMBDA_TASK_ROOT}/" in (image / "Dockerfile").read_text()
    zipped = stage("traffic_gate", output_root=tmp_path)
    assert "from traffic_gate.handler import handler" in (zipped / "index.py").read_text()
    assert (zipped / "custom_resource" / "response.py").is_file()
    assert not (zipped / "Dockerfile").exists()
    assert all(p.suffix == ".py" for p in zipped.rglob("*") if p.is_file())


def test_content_names_the_asset_and_a_change_makes_a_new_one(tmp_path: Path) -> None:
    first = stage("inference", output_root=tmp_path / "out")
    assert stage("inference", output_root=tmp_path / "out") == first  # written once
    sources = copy_sources(tmp_path)
    changed = sources / "inference" / "__init__.py"
    changed.write_text(changed.read_text() + "\n")
    second = stage("inference", source_root=sources, output_root=tmp_path / "out")
    assert second != first
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([first.name, second.name])
    # A file another function does not ship leaves its asset as it was.
    assert stage("reconciler", source_root=sources, output_root=tmp_path / "out") == stage(
        "reconciler", output_root=tmp_path / "out"
    )


def test_the_command_prints_the_asset_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert function_code.main(["reconciler"]) == 0
    assert Path(capsys.readouterr().out.strip()).is_dir()
    assert function_code.main(["nope"]) == 2
    assert "usage: python -m stacks.function_code" in capsys.readouterr().err

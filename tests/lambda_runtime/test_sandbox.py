"""The sandbox bites: what fails on Lambda fails here too.

A write outside the private temporary folder, a package the task root lacks (this venv's
packages are not on the function's path) and a CMD naming a module that is not there each
fail the way the runtime interface client reports them on Lambda. Without these, a
passing inference test could be a sandbox that lets everything through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lambda_runtime import build, dockerfile, sandbox
from tests.lambda_runtime.conftest import INFERENCE_DOCKERFILE, Launch, inference_root

pytestmark = pytest.mark.integration

MakeRoot = Callable[[dict[str, str]], Path]
WRITER = """
import os, tempfile

def handler(event, context):
    where = {"tmp": tempfile.gettempdir(), "task_root": os.environ["LAMBDA_TASK_ROOT"],
             "home": os.path.expanduser("~"), "cwd": os.getcwd()}[event["where"]]
    with open(os.path.join(where, "written.txt"), "w") as handle:
        handle.write("x")
    return {"wrote": where, "uid": os.getuid()}
"""


def tiny(root: Path, handler: str = "index.handler") -> sandbox.Function:
    return sandbox.Function("probe", root, handler, {}, 128, 3, "python3.12")


@pytest.mark.parametrize("where", ["task_root", "home", "cwd"])
def test_a_write_outside_tmp_fails(where: str, make_root: MakeRoot, launch: Launch) -> None:
    with launch(tiny(make_root({"index.py": WRITER}))) as environment:
        outcome = environment.invoke({"where": where})
    assert outcome.kind == "error", outcome
    assert outcome.json()["errorType"] == "PermissionError", outcome.json()


def test_a_write_to_tmp_succeeds_as_a_non_root_user(make_root: MakeRoot, launch: Launch) -> None:
    with launch(tiny(make_root({"index.py": WRITER}))) as environment:
        outcome = environment.invoke({"where": "tmp"})
    assert outcome.kind == "response", outcome
    assert outcome.json()["uid"] != 0
    assert outcome.json()["wrote"] != "/tmp"  # TMPDIR: the environment's own folder


def test_a_missing_dependency_fails_init(make_root: MakeRoot, launch: Launch) -> None:
    """The inference package without the pip step: numpy is in this venv, not in the root."""
    source = build.ROOT / "lambda_src" / "inference"
    files = {f"inference/{p.name}": p.read_text() for p in source.glob("*.py")}
    with launch(tiny(make_root(files), "inference.handler.handler")) as environment:
        error = environment.api.wait_init_error(30)
        assert error is not None, environment.logs()
        assert error.json()["errorType"] == "Runtime.ImportModuleError"
        assert "No module named 'numpy'" in error.json()["errorMessage"]
        assert environment.api.next_calls == 0
        assert environment.process.wait(10) != 0


def test_a_cmd_naming_a_missing_module_fails_init(launch: Launch, tmp_path: Path) -> None:
    text = INFERENCE_DOCKERFILE.read_text()
    wrong = tmp_path / "Dockerfile"
    wrong.write_text(text.replace('"inference.handler.handler"', '"inference.app.handler"'))
    (handler,) = dockerfile.parse(wrong).cmd
    assert handler == "inference.app.handler"
    function = tiny(inference_root("compiled").path, handler)
    with launch(function) as environment:
        error = environment.api.wait_init_error(30)
    assert error is not None
    assert error.json()["errorType"] == "Runtime.ImportModuleError"
    assert "inference.app" in error.json()["errorMessage"]


def test_the_dockerfile_parser_refuses_what_it_does_not_build(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text('FROM public.ecr.aws/lambda/python:3.12\nENV X=1\nCMD ["a.handler"]\n')
    with pytest.raises(ValueError, match="ENV is not understood"):
        dockerfile.parse(path)
    path.write_text("FROM public.ecr.aws/lambda/python:3.12\nCMD a.handler\n")
    with pytest.raises(json.JSONDecodeError):
        dockerfile.parse(path)


def test_every_inference_task_root_is_read_only() -> None:
    for name in ("compiled", "sklearn"):
        root = inference_root(name).path
        entries = [root, *root.rglob("*")]
        writable = [p for p in entries if not p.is_symlink() and p.stat().st_mode & 0o222]
        assert not writable[:5]

"""The runtime registry (inference/runtimes.py) is the one list of runtimes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference import config, model_loader, runtimes
from serving.runtimes import ModelRuntime
from training import golden

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_SRC = ROOT / "lambda_src"


def test_every_runtime_name_the_stack_accepts_is_registered() -> None:
    assert [m.value for m in ModelRuntime] == list(runtimes.NAMES)


def test_every_reader_of_runtime_names_reads_the_registry() -> None:
    assert config.RUNTIMES == runtimes.NAMES
    assert config.DEFAULT_RUNTIME in runtimes.NAMES
    assert golden.LOADER_OF_ARTIFACT == {
        "sklearn": "sklearn",
        "sklearn-joblib": "sklearn",
        "compiled": "compiled",
    }


@pytest.mark.parametrize("name", runtimes.NAMES)
def test_each_runtime_has_its_image_requirements_and_a_loader(name: str) -> None:
    runtime = runtimes.get(name)
    assert (LAMBDA_SRC / "images" / "inference" / runtime.requirements).is_file()
    assert callable(model_loader.runtime_loader(name))


def test_committed_artifacts_are_read_by_their_registered_runtime() -> None:
    manifest = json.loads((ROOT / "model_artifacts/churn/v1/manifest.json").read_text())
    for key, entry in manifest["artifacts"].items():
        if key == "golden":
            continue
        runtime = runtimes.RUNTIME_OF_ARTIFACT[key]
        data = (ROOT / "model_artifacts/churn/v1" / entry["file"]).read_bytes()
        model = model_loader.runtime_loader(runtime)(data)
        assert (model.model_name, model.model_version) == ("churn", "v1")


def test_unknown_runtime_is_refused_by_name() -> None:
    with pytest.raises(model_loader.ModelLoadError, match=r"unknown runtime 'onnx': use one of"):
        model_loader.runtime_loader("onnx")


def test_a_runtime_missing_from_the_image_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # The compiled image lacks nothing, but a future runtime module may be left out.
    monkeypatch.setitem(
        runtimes.REGISTRY,
        "absent",
        runtimes.Runtime(
            name="absent",
            module="inference.no_such_runtime",
            formats=(),
            artifact_keys=(),
            lean_fetch=True,
        ),
    )
    with pytest.raises(model_loader.ModelLoadError, match="'absent' is not available"):
        model_loader.runtime_loader("absent")


def test_choosing_the_compiled_runtime_imports_no_scikit_learn() -> None:
    code = (
        "import sys; sys.path.insert(0, 'lambda_src');"
        "from inference import model_loader, handler;"
        "model_loader.runtime_loader('compiled');"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'scipy', 'joblib', 'skops', 'inference.sklearn_model'));"
        "assert 'inference.sklearn_model' not in sys.modules, 'sklearn runtime';"
        "print(heavy)"
    )
    # A clean environment: the handler configures itself from MODEL_* at import.
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

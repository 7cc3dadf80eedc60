"""The limits the stack enforces at synth agree with the handler's, and the stack passes
the artifact's size so that a download can stop at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inference import answers
from inference.config import ConfigError, settings_from_env
from inference.events import Shape
from serving import payload
from serving.runtimes import ModelRuntime
from stacks.config import load_config
from stacks.model_artifact import load_model_artifact
from stacks.settings import ConfigError as StackConfigError

ROOT = Path(__file__).resolve().parents[2]


def context(**function: Any) -> dict[str, Any]:
    cdk = json.loads((ROOT / "cdk.json").read_text())["context"]
    cdk["environments"]["dev"].setdefault("function", {}).update(function)
    return dict(cdk)


def test_the_bound_fits_a_full_batchs_answer_in_lambdas_6_mb() -> None:
    # Churn's widest row, as Lambda sends an HTTP body, measured by the handler's own bound
    # (tests/reliability/test_answer_size.py proves that bound against real answers).
    for shape in Shape:
        assert answers.row_bytes("binary", (0, 1), shape) == 59
        envelope = {"model_name": "m" * 256, "model_version": "v" * 256, "request_id": "r" * 256}
        assert answers.max_answer_rows("binary", (0, 1), shape, envelope) >= (
            payload.MAX_BATCH_SIZE_LIMIT
        )


def test_synth_refuses_a_batch_size_above_the_bound() -> None:
    assert load_config(context(max_batch_size=payload.MAX_BATCH_SIZE_LIMIT)).function
    with pytest.raises(StackConfigError, match=r"max_batch_size=100001 is not allowed"):
        load_config(context(max_batch_size=payload.MAX_BATCH_SIZE_LIMIT + 1))


def test_the_handler_refuses_one_above_the_bound_too() -> None:
    env = {"MODEL_PATH": "/m", "MODEL_SHA256": "0" * 64}
    ok = settings_from_env({**env, "MAX_BATCH_SIZE": str(payload.MAX_BATCH_SIZE_LIMIT)})
    assert ok.max_batch_size == payload.MAX_BATCH_SIZE_LIMIT
    with pytest.raises(ConfigError, match="MAX_BATCH_SIZE=100001 is out of range"):
        settings_from_env({**env, "MAX_BATCH_SIZE": str(payload.MAX_BATCH_SIZE_LIMIT + 1)})


@pytest.mark.parametrize("runtime", list(ModelRuntime))
def test_the_artifact_size_comes_from_the_manifest(runtime: ModelRuntime) -> None:
    artifact = load_model_artifact(ROOT / "model_artifacts", "churn", "v1", runtime)
    manifest = json.loads((artifact.directory / "manifest.json").read_text())
    expected = manifest["artifacts"][runtime.value]["size_bytes"]
    assert artifact.size_bytes == expected == (artifact.directory / artifact.file).stat().st_size


def test_a_manifest_without_sizes_gets_them_from_the_files(tmp_path: Path) -> None:
    source = ROOT / "model_artifacts" / "churn" / "v1"
    target = tmp_path / "churn" / "v1"
    target.mkdir(parents=True)
    manifest = json.loads((source / "manifest.json").read_text())
    for entry in manifest["artifacts"].values():
        (target / entry["file"]).write_bytes((source / entry["file"]).read_bytes())
        del entry["size_bytes"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    artifact = load_model_artifact(tmp_path, "churn", "v1", ModelRuntime.COMPILED)
    assert artifact.size_bytes == (source / "model.compiled.npz").stat().st_size

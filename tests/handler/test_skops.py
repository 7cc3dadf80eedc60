"""The sklearn runtime's skops artifact: loads without unpickling, refuses untrusted types,
and predicts exactly what the joblib pipeline predicts."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pytest

from inference import handler as handler_module
from inference import sklearn_model
from tests.handler.conftest import ARTIFACTS, FakeLambdaContext, local_env, manifest, valid_record
from training import skops_artifact
from training.synthetic import generate

Configure = Callable[[dict[str, str]], Any]


class Gadget:
    """A type nobody listed as trusted: what a crafted artifact would smuggle in."""

    def __init__(self) -> None:
        self.command = "echo owned"


def skops_env(version: str = "v1", **overrides: str) -> dict[str, str]:
    entry = manifest(version)["artifacts"]["sklearn"]
    env = local_env(version, MODEL_PATH=str(ARTIFACTS / version / entry["file"]))
    return {**env, "MODEL_SHA256": entry["sha256"], **overrides}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_committed_skops_predicts_exactly_like_the_joblib_pipeline(version: str) -> None:
    entry = manifest(version)["artifacts"]["sklearn"]
    assert (entry["file"], entry["format"]) == ("model.skops", sklearn_model.SKOPS_FORMAT)
    model = sklearn_model.load((ARTIFACTS / version / "model.skops").read_bytes())
    pipeline = joblib.load(ARTIFACTS / version / "model.joblib")["pipeline"]
    X, _ = generate(3000, 5)
    assert np.array_equal(model.outputs(X), pipeline.predict_proba(X)[:, 1])
    assert (model.model_name, model.model_version) == ("churn", version)


def test_the_skops_path_never_unpickles(
    fresh_environment: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("unpickled on the skops path")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    state = fresh_environment(skops_env(MODEL_RUNTIME="sklearn"))
    assert isinstance(state, handler_module.Ready), state
    response = handler_module.handler(valid_record(), FakeLambdaContext())
    assert response["statusCode"] == 200


def test_an_untrusted_type_is_refused_by_name_before_anything_is_built(
    fresh_environment: Configure, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Gadget] = []
    monkeypatch.setattr(Gadget, "__setstate__", lambda self, state: built.append(self), False)
    payload = joblib.load(ARTIFACTS / "v1" / "model.joblib")
    payload = {**payload, "format": sklearn_model.SKOPS_FORMAT, "extra": Gadget()}
    path = tmp_path / "model.skops"
    path.write_bytes(skops_artifact.dumps(payload))
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    state = fresh_environment(local_env("v1", MODEL_PATH=str(path), MODEL_SHA256=sha256))
    assert isinstance(state, handler_module.Unavailable)
    assert "types that are not trusted" in state.reason
    assert f"{__name__}.Gadget" in state.reason
    assert built == []


def test_skops_bytes_are_reproducible_and_zip_shaped() -> None:
    payload = joblib.load(ARTIFACTS / "v1" / "model.joblib")
    payload = {**payload, "format": sklearn_model.SKOPS_FORMAT}
    first, second = skops_artifact.dumps(payload), skops_artifact.dumps(payload)
    assert first == second
    assert first.startswith(sklearn_model.ZIP_MAGIC)
    assert first == (ARTIFACTS / "v1" / "model.skops").read_bytes()
    assert zipfile.ZipFile(ARTIFACTS / "v1" / "model.skops").testzip() is None

"""A Lambda version is the unit of release: what publishes one, and what must not."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.application import DEFAULT_IMAGE_DIRECTORY
from stacks.settings import DEFAULT_ARTIFACTS_ROOT
from tests.infra.conftest import Synth, cdk_context, run_synth

BASE = {"env": "prod", "model_version": "v2", "stable_version": "7", "canary_weight": "0.1"}


def alias(synth: Synth) -> dict[str, Any]:
    (resource,) = synth.resources("inference", "AWS::Lambda::Alias").values()
    props: dict[str, Any] = resource["Properties"]
    return props


def image_hashes(synth: Synth) -> set[str]:
    return set(synth.image_assets())


def without(template: dict[str, Any], *types: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] not in types}


def test_changing_only_the_weight_changes_only_routing(synth: Callable[..., Synth]) -> None:
    before = synth(**BASE)
    after = synth(**{**BASE, "canary_weight": "0.5"})
    assert after.version_ids() == before.version_ids(), "no new version"
    assert image_hashes(after) == image_hashes(before), "no image change"
    weights = [
        w["FunctionWeight"] for w in alias(after)["RoutingConfig"]["AdditionalVersionWeights"]
    ]
    assert weights == [0.5]
    assert alias(before)["FunctionVersion"] == alias(after)["FunctionVersion"] == "7"
    # Besides the alias, only provisioned concurrency (which follows the weights, with
    # its autoscaling bounds) and the traffic gate's CandidateWeight (it answers at once
    # for a version the alias already routes) may differ: the function and the version
    # stay as they are.
    changeable = ("AWS::Lambda::Alias", "Custom::ProvisionedConcurrency")
    gate_before, gate_after = (  # copies: the synthesized templates are shared
        json.loads(json.dumps(s.resources("inference", "Custom::TrafficGate")))
        for s in (before, after)
    )
    for resource, weight in ((gate_before, "0.1"), (gate_after, "0.5")):
        (properties,) = [r["Properties"] for r in resource.values()]
        assert properties.pop("CandidateWeight") == weight
    assert gate_before == gate_after
    changeable += ("Custom::TrafficGate",)
    assert without(after.template("inference"), *changeable) == without(
        before.template("inference"), *changeable
    )
    assert after.template("model-store") == before.template("model-store")


def test_changing_only_the_model_publishes_one_new_version(synth: Callable[..., Synth]) -> None:
    before = synth(env="prod", model_version="v1")
    after = synth(env="prod", model_version="v2")
    assert len(before.version_ids()) == len(after.version_ids()) == 1
    assert before.version_ids().isdisjoint(after.version_ids()), "a new version logical ID"
    assert image_hashes(after) == image_hashes(before), "the model does not touch the image"


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synth, Synth, Synth]:
    """prod from the committed artifacts, from an unchanged copy, and with v1 retrained.

    Retrained as ``training.train --version v1 --force`` would: new bytes for the artifact
    the function loads and a manifest that names them, under the same version name.
    """
    root = tmp_path_factory.mktemp("artifacts")
    unchanged = root / "unchanged"
    changed = root / "retrained"
    for copy in (unchanged, changed):
        shutil.copytree(DEFAULT_ARTIFACTS_ROOT / "churn" / "v1", copy / "churn" / "v1")
    directory = changed / "churn" / "v1"
    artifact = directory / "model.compiled.npz"
    artifact.write_bytes(artifact.read_bytes() + b"retrained")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["artifacts"]["compiled"]["sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
    manifest["artifacts"]["compiled"]["size_bytes"] = artifact.stat().st_size
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    context = {**cdk_context(), "env": "prod", "model_version": "v1"}
    return (
        run_synth(tmp_path_factory.mktemp("cdk-out"), context),
        run_synth(tmp_path_factory.mktemp("cdk-out"), context, artifacts_root=unchanged),
        run_synth(tmp_path_factory.mktemp("cdk-out"), context, artifacts_root=changed),
    )


def model_key(synth: Synth) -> str:
    (function,) = [
        f
        for f in synth.resources("inference", "AWS::Lambda::Function").values()
        if "MODEL_KEY" in json.dumps(f["Properties"].get("Environment", {}))
    ]
    key: str = function["Properties"]["Environment"]["Variables"]["MODEL_KEY"]
    return key


def upload_prefix(synth: Synth) -> str:
    (upload,) = synth.resources("model-store", "Custom::CDKBucketDeployment").values()
    prefix: str = upload["Properties"]["DestinationBucketKeyPrefix"]
    return prefix


def test_retraining_a_version_uploads_next_to_the_old_bytes(
    retrained: tuple[Synth, Synth, Synth],
) -> None:
    """Same version name, new bytes: a new content id, so the old key keeps its bytes."""
    original, _, changed = retrained
    for synth in (original, changed):
        assert re.fullmatch(r"models/churn/v1/[0-9a-f]{16}/", upload_prefix(synth))
        assert model_key(synth) == f"{upload_prefix(synth)}model.compiled.npz"
    assert upload_prefix(changed) != upload_prefix(original)
    assert model_key(changed) != model_key(original)


def test_retraining_a_version_publishes_one_new_version(
    retrained: tuple[Synth, Synth, Synth],
) -> None:
    original, _, changed = retrained
    assert len(original.version_ids()) == len(changed.version_ids()) == 1
    assert original.version_ids().isdisjoint(changed.version_ids()), "a new version logical ID"
    assert image_hashes(changed) == image_hashes(original), "the model does not touch the image"


def test_an_unchanged_model_gives_the_same_key_and_version(
    retrained: tuple[Synth, Synth, Synth],
) -> None:
    """Deterministic: the same bytes (here copied elsewhere) synthesize the same templates."""
    original, unchanged, _ = retrained
    assert model_key(unchanged) == model_key(original)
    assert unchanged.version_ids() == original.version_ids()
    assert unchanged.template("inference") == original.template("inference")
    assert unchanged.template("model-store") == original.template("model-store")


def test_changing_handler_code_changes_the_image(
    synth: Callable[..., Synth], changed_image_directory: Path, tmp_path: Path
) -> None:
    original = synth(env="prod")
    changed = synth(image_directory=changed_image_directory, env="prod")
    assert image_hashes(changed) != image_hashes(original)
    assert changed.version_ids() != original.version_ids(), "new code, new version"
    # The hash depends on content, not on where the directory is.
    same = tmp_path / "lambda_src"
    shutil.copytree(
        DEFAULT_IMAGE_DIRECTORY, same, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    assert image_hashes(synth(image_directory=same, env="prod")) == image_hashes(original)


def test_runtime_is_a_build_argument_of_the_image(synth_context: Callable[..., Synth]) -> None:
    context = cdk_context()
    assert context["environments"]["dev"]["runtime"] == "compiled"
    context["environments"]["dev"]["runtime"] = "sklearn"
    (image,) = synth_context(context).image_assets().values()
    assert image["source"]["dockerBuildArgs"] == {"MODEL_RUNTIME": "sklearn"}

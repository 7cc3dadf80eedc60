"""A Lambda version is the unit of release: what publishes one, and what must not."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stacks.application import DEFAULT_IMAGE_DIRECTORY
from tests.infra.conftest import Synth, cdk_context

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
    # Besides the alias, only provisioned concurrency (which follows the weights) and
    # its autoscaling bounds may differ: the function and the version stay as they are.
    changeable = (
        "AWS::Lambda::Alias",
        "Custom::ProvisionedConcurrency",
        "AWS::ApplicationAutoScaling::ScalableTarget",
    )
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

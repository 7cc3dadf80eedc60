"""Synthesize each configuration once per test session; tests read the results.

jsii synth costs seconds, so every distinct configuration is built once (``synth``
caches by its arguments) with cdk-nag attached, exactly as ``app.py`` builds it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from stacks.application import DEFAULT_IMAGE_DIRECTORY, build_app
from stacks.config import (
    committed_context,
    load_config,
)
from stacks.constructs.alarm_topic import PLACEHOLDER_WARNING
from stacks.settings import DEFAULT_ARTIFACTS_ROOT


def cdk_context() -> dict[str, Any]:
    return committed_context()


def validation_findings(directory: Path) -> list[dict[str, Any]]:
    """The validation report's plugin reports (cdk-nag, construct annotations), without the
    one warning the committed prod carries on purpose: its placeholder alarm address
    (docs/configuration.md, Alarm subscriber). A passing synth leaves an empty list."""
    report = json.loads((directory / "validation-report.json").read_text())
    placeholder = (f"Annotation::{PLACEHOLDER_WARNING}", "warning")
    kept = []
    for plugin in report["pluginReports"]:
        violations = [
            v for v in plugin["violations"] if (v["ruleName"], v["severity"]) != placeholder
        ]
        if violations:
            kept.append({**plugin, "violations": violations})
    return kept


def artifacts_with(root: Path, *renamed: str, versions: tuple[str, ...] = ("v1", "v2")) -> Path:
    """``root`` holding the committed churn versions and, under each name in ``renamed``, a
    copy of them whose manifest names that model: enough for synth and the rollout
    command, which read manifests and checksums (the model files still say churn)."""
    shutil.copytree(DEFAULT_ARTIFACTS_ROOT / "churn", root / "churn")
    for name in renamed:
        for version in versions:
            directory = root / name / version
            shutil.copytree(DEFAULT_ARTIFACTS_ROOT / "churn" / version, directory)
            manifest = json.loads((directory / "manifest.json").read_text())
            (directory / "manifest.json").write_text(json.dumps({**manifest, "model_name": name}))
    return root


@dataclass(frozen=True)
class Synth:
    directory: Path
    templates: Mapping[str, dict[str, Any]]
    assets: Mapping[str, dict[str, Any]]

    def template(self, kind: str) -> dict[str, Any]:
        """``kind`` is "model-store" or "inference"."""
        (name,) = [n for n in self.templates if n.endswith(f"-{kind}")]
        return self.templates[name]

    def assertions(self, kind: str) -> Template:
        return Template.from_json(self.template(kind))

    def resources(self, kind: str, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template(kind)["Resources"].items() if v["Type"] == type_}

    def image_assets(self) -> dict[str, dict[str, Any]]:
        """The inference image (built with MODEL_RUNTIME); the drift monitor's is apart."""
        return {
            h: image
            for h, image in self.all_image_assets().items()
            if "MODEL_RUNTIME" in image["source"].get("dockerBuildArgs", {})
        }

    def all_image_assets(self) -> dict[str, dict[str, Any]]:
        (name,) = [n for n in self.assets if n.endswith("-inference")]
        images: dict[str, dict[str, Any]] = self.assets[name].get("dockerImages", {})
        return images

    def version_ids(self) -> set[str]:
        return set(self.resources("inference", "AWS::Lambda::Version"))


def run_synth(
    outdir: Path,
    context: Mapping[str, Any],
    *,
    image_directory: Path = DEFAULT_IMAGE_DIRECTORY,
    artifacts_root: Path = DEFAULT_ARTIFACTS_ROOT,
) -> Synth:
    app = App(context=dict(context), outdir=str(outdir))
    config = load_config(app.node.get_all_context(), artifacts_root=artifacts_root)
    build_app(app, config, image_directory=image_directory)
    assembly = app.synth()
    templates = {s.stack_name: dict(s.template) for s in assembly.stacks}
    assets = {name: json.loads((outdir / f"{name}.assets.json").read_text()) for name in templates}
    return Synth(directory=outdir, templates=templates, assets=assets)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Synth]:
    cache: dict[tuple[Any, ...], Synth] = {}

    def build(image_directory: Path = DEFAULT_IMAGE_DIRECTORY, **overrides: str) -> Synth:
        key = (image_directory, tuple(sorted(overrides.items())))
        if key not in cache:
            outdir = tmp_path_factory.mktemp("cdk-out")
            context = {**cdk_context(), **overrides}
            cache[key] = run_synth(outdir, context, image_directory=image_directory)
        return cache[key]

    return build


@pytest.fixture
def synth_context(tmp_path: Path) -> Callable[[Mapping[str, Any]], Synth]:
    """Synthesize one edited cdk.json context (for settings the CLI cannot override)."""

    def build(context: Mapping[str, Any]) -> Synth:
        outdir = tmp_path / f"cdk-out-{len(list(tmp_path.iterdir()))}"
        return run_synth(outdir, context)

    return build


# The configurations most tests look at, named for what they are.
CANARY = {"model_version": "v2", "stable_version": "7", "canary_weight": "0.1"}


@pytest.fixture(scope="session")
def dev(synth: Callable[..., Synth]) -> Synth:
    return synth(env="dev")


@pytest.fixture(scope="session")
def prod(synth: Callable[..., Synth]) -> Synth:
    return synth(env="prod")


@pytest.fixture(scope="session")
def dev_canary(synth: Callable[..., Synth]) -> Synth:
    return synth(env="dev", **CANARY)


@pytest.fixture(scope="session")
def prod_canary(synth: Callable[..., Synth]) -> Synth:
    return synth(env="prod", **CANARY)


@pytest.fixture(scope="session")
def changed_image_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of lambda_src/ with one byte of handler code changed."""
    copy = tmp_path_factory.mktemp("lambda_src") / "lambda_src"
    shutil.copytree(
        DEFAULT_IMAGE_DIRECTORY, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    target = copy / "inference" / "__init__.py"
    target.write_bytes(target.read_bytes() + b"\n")
    yield copy

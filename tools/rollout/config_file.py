"""Read the deployment config and check an edited rollout block.

The file is changed only through ``training.tracked``: under its lock, if it still holds the
bytes read, through a symlink to its target, and with only the rollout block re-rendered.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.artifacts import VERSION_PATTERN
from stacks.config import load_config
from stacks.settings import DEFAULT_ARTIFACTS_ROOT, ConfigError, EnvironmentConfig
from training import tracked


class RefusedError(Exception):
    """An impossible step; the message names the value and what is allowed."""


@dataclass(frozen=True)
class DeploymentConfig:
    path: Path
    text: str
    document: dict[str, Any]

    def environments(self) -> Mapping[str, Any]:
        environments = self.document.get("context", {}).get("environments")
        if not isinstance(environments, Mapping):
            raise RefusedError(f"{self.path}: context.environments is missing or not an object")
        return environments

    def rollout_block(self, env: str, model: str | None = None) -> dict[str, Any]:
        """``model`` None: the environment's first model; else one of its ``models``."""
        environments = self.environments()
        if env not in environments:
            raise RefusedError(
                f"--env {env!r} is not an environment in {self.path}: use one of "
                f"{', '.join(sorted(environments))}"
            )
        owner = environments[env] if model is None else environments[env]["models"][model]
        block = owner.get("rollout")
        if not isinstance(block, dict):
            raise RefusedError(
                f"{self.path}: {rollout_path(env, model)} is missing or not an object"
            )
        return block

    def parse(self, env: str, artifacts_root: Path = DEFAULT_ARTIFACTS_ROOT) -> EnvironmentConfig:
        """The environment as the app would see it (no -c overrides)."""
        self.rollout_block(env)
        try:
            return load_config(
                {**self.document["context"], "env": env}, artifacts_root=artifacts_root
            )
        except ConfigError as error:
            raise RefusedError(f"{self.path} does not parse for {env}: {error}") from None

    def with_rollout(
        self, env: str, block: Mapping[str, Any], model: str | None = None
    ) -> DeploymentConfig:
        """This config with one rollout block replaced: the text changes only inside it."""
        document = copy.deepcopy(self.document)
        owner = document["context"]["environments"][env]
        keys = ["context", "environments", env]
        if model is not None:
            owner = owner["models"][model]
            keys += ["models", model]
        owner["rollout"] = dict(block)
        text = tracked.replace_json_value(self.text, [*keys, "rollout"], dict(block))
        return DeploymentConfig(self.path, text, document)


def rollout_path(env: str, model: str | None = None) -> str:
    """Where a model's rollout block sits in cdk.json's context."""
    return f"environments.{env}" + ("" if model is None else f".models.{model}") + ".rollout"


def model_key(config: EnvironmentConfig) -> str | None:
    """None for the environment's first model, else the model's name (see rollout_path)."""
    return None if config.first_model else config.model.model_name


def select_model(environment: EnvironmentConfig, name: str | None) -> EnvironmentConfig:
    """The configuration of model ``name`` (None: the environment's first model)."""
    try:
        return environment.model_named(name)
    except ConfigError as error:
        hint = (
            f"; to canary model version {name}, use --version {name}"
            if name is not None and VERSION_PATTERN.fullmatch(name)
            else ""
        )
        raise RefusedError(f"--{error}{hint}") from None


def read(path: Path) -> DeploymentConfig:
    """The config for reading only (status, compare); an edit uses ``parse_text`` on the
    bytes ``tracked.edit`` read under the lock."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise RefusedError(f"--config {path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise RefusedError(f"--config {path}: not UTF-8 text (byte {error.start})") from None
    return parse_text(path, text)


def parse_text(path: Path, text: str) -> DeploymentConfig:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RefusedError(f"--config {path}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("context"), dict):
        raise RefusedError(f"--config {path}: expected a cdk.json with a 'context' object")
    return DeploymentConfig(path, text, document)

"""Deployment configuration: CDK context in, the frozen types of stacks.settings out.

Context arrives from three places: ``cdk.json`` (JSON values), ``-c key=value`` on the
command line (always strings) and ``cdk.context.json``. Everything is parsed once, from
load_config; constructs receive typed values and never read context. Every error names the key, the
value and what is allowed, because a synth error is the whole user interface.

Shape of the context (docs/configuration.md is the reference, tested against this parser)::

    env, model, model_version, stable_version, canary_weight, alarm_email  # -c overrides
    environments: {<env>: {model_name, runtime, account, region, termination_protection,
                           function: {...}, provisioned_concurrency: {...},
                           warmer: {...}, endpoint: {...}, alarms: {...}, capture: {...},
                           encryption: {customer_managed_key},
                           rollout: {mode, model_version, stable_version, canary_weight,
                                     stable_model_version, deployment},
                           quality_gate: {max_log_loss_increase, max_auc_decrease,
                                          max_brier_increase, max_rmse_increase_fraction},
                           batch_scoring: {enabled, max_concurrency, rows_per_invocation,
                                           tolerated_failure_percentage, input_buckets,
                                           output_buckets}}}

This module reads the top level: it selects the environment and the model the command
line names, merges each further model's settings over the environment's, and assembles one
EnvironmentConfig per model. Scalars are read by stacks.context_values, the service blocks
(function, alarms, capture, ...) by stacks.blocks and the rollout block by
stacks.rollout_block; provisioned-concurrency rules live in stacks.capacity, and a model
version's manifest is read by stacks.model_artifact.

The ``rollout`` block is the committed state of a release; the rollout command
(``python -m tools.rollout``) rewrites it in ``cdk.json``, and the four command-line keys
override it for one synth.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.artifacts import NAME_PATTERN
from serving.runtimes import ModelRuntime
from stacks.blocks import (
    alarm_settings,
    batch_scoring_settings,
    capture_settings,
    default_metrics_namespace,
    drift_settings,
    encryption_settings,
    function_settings,
    provisioned_concurrency_settings,
    quality_gate_settings,
    warmer_settings,
)
from stacks.capacity import check_concurrency, split_provisioned_concurrency
from stacks.context_values import Block, boolean, choice, mapping, only, optional_pattern, text
from stacks.model_artifact import load_model_artifact
from stacks.rollout_block import ROLLOUT_OVERRIDE_KEYS, rollout_settings
from stacks.settings import (
    DEFAULT_ARTIFACTS_ROOT,
    DEFAULT_ENVIRONMENT,
    REPO_ROOT,
    ConfigError,
    EndpointAuth,
    EnvironmentConfig,
    ModelArtifact,
    Rollout,
)

CDK_JSON = REPO_ROOT / "cdk.json"
# The public command-line interface; anything else at the top level is a typo. The three
# rollout keys move one model (-c model=...); alarm_email subscribes every model's topic.
OVERRIDE_KEYS = ("env", "model", *ROLLOUT_OVERRIDE_KEYS, "alarm_email")
TOP_LEVEL_KEYS = (*OVERRIDE_KEYS, "environments")

# Model names are the artifact writer's: one rule for training and deploy.
_MODEL_NAME = NAME_PATTERN
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")


def committed_context() -> dict[str, Any]:
    """The context of the repository's ``cdk.json``, as the tools read it (no ``-c``)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


def load_committed(env: str) -> EnvironmentConfig:
    """Environment ``env`` as the committed ``cdk.json`` configures it."""
    return load_config({**committed_context(), "env": env})


def load_config(
    context: Mapping[str, Any], *, artifacts_root: Path = DEFAULT_ARTIFACTS_ROOT
) -> EnvironmentConfig:
    """Parse the app's whole context into the configuration of the selected environment."""
    unknown = sorted(k for k in context if k not in TOP_LEVEL_KEYS and not _is_cdk_owned(k))
    if unknown:
        raise ConfigError(
            f"unknown context key(s) {', '.join(unknown)}: allowed are "
            f"{', '.join(TOP_LEVEL_KEYS)} (plus CDK's own '@aws-cdk/...' and 'aws:cdk:...' keys)"
        )
    environments = context.get("environments")
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError(
            f"context key 'environments'={environments!r} is not allowed: cdk.json must map "
            "each environment name to its settings"
        )
    env_name = text("env", context.get("env", DEFAULT_ENVIRONMENT))
    if env_name not in environments:
        raise ConfigError(
            f"env={env_name!r} is not a configured environment: use one of "
            f"{', '.join(sorted(environments))}"
        )
    raw = mapping(f"environments.{env_name}", environments[env_name])
    _check_distinct_namespaces(environments)
    at = f"environments.{env_name}"
    models = mapping(f"{at}.models", raw.get("models", {}))
    primary_name = text(f"{at}.model_name", raw.get("model_name", "churn"))
    selected = text("model", context.get("model", primary_name))
    if selected != primary_name and selected not in models:
        raise ConfigError(
            f"model={selected!r} is not a model of environment {env_name!r}: use one of "
            f"{', '.join([primary_name, *models])}"
        )
    # The command-line rollout keys move one model: the one -c model= names.
    overrides = {k: v for k, v in context.items() if k != "model"}
    without = {k: v for k, v in overrides.items() if k not in ROLLOUT_OVERRIDE_KEYS}
    primary = _environment(
        env_name, Block(at, raw), overrides if selected == primary_name else without, artifacts_root
    )
    additional = tuple(
        dataclasses.replace(
            _environment(
                env_name,
                Block(
                    f"{at}.models.{model_name}",
                    _model_settings(at, raw, model_name, models[model_name], primary),
                ),
                overrides if selected == model_name else without,
                artifacts_root,
            ),
            first_model=False,
        )
        for model_name in models
    )
    _check_distinct_models(at, (primary, *additional))
    return dataclasses.replace(primary, additional_models=additional)


# What a model of ``environments.<env>.models`` may set; every other setting is the
# environment's (account, region, protection, encryption, the capture bucket's retention).
_MODEL_KEYS = (
    "runtime", "function", "provisioned_concurrency", "warmer", "endpoint", "alarms",
    "capture", "drift", "quality_gate", "rollout", "batch_scoring",
)  # fmt: skip
_MERGED_BLOCKS = frozenset(_MODEL_KEYS) - {"runtime", "rollout"}


def _model_settings(
    at: str,
    environment: Mapping[str, Any],
    model_name: str,
    raw_model: Any,
    primary: EnvironmentConfig,
) -> dict[str, Any]:
    """A further model's settings: the environment's, with the model's own blocks merged
    key by key over them; its rollout block is its own (required)."""
    where = f"{at}.models.{model_name}"
    if not isinstance(model_name, str) or not _MODEL_NAME.fullmatch(model_name):
        raise ConfigError(
            f"{at}.models key {model_name!r} is not allowed: a model name is lower-case "
            "letters, digits and '-', starting with a letter, at most 40 characters"
        )
    if model_name == primary.model.model_name:
        raise ConfigError(
            f"{where}: {model_name!r} is already the environment's model_name; list only the "
            "further models under 'models'"
        )
    own = mapping(where, raw_model)
    only(where, own, _MODEL_KEYS)
    if "rollout" not in own:
        raise ConfigError(
            f"{where}.rollout is missing: each model has its own rollout block (at least "
            '{"model_version": "v1"})'
        )
    capture = mapping(f"{where}.capture", own.get("capture", {}))
    if "retention_days" in capture:
        raise ConfigError(
            f"{where}.capture.retention_days is not allowed: the capture bucket and its "
            f"retention are the environment's ({at}.capture.retention_days)"
        )
    merged: dict[str, Any] = {
        k: v for k, v in environment.items() if k not in ("models", "rollout", "model_name")
    }
    merged["model_name"] = model_name
    for key, value in own.items():
        if key in _MERGED_BLOCKS:
            merged[key] = {**mapping(f"{at}.{key}", environment.get(key, {})),
                           **mapping(f"{where}.{key}", value)}  # fmt: skip
        else:
            merged[key] = value
    function = dict(merged.get("function", {}))
    if "metrics_namespace" not in mapping(f"{where}.function", own.get("function", {})):
        # Model metrics carry the ModelVersion dimension only: each model its own namespace.
        function["metrics_namespace"] = f"{primary.function.metrics_namespace}/{model_name}"
    merged["function"] = function
    return merged


def _check_distinct_models(at: str, models: tuple[EnvironmentConfig, ...]) -> None:
    seen: dict[str, str] = {}
    for config in models:
        namespace, name = config.function.metrics_namespace, config.model.model_name
        if namespace in seen:
            raise ConfigError(
                f"{at}: models {seen[namespace]!r} and {name!r} both use "
                f"function.metrics_namespace={namespace!r}: each model needs its own (model "
                "metrics carry only the ModelVersion dimension, so their alarms would count "
                "each other's answers)"
            )
        seen[namespace] = name


def _is_cdk_owned(key: str) -> bool:
    # Feature flags ("@aws-cdk/..."), CLI settings ("aws:cdk:...") and cached lookups
    # ("availability-zones:account=...") all contain ':' or start with '@'.
    return key.startswith("@") or ":" in key


_ENVIRONMENT_KEYS = (
    "account", "region", "model_name", "runtime", "termination_protection", "function",
    "provisioned_concurrency", "warmer", "endpoint", "alarms", "capture", "drift", "rollout",
    "quality_gate", "encryption", "models", "batch_scoring",
)  # fmt: skip


def _environment(
    name: str, block: Block, context: Mapping[str, Any], artifacts_root: Path
) -> EnvironmentConfig:
    """One model's configuration from its settings ``block`` (the environment's own, or a
    further model's merged over them), with the command-line values of ``context``."""
    at, raw = block.at, block.raw
    block.only(_ENVIRONMENT_KEYS)
    account = optional_pattern(f"{at}.account", raw.get("account"), _ACCOUNT, "12 digits")
    region = optional_pattern(f"{at}.region", raw.get("region"), _REGION, "e.g. eu-west-1")
    model_name = text(f"{at}.model_name", raw.get("model_name", "churn"))
    if not _MODEL_NAME.fullmatch(model_name):
        raise ConfigError(
            f"{at}.model_name={model_name!r} is not allowed: lower-case letters, digits and "
            "'-', starting with a letter, at most 40 characters"
        )
    runtime = choice(f"{at}.runtime", raw.get("runtime", "sklearn"), ModelRuntime)
    function = function_settings(
        block.sub("function"), default_namespace=default_metrics_namespace(name)
    )
    pc = provisioned_concurrency_settings(block.sub("provisioned_concurrency"))
    rollout = rollout_settings(block.sub("rollout"), context)
    warmer = warmer_settings(block.sub("warmer"), pc)
    endpoint = block.sub("endpoint")
    endpoint.only(("auth",))
    auth = endpoint.choice("auth", "AWS_IAM", EndpointAuth)
    alarms = alarm_settings(block.sub("alarms"), context)
    env_at = f"environments.{name}"
    protection = boolean(
        f"{env_at}.termination_protection", raw.get("termination_protection", False)
    )
    if protection and alarms.email is None:
        # A protected environment is one someone depends on: its alarms must page someone.
        raise ConfigError(
            f"{at}.alarms.email=None is not allowed with {env_at}.termination_protection=true: "
            "the alarms of a protected environment must reach someone. Set "
            f"{at}.alarms.email in cdk.json to an address (confirm the e-mail AWS sends), "
            f"or pass one for this command: -c alarm_email=<on-call address>"
        )
    capture = capture_settings(block.sub("capture"))
    encryption = encryption_settings(Block(env_at, raw).sub("encryption"))
    drift = drift_settings(block.sub("drift"), capture)
    gate = quality_gate_settings(block.sub("quality_gate"))
    batch = batch_scoring_settings(block.sub("batch_scoring"), function)
    check_concurrency(at, function, pc, rollout)
    model = load_model_artifact(artifacts_root, model_name, rollout.model_version, runtime)
    return EnvironmentConfig(
        name=name,
        account=account,
        region=region,
        model=model,
        function=function,
        provisioned_concurrency=pc,
        pc_share=split_provisioned_concurrency(pc, rollout),
        warmer=warmer,
        endpoint_auth=auth,
        alarms=alarms,
        capture=capture,
        drift=drift,
        rollout=rollout,
        termination_protection=protection,
        quality_gate=gate,
        encryption=encryption,
        batch_scoring=batch,
        stable_model=_same_task(
            at, model, _stable_model(artifacts_root, model_name, rollout, runtime)
        ),
    )


def _stable_model(
    artifacts_root: Path, model_name: str, rollout: Rollout, runtime: ModelRuntime
) -> ModelArtifact | None:
    """The stable side's artifact for the traffic gate, when recorded and present here."""
    version = rollout.stable_model_version
    if version is None or version == rollout.model_version:
        return None
    try:
        return load_model_artifact(artifacts_root, model_name, version, runtime)
    except ConfigError:
        # Trained elsewhere and not checked in: the gate scores the candidate's rows only.
        return None


def _same_task(at: str, model: ModelArtifact, stable: ModelArtifact | None) -> ModelArtifact | None:
    # The alias answers callers from both versions: one answer shape, one set of metrics.
    if stable is not None and stable.task != model.task:
        raise ConfigError(
            f"{at}.rollout: model_version {model.model_version} is a {model.task} model but "
            f"stable_model_version {stable.model_version} is {stable.task}: a canary splits "
            "one endpoint's callers between them, so both must answer alike; deploy a model "
            "of another task under another model name"
        )
    return stable


def _check_distinct_namespaces(environments: Mapping[str, Any]) -> None:
    # Model metrics carry only the ModelVersion dimension: two environments in one account
    # and region that share a namespace would count each other's errors in their alarms
    # (and roll each other back in automated mode).
    seen: dict[str, str] = {}
    for name, raw in environments.items():
        function = raw.get("function", {}) if isinstance(raw, Mapping) else {}
        if not isinstance(function, Mapping):
            continue  # the selected environment's parser names this error
        namespace = function.get("metrics_namespace", default_metrics_namespace(name))
        if namespace in seen:
            raise ConfigError(
                f"environments.{seen[namespace]} and environments.{name} both set "
                f"function.metrics_namespace={namespace!r}: each environment needs its own "
                "(their alarms would count each other's errors when they share an account "
                "and region)"
            )
        seen[namespace] = name

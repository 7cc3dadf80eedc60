"""The ``rollout`` block: the committed state of a model's release, and its command-line overrides.

``environments.<env>.rollout`` (or ``...models.<model>.rollout``) says which model version
the candidate runs, which published Lambda version is stable and the candidate's weight
(manual mode), or how CodeDeploy shifts traffic (automated mode). The rollout command
(``python -m tools.rollout``) rewrites the block in ``cdk.json``; ``-c model_version=``,
``-c stable_version=`` and ``-c canary_weight=`` override it for one synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serving.artifacts import VERSION_PATTERN
from stacks.context_values import Block, choice, integer, is_unset, number, only, text
from stacks.settings import (
    DEFAULT_TRAFFIC_SHIFT,
    ConfigError,
    Rollout,
    RolloutMode,
    TrafficShift,
)

# The command-line keys that override the block (for the model -c model= names).
ROLLOUT_OVERRIDE_KEYS = ("model_version", "stable_version", "canary_weight")

ROLLOUT_KEYS = (
    "mode", "model_version", "stable_version", "canary_weight", "stable_model_version",
    "deployment",
)  # fmt: skip


def rollout_settings(block: Block, context: Mapping[str, Any]) -> Rollout:
    """The block, with the command-line values of ``context`` over it."""
    at, raw = block.at, block.raw
    only(at, raw, ROLLOUT_KEYS)
    mode = choice(f"{at}.mode", raw.get("mode", "manual"), RolloutMode)

    # A command-line value replaces the committed one; the error names where it came from.
    def pick(key: str) -> tuple[str, Any]:
        if key in context:
            return key, context[key]
        return f"{at}.{key}", raw.get(key)

    version_key, version_raw = pick("model_version")
    if version_raw is None:
        raise ConfigError(f"{version_key} is not set: name a version under model_artifacts/")
    model_version = text(version_key, version_raw)
    if not VERSION_PATTERN.fullmatch(model_version):
        raise ConfigError(
            f"{version_key}={model_version!r} is not allowed: 'v' and a number, e.g. v2"
        )

    stable_key, stable_raw = pick("stable_version")
    stable = None if is_unset(stable_raw) else integer(stable_key, stable_raw, 1, None)

    weight_key, weight_raw = pick("canary_weight")
    weight = 0.0 if is_unset(weight_raw) else number(weight_key, weight_raw)
    if not 0 <= weight < 1:
        raise ConfigError(
            f"{weight_key}={weight_raw!r} is not allowed: a fraction in [0, 1) of traffic for the "
            "candidate (0.1 = 10 %); to give it all traffic, promote it (drop stable_version)"
        )
    if mode is RolloutMode.AUTOMATED:
        # CodeDeploy owns the weights in this mode; a committed weight would fight it.
        for key, value, is_set in (
            (stable_key, stable_raw, stable is not None),
            (weight_key, weight_raw, weight > 0),
        ):
            if is_set:
                raise ConfigError(
                    f"{key}={value!r} is not allowed with {at}.mode='automated': CodeDeploy "
                    "shifts traffic from the version the alias serves to the one the deploy "
                    f"publishes ({at}.deployment); set it to null (weight 0), or use "
                    "mode 'manual' to route by hand"
                )
    if weight > 0 and stable is None:
        raise ConfigError(
            f"{weight_key}={weight_raw!r} needs stable_version: a canary splits traffic between "
            "the candidate and an already published Lambda version (-c stable_version=N)"
        )

    stable_model_raw = raw.get("stable_model_version")
    stable_model = None
    if not is_unset(stable_model_raw):
        stable_model = text(f"{at}.stable_model_version", stable_model_raw)
        if not VERSION_PATTERN.fullmatch(stable_model):
            raise ConfigError(
                f"{at}.stable_model_version={stable_model!r} is not allowed: 'v' and a number, "
                "e.g. v1, or null"
            )
        if mode is RolloutMode.MANUAL and stable is None:
            raise ConfigError(
                f"{at}.stable_model_version={stable_model!r} names the model of the stable "
                f"version, but {stable_key} is not set: set both (a canary or a rollback) or "
                "neither (python -m tools.rollout promote clears both)"
            )

    deployment_raw = raw.get("deployment")
    traffic_shift = None
    if mode is RolloutMode.AUTOMATED:
        traffic_shift = (
            DEFAULT_TRAFFIC_SHIFT
            if is_unset(deployment_raw)
            else choice(f"{at}.deployment", deployment_raw, TrafficShift)
        )
    elif not is_unset(deployment_raw):
        raise ConfigError(
            f"{at}.deployment={deployment_raw!r} is not allowed with {at}.mode='manual': "
            "it selects how CodeDeploy shifts traffic in mode 'automated'; set it to null "
            "or set the mode to 'automated'"
        )
    return Rollout(
        mode=mode,
        model_version=model_version,
        stable_lambda_version=stable,
        canary_weight=weight,
        stable_model_version=stable_model,
        traffic_shift=traffic_shift,
    )

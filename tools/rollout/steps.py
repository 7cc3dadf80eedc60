"""The rollout steps as pure functions: current rollout block in, new block out, or RefusedError.

States of a manual rollout (``stable_version``/``canary_weight`` in the block):

* steady      no stable version: the alias sends everything to the deployed version;
* canary      a stable version and a weight > 0: the candidate takes that share;
* rolled back a stable version and weight 0: the stable takes everything, the candidate
              stays published without traffic or provisioned concurrency.

In automated mode the block only names the model; CodeDeploy moves the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from serving.artifacts import VERSION_PATTERN
from serving.runtimes import ModelRuntime
from stacks.model_artifact import load_model_artifact
from stacks.settings import ConfigError, Rollout, RolloutMode
from tools.rollout.config_file import RefusedError


class State(StrEnum):
    STEADY = "steady"
    CANARY = "canary"
    ROLLED_BACK = "rolled back"
    AUTOMATED = "automated"


def state_of(rollout: Rollout) -> State:
    if rollout.mode is RolloutMode.AUTOMATED:
        return State.AUTOMATED
    if rollout.stable_lambda_version is None:
        return State.STEADY
    return State.CANARY if rollout.canary_weight > 0 else State.ROLLED_BACK


def check_weight(weight: float) -> float:
    if not math.isfinite(weight) or not 0 < weight < 1:
        raise RefusedError(
            f"weight {weight:g} is not allowed: the candidate's share must be above 0 and "
            "below 1 (0.1 = 10 %); to give it all traffic run `promote`, to take all "
            "traffic away from it run `rollback`"
        )
    return weight


def check_model(artifacts_root: Path, model_name: str, model: str, runtime: ModelRuntime) -> str:
    """The app's own artifact check (manifest, runtime's artifact, checksum, files)."""
    if not VERSION_PATTERN.fullmatch(model):
        raise RefusedError(f"--version {model!r} is not allowed: 'v' and a number, e.g. v2")
    try:
        load_model_artifact(artifacts_root, model_name, model, runtime)
    except ConfigError as error:
        raise RefusedError(f"--version {model!r} cannot be deployed: {error}") from None
    return model


def _updated(block: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    # Existing keys keep their place in the file; new keys go at the end of the block.
    return {**block, **changes}


def start_manual(
    block: Mapping[str, Any],
    rollout: Rollout,
    *,
    model: str,
    weight: float | None,
    stable_lambda_version: int | None,
    stable_model_version: str | None,
) -> dict[str, Any]:
    """A canary of ``model`` next to ``stable_lambda_version`` (resolved by the caller)."""
    state = state_of(rollout)
    if state is State.CANARY:
        raise RefusedError(
            f"a canary is already running: candidate {rollout.model_version} takes "
            f"{rollout.canary_weight:.0%} next to stable version {rollout.stable_lambda_version}; "
            "finish it first with `set-weight`, `promote` or `rollback`"
        )
    if weight is None:
        raise RefusedError(
            "start needs --weight W in manual mode: the candidate's share of traffic, "
            "above 0 and below 1 (e.g. 0.1)"
        )
    check_weight(weight)
    if state is State.STEADY and model in (rollout.model_version, stable_model_version):
        # The deployed template would not change, so the deploy would publish nothing and the
        # candidate would be the stable version itself: Lambda refuses an alias whose routed
        # version is its main version.
        where = (
            "already the configured model (rollout.model_version)"
            if model == rollout.model_version
            else f"the model the stable version {stable_lambda_version} runs "
            "(stack output ModelVersion)"
        )
        raise RefusedError(
            f"--version {model} is {where}: a canary needs another version name. Unchanged, "
            "a deploy publishes no new version (the candidate would be the stable version "
            "itself); retrained under the same name (--force), the rollout could not tell "
            "the two models apart. Train it as a new version and canary that"
        )
    if stable_lambda_version is None:
        raise RefusedError("start needs the stable version (--stable N)")
    if state is State.ROLLED_BACK and stable_lambda_version != rollout.stable_lambda_version:
        raise RefusedError(
            f"--stable {stable_lambda_version} is not allowed after a rollback: the alias serves "
            f"stable version {rollout.stable_lambda_version}, which stays the stable side; leave "
            f"--stable out (or pass {rollout.stable_lambda_version})"
        )
    return _updated(
        block,
        model_version=model,
        stable_version=stable_lambda_version,
        canary_weight=weight,
        stable_model_version=stable_model_version,
    )


def start_automated(
    block: Mapping[str, Any],
    rollout: Rollout,
    *,
    model: str,
    weight: float | None,
    stable_lambda_version: int | None,
) -> dict[str, Any]:
    shift = rollout.traffic_shift
    for flag, value in (("--weight", weight), ("--stable", stable_lambda_version)):
        if value is not None:
            raise RefusedError(
                f"{flag} {value:g} is not allowed in automated mode (rollout.mode='automated'): "
                f"CodeDeploy shifts traffic by rollout.deployment={shift} from the version the "
                "alias serves; start only takes --version"
            )
    if model == rollout.model_version:
        raise RefusedError(
            f"--version {model} is already the configured model (rollout.model_version); "
            "name the model version to deploy next"
        )
    return _updated(block, model_version=model, stable_model_version=rollout.model_version)


def set_weight(block: Mapping[str, Any], rollout: Rollout, weight: float) -> dict[str, Any]:
    _refuse_in_state(
        rollout,
        {
            State.AUTOMATED: f"set-weight {weight:g} is not allowed in automated mode "
            f"(rollout.mode='automated'): CodeDeploy sets the weights "
            f"(rollout.deployment={rollout.traffic_shift})",
            State.STEADY: f"set-weight {weight:g} needs a canary, and none is configured "
            "(rollout.stable_version is null): run `start --version vN --weight W` first",
        },
    )
    check_weight(weight)
    return _updated(block, canary_weight=weight)


def promote(block: Mapping[str, Any], rollout: Rollout) -> dict[str, Any]:
    _refuse_in_state(
        rollout,
        {
            State.AUTOMATED: "promote is not allowed in automated mode (rollout.mode='automated'): "
            "CodeDeploy promotes the new version by itself when the shift ends without an alarm",
            State.STEADY: "promote needs a canary, and none is configured (rollout.stable_version "
            f"is null): {rollout.model_version} already takes all traffic",
            State.ROLLED_BACK: "promote is not allowed after a rollback (rollout.canary_weight=0): "
            f"candidate {rollout.model_version} takes no traffic, so nothing shows it is safe; "
            "run `set-weight W` to canary it again first",
        },
    )
    # Same model_version: the candidate is the version already deployed, so the deploy
    # moves the alias and provisioned concurrency but publishes nothing new.
    return _updated(block, stable_version=None, canary_weight=0, stable_model_version=None)


def rollback(block: Mapping[str, Any], rollout: Rollout) -> dict[str, Any]:
    _refuse_in_state(
        rollout,
        {
            State.AUTOMATED: "rollback is not allowed in automated mode "
            "(rollout.mode='automated'): CodeDeploy rolls back by itself when an alarm fires "
            "during the shift; to leave a finished deployment, run "
            "`start --version <previous model version>`",
            State.STEADY: "rollback needs a canary, and none is configured "
            f"(rollout.stable_version is null): {rollout.model_version} takes all traffic; to "
            "go back to an earlier model, canary it like any other: "
            "`start --version vN --weight W`",
            State.ROLLED_BACK: "already rolled back: stable version "
            f"{rollout.stable_lambda_version} takes all traffic (rollout.canary_weight=0)",
        },
    )
    return _updated(block, canary_weight=0)


def _refuse_in_state(rollout: Rollout, refusals: Mapping[State, str]) -> None:
    """Refuses the step with the message written for the rollout's state, if there is one."""
    message = refusals.get(state_of(rollout))
    if message is not None:
        raise RefusedError(message)

"""Say in words what a configuration routes where, and how to apply it."""

from __future__ import annotations

import shlex
from pathlib import Path

from stacks.settings import ALIAS_NAME, EnvironmentConfig, TrafficShift
from tools.rollout.steps import State, state_of

SHIFTS = {
    TrafficShift.CANARY_10_5MIN: "10 % for 5 minutes, then 100 %",
    TrafficShift.CANARY_10_15MIN: "10 % for 15 minutes, then 100 %",
    TrafficShift.LINEAR_10_EVERY_1MIN: "10 % more every minute (10 minutes to 100 %)",
    TrafficShift.LINEAR_10_EVERY_3MIN: "10 % more every 3 minutes (30 minutes to 100 %)",
    TrafficShift.ALL_AT_ONCE: "100 % at once",
}
ALARMS = "the LatencyP99, Errors or Throttles alarm"


def routing(config: EnvironmentConfig) -> list[str]:
    """The alias routing and provisioned concurrency after a deploy of ``config``."""
    rollout = config.rollout
    name = config.model.model_name
    candidate = f"{name} {rollout.model_version}"
    stable_model = (
        f"{name} {rollout.stable_model_version}" if rollout.stable_model_version else None
    )
    pc = config.pc_share
    total = config.provisioned_concurrency.total
    scaling = config.provisioned_concurrency.autoscaling
    state = state_of(rollout)
    lines = [f"state: {state}"]
    if state is State.AUTOMATED:
        shift = rollout.traffic_shift
        assert shift is not None  # the parser sets it in automated mode
        previous = stable_model or "the model it runs now"
        lines += [
            f"{ALIAS_NAME} alias: when a deploy publishes a new version, CodeDeploy shifts "
            f"traffic from the version the alias serves ({previous}) to the new one "
            f"({candidate}): {SHIFTS[shift]}; it rolls back by itself if {ALARMS} fires",
            f"provisioned concurrency: {_pc(total, scaling is not None)} on the new version "
            "before the shift starts; the old version keeps its allocation until the shift "
            "has finished"
            if total
            else "provisioned concurrency: none",
        ]
        return lines
    stable_label = f"Lambda version {rollout.stable_lambda_version}" + (
        f" running {stable_model}" if stable_model else " (model not recorded)"
    )
    if state is State.STEADY:
        lines.append(f"{ALIAS_NAME} alias: 100 % -> the deployed version, running {candidate}")
    elif state is State.CANARY:
        weight = rollout.canary_weight
        lines += [
            f"{ALIAS_NAME} alias: {1 - weight:6.1%} -> stable = {stable_label}",
            f"{' ' * len(ALIAS_NAME)}        {weight:6.1%} -> candidate = {candidate} "
            "(the version the deploy publishes)",
        ]
    else:
        lines += [
            f"{ALIAS_NAME} alias: 100 % -> stable = {stable_label}",
            f"candidate = {candidate}: published, takes no traffic",
        ]
    if not total:
        lines.append("provisioned concurrency: none")
    else:
        parts = []
        if pc.stable:
            parts.append(f"stable version {rollout.stable_lambda_version}: {pc.stable}")
        if pc.candidate:
            parts.append(f"candidate: {pc.candidate}")
        ceiling = ""
        if scaling is not None:
            ceilings = [
                f"{side} {n}"
                for side, n in (("stable", pc.stable_max), ("candidate", pc.candidate_max))
                if n
            ]
            ceiling = f"; autoscaling up to {', '.join(ceilings)}"
        lines.append(f"provisioned concurrency (total {total}): {', '.join(parts)}{ceiling}")
    return lines


def _pc(total: int, autoscaling: bool) -> str:
    return f"{total}" + (" (autoscaled)" if autoscaling else "")


def next_steps(config: EnvironmentConfig) -> list[tuple[str, str]]:
    """(rollout command, what it does) for the steps that make sense from here."""
    return {
        State.STEADY: [("start --version vN --weight W", "canary a new model")],
        State.CANARY: [
            ("set-weight W", "ramp"),
            ("compare", "numbers for the decision"),
            ("promote", "candidate takes all traffic"),
            ("rollback", "stable takes all traffic back"),
        ],
        State.ROLLED_BACK: [
            ("set-weight W", "canary the same candidate again"),
            ("start --version vN --weight W", "a new candidate; the stable version stays"),
        ],
        State.AUTOMATED: [("start --version vN", "the next deploy shifts traffic to it")],
    }[state_of(config.rollout)]


def cdk_commands(config_path: Path, env: str) -> list[str]:
    """The exact commands that apply the committed configuration."""
    where = config_path.resolve().parent
    prefix = "" if where == Path.cwd().resolve() else f"cd {shlex.quote(str(where))} && "
    return [
        # The pinned CLI's diff has no --all: it diffs every stack unless one is named.
        f"{prefix}npx cdk diff -c env={env}",
        f"{prefix}npx cdk deploy --all -c env={env}",
    ]

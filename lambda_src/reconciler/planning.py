"""What to change: the desired allocations (from the resource properties) against what
the account holds, as a ``Plan`` for one of the two phases.

* ``scale_up`` (before the alias moves): raise each desired version to at least its
  share, and a version about to take more traffic to its share of the capacity serving
  now (bounded by its autoscaling maximum), so that a version taking over from an
  autoscaled one is not left with the configured minimum; register the scalable targets
  without lowering a maximum. Release versions that are neither desired nor routed by the
  alias now (that cleans up after a failed deploy: CloudFormation's rollback re-runs
  scale_up with the previous allocation);
* ``settle`` (after the alias moved): set each desired version to its share (keeping a
  higher, autoscaled allocation when autoscaling is on), register the targets exactly, and
  release every other version the alias does not route.

Only a version whose traffic is about to grow is ``required``: it must be READY before the
alias moves, or the deploy fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCALE_UP = "scale_up"
SETTLE = "settle"


@dataclass(frozen=True)
class Allocation:
    """A desired version's share of executions, its autoscaling maximum, its traffic weight."""

    executions: int
    maximum: int
    weight: float


def check_phase(phase: str) -> None:
    if phase not in (SCALE_UP, SETTLE):
        raise ValueError(f"Phase={phase!r} is not allowed: use {SCALE_UP!r} or {SETTLE!r}")


def desired_allocations(properties: Mapping[str, Any]) -> dict[str, Allocation]:
    # CloudFormation passes every property value as a string. Maximum and Weight are
    # absent in templates of the previous release (a rollback may send those).
    allocations = {}
    for item in properties.get("Allocations", []):
        executions = int(item["Executions"])
        if executions <= 0:
            continue
        allocations[str(item["Qualifier"])] = Allocation(
            executions=executions,
            maximum=max(executions, int(item.get("Maximum", executions))),
            weight=float(item.get("Weight", 1)),
        )
    return allocations


def target_utilization(properties: Mapping[str, Any]) -> float | None:
    autoscaling = properties.get("Autoscaling")
    if not isinstance(autoscaling, Mapping) or "TargetUtilization" not in autoscaling:
        return None
    return float(autoscaling["TargetUtilization"])


@dataclass(frozen=True)
class Plan:
    # Qualifier -> executions, and whether the deploy must fail if it is not READY.
    puts: dict[str, int]
    required: frozenset[str]
    # Qualifier -> (min, max) to register; versions to deregister and release; versions
    # that keep their allocation but lose their target (autoscaling switched off).
    register: dict[str, tuple[int, int]]
    release: list[str]
    deregister: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data, for the log."""
        return {
            "puts": self.puts,
            "required": sorted(self.required),
            "register": self.register,
            "release": self.release,
            "deregister": self.deregister,
        }


def plan(
    phase: str,
    current: Mapping[str, int],
    desired: Mapping[str, Allocation],
    *,
    routed: Mapping[str, float],
    autoscaling: bool,
    targets: Mapping[str, tuple[int, int]] = {},
) -> Plan:
    """What to change, from the allocations now (qualifier -> requested executions)."""
    check_phase(phase)
    release = sorted(q for q in set(current) | set(targets) if q not in desired and q not in routed)
    # Autoscaling switched off: the targets go, the allocations stay as configured.
    deregister = [] if autoscaling else sorted(q for q in targets if q not in release)
    puts: dict[str, int] = {}
    required = set()
    register: dict[str, tuple[int, int]] = {}
    if phase == SCALE_UP:
        # The capacity serving the alias's traffic now; a version taking a larger share
        # takes that share of it, so promote onto an autoscaled stable side stays warm.
        serving = sum(current.get(q, 0) for q in routed)
        for qualifier, allocation in desired.items():
            goal = allocation.executions
            if autoscaling:
                goal = max(goal, min(allocation.maximum, math.ceil(serving * allocation.weight)))
            if current.get(qualifier, 0) < goal:
                puts[qualifier] = goal
                if routed.get(qualifier, 0.0) < allocation.weight:
                    required.add(qualifier)
            if autoscaling:
                # Never lower a maximum before the alias moves.
                previous_max = targets.get(qualifier, (0, 0))[1]
                register[qualifier] = (
                    allocation.executions,
                    max(allocation.maximum, previous_max),
                )
    else:
        for qualifier, allocation in desired.items():
            now = current.get(qualifier)
            if now != allocation.executions and not (
                autoscaling and now is not None and now > allocation.executions
            ):
                puts[qualifier] = allocation.executions
            if autoscaling:
                register[qualifier] = (allocation.executions, allocation.maximum)
    register = {q: r for q, r in register.items() if targets.get(q) != r}
    return Plan(
        puts=puts,
        required=frozenset(required),
        register=register,
        release=release,
        deregister=deregister,
    )

"""Provisioned-concurrency policy: how the total is shared, and what must be reserved.

Lambda refuses provisioned concurrency on an alias with routing, so each version behind
the alias gets its own share (the reconciler in lambda_src/reconciler
applies it); these rules decide the shares and check the function's reserved concurrency
against what the rollout steps allocate at once.
"""

from __future__ import annotations

import math

from stacks.settings import (
    ConfigError,
    FunctionSettings,
    ProvisionedConcurrencySettings,
    ProvisionedConcurrencyShare,
    Rollout,
)


def split_provisioned_concurrency(
    pc: ProvisionedConcurrencySettings, rollout: Rollout
) -> ProvisionedConcurrencyShare:
    """Share the total between candidate and stable in proportion to their traffic.

    Each side that takes traffic gets at least one, so neither side of a canary serves its
    first requests cold; ``load_config`` has already refused a total too small for that.
    """
    ceiling = pc.autoscaling.max_total if pc.autoscaling else pc.total
    if pc.total == 0:
        return ProvisionedConcurrencyShare(0, 0, 0, 0)
    if rollout.stable_lambda_version is None:
        return ProvisionedConcurrencyShare(pc.total, 0, ceiling, 0)
    if rollout.canary_weight == 0:
        return ProvisionedConcurrencyShare(0, pc.total, 0, ceiling)
    candidate = min(pc.total - 1, max(1, round(pc.total * rollout.canary_weight)))
    stable = pc.total - candidate
    candidate_max = max(candidate, math.ceil(ceiling * rollout.canary_weight))
    stable_max = max(stable, math.ceil(ceiling * (1 - rollout.canary_weight)))
    return ProvisionedConcurrencyShare(candidate, stable, candidate_max, stable_max)


def check_concurrency(
    at: str, function: FunctionSettings, pc: ProvisionedConcurrencySettings, rollout: Rollout
) -> None:
    if rollout.is_canary and pc.total == 1:
        raise ConfigError(
            f"{at}.provisioned_concurrency.total=1 cannot keep both sides of a canary warm: "
            "each version that takes traffic gets at least 1, so use 0 or at least 2"
        )
    reserved = function.reserved_concurrency
    if reserved is None:
        return
    # Lambda refuses provisioned concurrency beyond the function's reserved concurrency,
    # summed over all versions: check what can be allocated at the same time.
    if pc.autoscaling is not None:
        ceiling_key, ceiling = (
            f"{at}.provisioned_concurrency.autoscaling.max_total",
            pc.autoscaling.max_total,
        )
    else:
        ceiling_key, ceiling = f"{at}.provisioned_concurrency.total", pc.total
    # The version that takes over all traffic (a promote, the end of a CodeDeploy shift)
    # is raised towards the ceiling before the version it replaces is released: for a
    # while both hold up to the ceiling.
    needed = 2 * ceiling
    why = (
        f"{ceiling_key}={ceiling}: at a promote or a CodeDeploy shift the version taking over "
        f"rises up to {ceiling} before the one it replaces releases its up to {ceiling}, "
        f"2 x {ceiling} = {needed}"
    )
    if needed > reserved:
        raise ConfigError(
            f"{at}.function.reserved_concurrency={reserved} is below the provisioned "
            f"concurrency that can be allocated at once ({why}): allowed is at least "
            f"{needed}, or null (no reservation)"
        )

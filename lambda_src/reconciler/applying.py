"""Carry out a ``Plan``: release, deregister, put, wait until READY, register.

Failure policy: only a ``required`` put (a version whose traffic is about to grow) raises,
and so fails the deploy: it must be warm before the alias moves. Everything else
(releasing, lowering, a raise for a version that already carries its traffic, as on a
rollback) is best effort: logged and reported in the ``Outcome``, never raised, so that no
cleanup can fail a deploy or hold a rollback in UPDATE_ROLLBACK_FAILED; the next deploy's
reconciliation picks up what is left. An allocation in progress is waited for before it is
replaced or deleted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.calls import (
    NOT_FOUND,
    POLL_SECONDS,
    Clients,
    Clock,
    OutOfTimeError,
    call,
    is_error,
)
from reconciler.planning import Allocation, Plan
from reconciler.reading import Current, scalable_target

POLICY_NAME = "provisioned-concurrency-utilization"
PREDEFINED_METRIC = "LambdaProvisionedConcurrencyUtilization"


@dataclass
class Outcome:
    """What was done and what was left for a later deploy (reported, not failed)."""

    puts: dict[str, int] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    registered: dict[str, tuple[int, int]] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)


def apply(
    clients: Clients,
    clock: Clock,
    function_name: str,
    change: Plan,
    *,
    current: Current,
    desired: Mapping[str, Allocation],
    utilization: float | None,
    wait_ready: bool,
) -> Outcome:
    outcome = Outcome()
    for qualifier in [*change.release, *change.deregister]:
        keep = qualifier in change.deregister
        if (
            _best_effort(
                outcome,
                qualifier,
                lambda q=qualifier, k=keep: _release(  # type: ignore[misc]
                    clients, clock, function_name, q, current, keep_allocation=k
                ),
            )
            and not keep
        ):
            outcome.released.append(qualifier)
    for qualifier, executions in change.puts.items():
        put = _put(clients.lambda_, clock, function_name, qualifier, executions, current)
        if qualifier in change.required:
            put()
            outcome.puts[qualifier] = executions
        elif _best_effort(outcome, qualifier, put):
            outcome.puts[qualifier] = executions
    if wait_ready:
        _wait_ready(clients.lambda_, clock, function_name, change, outcome)
    for qualifier, (minimum, maximum) in change.register.items():
        if _best_effort(
            outcome,
            qualifier,
            functools.partial(
                _register,
                clients.scaling,
                clock,
                function_name,
                qualifier,
                minimum,
                maximum,
                utilization,
            ),
        ):
            outcome.registered[qualifier] = (minimum, maximum)
    return outcome


def _best_effort(outcome: Outcome, qualifier: str, action: Callable[[], None]) -> bool:
    try:
        action()
    except Exception as error:
        outcome.left.append(f"{qualifier}: {type(error).__name__}: {error}"[:300])
        print(json.dumps({"left_for_next_deploy": qualifier, "error": str(error)[:300]}))
        return False
    return True


def _wait_until_settled(client: Any, clock: Clock, function_name: str, qualifier: str) -> None:
    """Wait while the qualifier's allocation is IN_PROGRESS (Lambda answers 409 meanwhile)."""
    while True:
        try:
            status = call(
                clock,
                client.get_provisioned_concurrency_config,
                FunctionName=function_name,
                Qualifier=qualifier,
            )
        except Exception as error:
            if is_error(error, NOT_FOUND):
                return
            raise
        if status["Status"] != "IN_PROGRESS":
            return
        if clock.expired():
            raise OutOfTimeError(f"{function_name}:{qualifier} stays IN_PROGRESS")
        clock.sleep(POLL_SECONDS)


def _put(
    client: Any, clock: Clock, function_name: str, qualifier: str, executions: int, current: Current
) -> Callable[[], None]:
    def put() -> None:
        if qualifier in current.in_progress:
            _wait_until_settled(client, clock, function_name, qualifier)
        call(
            clock,
            client.put_provisioned_concurrency_config,
            FunctionName=function_name,
            Qualifier=qualifier,
            ProvisionedConcurrentExecutions=executions,
        )

    return put


def _release(
    clients: Clients,
    clock: Clock,
    function_name: str,
    qualifier: str,
    current: Current,
    *,
    keep_allocation: bool,
) -> None:
    # Target first: a registered target would otherwise put the allocation back.
    try:
        call(
            clock,
            clients.scaling.deregister_scalable_target,
            **scalable_target(function_name, qualifier),
        )
    except Exception as error:
        if not is_error(error, NOT_FOUND):
            raise
    if keep_allocation or qualifier not in current.requested:
        return
    if qualifier in current.in_progress:
        _wait_until_settled(clients.lambda_, clock, function_name, qualifier)
    try:
        call(
            clock,
            clients.lambda_.delete_provisioned_concurrency_config,
            FunctionName=function_name,
            Qualifier=qualifier,
        )
    except Exception as error:
        # A version deleted with its allocation leaves nothing to release.
        if not is_error(error, NOT_FOUND):
            raise


def _register(
    scaling: Any,
    clock: Clock,
    function_name: str,
    qualifier: str,
    minimum: int,
    maximum: int,
    utilization: float | None,
) -> None:
    target = scalable_target(function_name, qualifier)
    # Registering an existing target updates it; Lambda's service-linked role is used.
    call(
        clock, scaling.register_scalable_target, MinCapacity=minimum, MaxCapacity=maximum, **target
    )
    if utilization is not None:
        call(
            clock,
            scaling.put_scaling_policy,
            PolicyName=POLICY_NAME,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": utilization,
                "PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED_METRIC},
            },
            **target,
        )


def _wait_ready(
    client: Any, clock: Clock, function_name: str, change: Plan, outcome: Outcome
) -> None:
    pending = {q for q in change.puts if q in change.required or q in outcome.puts}
    while pending:
        for qualifier in sorted(pending):
            status = call(
                clock,
                client.get_provisioned_concurrency_config,
                FunctionName=function_name,
                Qualifier=qualifier,
            )
            if status["Status"] == "READY":
                pending.discard(qualifier)
            elif status["Status"] == "FAILED":
                reason = (
                    f"provisioned concurrency on {function_name}:{qualifier} failed: "
                    f"{status.get('StatusReason', 'no reason given')}"
                )
                if qualifier in change.required:
                    raise RuntimeError(reason)
                outcome.left.append(reason)
                pending.discard(qualifier)
        if pending:
            if clock.expired():
                required = sorted(pending & change.required)
                if required:
                    raise OutOfTimeError(
                        f"provisioned concurrency on {function_name}:{required} is not READY "
                        "yet; the deploy rolls back rather than shift traffic cold"
                    )
                outcome.left.extend(f"{q}: not READY yet" for q in sorted(pending))
                return
            clock.sleep(POLL_SECONDS)

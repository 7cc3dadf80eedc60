"""Custom resource: provisioned concurrency and its autoscaling on the function's versions.

Why not ``AWS::Lambda::Version.ProvisionedConcurrencyConfig``: that property is
create-only (changing the canary weight would replace the version), and it can only
reach the version this template publishes, not the stable version from an earlier
deploy. Why not ``AWS::ApplicationAutoScaling::ScalableTarget``: its ResourceId names a
version (``function:F:7``) and is create-only, so the target of one version passes from
one logical resource to another between deploys (the candidate of one deploy is the
stable of the next): CloudFormation creates the new resource while the old one still
holds the target ("already exists"), and the old one's deletion in the cleanup phase
would deregister what the new one registered. Deregistering a target also leaves its
provisioned concurrency behind (aws-cdk#31507). So this one function owns every
allocation and every scalable target of the inference function, keyed by version, and
reconciles them in two phases, ``scale_up`` before the alias moves and ``settle`` after
(planning.py says what each does).

This module is the CloudFormation entry: ``handle`` reads what the account holds
(reading.py), plans (planning.py) and applies the plan (applying.py, whose docstring
gives the failure policy); every call is retried within the time budget (calls.py).
``handler`` answers CloudFormation. A Delete never fails: its reads, too, are best
effort, and it answers SUCCESS with a reason naming what was left (a FAILED delete holds
the stack in DELETE_FAILED).

Only the standard library and the boto3 that the Lambda Python runtime ships are used.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from custom_resource.response import REASON_MAX_CHARS, respond
from reconciler.applying import Outcome, apply
from reconciler.calls import POLL_SECONDS, Clients, Clock
from reconciler.planning import (
    SCALE_UP,
    check_phase,
    desired_allocations,
    plan,
    target_utilization,
)
from reconciler.reading import Current, current_allocations, registered_targets, routed_weights

# Leave time to send the response before Lambda's own timeout cuts the function off.
RESPONSE_MARGIN_MS = 30_000


def handle(event: Mapping[str, Any], clients: Clients, clock: Clock) -> Outcome:
    properties = event["ResourceProperties"]
    function_name = str(properties["FunctionName"])
    phase = str(properties["Phase"])
    check_phase(phase)
    deleting = event["RequestType"] == "Delete"
    if deleting and phase == SCALE_UP:
        return Outcome()
    utilization = target_utilization(properties)
    desired = {} if deleting else desired_allocations(properties)
    # On Delete every call is best effort (a FAILED delete leaves the stack in
    # DELETE_FAILED, or a rollback in UPDATE_ROLLBACK_FAILED): a read that fails is
    # reported and its answer taken as "nothing known", which releases nothing it names.
    left: list[str] = []
    read = functools.partial(_read, left) if deleting else _read_or_raise
    current = read("list provisioned concurrency", Current({}),
                   lambda: current_allocations(clients.lambda_, clock, function_name))  # fmt: skip
    alias_name = properties.get("AliasName")
    # Without the alias name (or its routing) no version is known to be idle: release
    # nothing that holds an allocation.
    unknown_routing = dict.fromkeys(current.requested, 1.0)
    routed = (
        read("get alias", None,
             lambda: routed_weights(clients.lambda_, clock, function_name, str(alias_name)))
        if alias_name
        else None
    )  # fmt: skip
    if routed is None:
        routed = unknown_routing
    targets = read("describe scalable targets", {},
                   lambda: registered_targets(clients.scaling, clock, function_name))  # fmt: skip
    if deleting and routed is unknown_routing:
        # A target with no known routing stays too (its version may carry traffic).
        routed = {**routed, **dict.fromkeys(targets, 1.0)}
    change = plan(
        phase,
        current.requested,
        desired,
        routed=routed,
        autoscaling=utilization is not None and not deleting,
        targets=targets,
    )
    print(json.dumps({"phase": phase, "request": event["RequestType"], "plan": change.as_dict()}))
    outcome = apply(
        clients,
        clock,
        function_name,
        change,
        current=current,
        desired=desired,
        utilization=utilization,
        wait_ready=phase == SCALE_UP,
    )
    outcome.left[:0] = left
    print(json.dumps({"phase": phase, "outcome": outcome.__dict__}))
    return outcome


def _read_or_raise(what: str, default: Any, read: Callable[[], Any]) -> Any:
    del what, default
    return read()


def _read(left: list[str], what: str, default: Any, read: Callable[[], Any]) -> Any:
    """``read()``, or ``default`` with the error added to ``left`` (Delete only)."""
    try:
        return read()
    except Exception as error:
        left.append(f"{what}: {type(error).__name__}: {error}"[:300])
        print(json.dumps({"left_on_delete": what, "error": str(error)[:300]}))
        return default


def handler(event: Mapping[str, Any], context: Any) -> None:
    import boto3  # the runtime's boto3; imported here so tests of the logic need none

    status, reason = "SUCCESS", "provisioned concurrency reconciled"
    properties = event.get("ResourceProperties", {})
    physical_id = f"{properties.get('FunctionName', 'unknown')}:{properties.get('Phase', '')}"
    clock = Clock(
        expired=lambda: (
            context.get_remaining_time_in_millis() < RESPONSE_MARGIN_MS + POLL_SECONDS * 1000
        )
    )
    deleting = event.get("RequestType") == "Delete"
    try:
        outcome = handle(
            event,
            Clients(boto3.client("lambda"), boto3.client("application-autoscaling")),
            clock,
        )
        if outcome.left:
            what = "left on delete" if deleting else "left for the next deploy"
            reason = f"reconciled; {what}: {'; '.join(outcome.left)}"[:REASON_MAX_CHARS]
    except Exception as error:  # every failure must reach CloudFormation, or it waits an hour
        # A Delete always succeeds: FAILED would hold the stack in DELETE_FAILED (or a
        # rollback in UPDATE_ROLLBACK_FAILED) for what is only a cleanup.
        status = "SUCCESS" if deleting else "FAILED"
        reason = f"{'deleted; left: ' if deleting else ''}{type(error).__name__}: {error}"[
            :REASON_MAX_CHARS
        ]
        print(reason)
    respond(event, status, reason, physical_id)

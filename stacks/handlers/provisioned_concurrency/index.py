"""Custom resource: provisioned concurrency on the function's published versions.

Why not ``AWS::Lambda::Version.ProvisionedConcurrencyConfig``: that property is
create-only (changing the canary weight would replace the version), and it can only
reach the version this template publishes, not the stable version from an earlier
deploy. Why not Application Auto Scaling alone: deregistering a scalable target leaves
its provisioned concurrency behind (aws-cdk#31507), and versions superseded by a deploy
keep theirs forever. So one function owns all provisioned concurrency of the inference
function and reconciles it to the desired allocation in two phases:

* ``scale_up`` (before the alias moves): raise each desired version to at least its
  share and wait until it is READY, so no version receives traffic before it is warm;
  also release versions that are neither desired nor routed by the alias right now.
  That is what cleans up after a failed deploy: CloudFormation's rollback re-runs
  scale_up with the previous allocation (settle never ran), by then the alias (or
  CodeDeploy's rollback) routes only the previous versions, and the version the failed
  deploy raised would otherwise keep its provisioned concurrency;
* ``settle`` (after the alias moved): set each desired version to exactly its share and
  delete provisioned concurrency on every other version of the function.

Only the standard library and the boto3 that the Lambda Python runtime ships are used.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

SCALE_UP = "scale_up"
SETTLE = "settle"
POLL_SECONDS = 10
# Leave time to send the response before Lambda's own timeout cuts the function off.
RESPONSE_MARGIN_MS = 30_000


@dataclass(frozen=True)
class Plan:
    puts: dict[str, int]
    deletes: list[str]


def plan(
    phase: str,
    existing: Mapping[str, int],
    desired: Mapping[str, int],
    *,
    keep_higher: bool,
    routed: Collection[str] = (),
) -> Plan:
    """What to change, from what is allocated now (qualifier -> executions).

    ``routed``: the versions the alias sends traffic to now; scale_up never releases them.
    """
    if phase == SCALE_UP:
        return Plan(
            {q: n for q, n in desired.items() if existing.get(q, 0) < n},
            sorted(q for q in existing if q not in desired and q not in routed),
        )
    if phase != SETTLE:
        raise ValueError(f"Phase={phase!r} is not allowed: use {SCALE_UP!r} or {SETTLE!r}")
    puts = {
        q: n
        for q, n in desired.items()
        if existing.get(q) != n and not (keep_higher and existing.get(q, 0) > n)
    }
    return Plan(puts, sorted(q for q in existing if q not in desired))


def desired_allocations(properties: Mapping[str, Any]) -> dict[str, int]:
    # CloudFormation passes every property value as a string.
    return {
        str(item["Qualifier"]): int(item["Executions"])
        for item in properties.get("Allocations", [])
        if int(item["Executions"]) > 0
    }


def existing_allocations(client: Any, function_name: str) -> dict[str, int]:
    allocations: dict[str, int] = {}
    paginator = client.get_paginator("list_provisioned_concurrency_configs")
    for page in paginator.paginate(FunctionName=function_name):
        for config in page.get("ProvisionedConcurrencyConfigs", []):
            qualifier = config["FunctionArn"].rsplit(":", 1)[1]
            allocations[qualifier] = int(config["RequestedProvisionedConcurrentExecutions"])
    return allocations


def routed_versions(client: Any, function_name: str, alias_name: str) -> set[str]:
    """The versions ``alias_name`` sends traffic to; empty before the alias exists."""
    try:
        alias = client.get_alias(FunctionName=function_name, Name=alias_name)
    except client.exceptions.ResourceNotFoundException:
        return set()
    weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
    return {str(alias["FunctionVersion"]), *map(str, weights)}


def apply(client: Any, function_name: str, change: Plan, deadline: Callable[[], bool]) -> None:
    for qualifier in change.deletes:
        # A version deleted with its allocation leaves nothing to release.
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_provisioned_concurrency_config(
                FunctionName=function_name, Qualifier=qualifier
            )
    for qualifier, executions in change.puts.items():
        client.put_provisioned_concurrency_config(
            FunctionName=function_name,
            Qualifier=qualifier,
            ProvisionedConcurrentExecutions=executions,
        )
    pending = set(change.puts)
    while pending:
        for qualifier in sorted(pending):
            status = client.get_provisioned_concurrency_config(
                FunctionName=function_name, Qualifier=qualifier
            )
            if status["Status"] == "READY":
                pending.discard(qualifier)
            elif status["Status"] == "FAILED":
                raise RuntimeError(
                    f"provisioned concurrency on {function_name}:{qualifier} failed: "
                    f"{status.get('StatusReason', 'no reason given')}"
                )
        if pending:
            if deadline():
                raise TimeoutError(
                    f"provisioned concurrency on {function_name}:{sorted(pending)} "
                    "is not READY yet; the deploy rolls back rather than shift traffic cold"
                )
            time.sleep(POLL_SECONDS)


def handle(event: Mapping[str, Any], client: Any, deadline: Callable[[], bool]) -> str:
    properties = event["ResourceProperties"]
    function_name = str(properties["FunctionName"])
    phase = str(properties["Phase"])
    keep_higher = str(properties.get("KeepHigher", "false")).lower() == "true"
    desired = {} if event["RequestType"] == "Delete" else desired_allocations(properties)
    if event["RequestType"] == "Delete" and phase == SCALE_UP:
        return function_name
    existing = existing_allocations(client, function_name)
    alias_name = properties.get("AliasName")
    routed: Collection[str] = ()
    if phase == SCALE_UP:
        # Without the alias name no version is known to be idle: release nothing.
        routed = routed_versions(client, function_name, str(alias_name)) if alias_name else existing
    change = plan(phase, existing, desired, keep_higher=keep_higher, routed=routed)
    print(json.dumps({"phase": phase, "puts": change.puts, "deletes": change.deletes}))
    apply(client, function_name, change, deadline)
    return function_name


def handler(event: Mapping[str, Any], context: Any) -> None:
    import boto3  # the runtime's boto3; imported here so tests of the logic need none

    status, reason = "SUCCESS", "provisioned concurrency reconciled"
    properties = event.get("ResourceProperties", {})
    physical_id = f"{properties.get('FunctionName', 'unknown')}:{properties.get('Phase', '')}"
    try:
        handle(
            event,
            boto3.client("lambda"),
            lambda: (
                context.get_remaining_time_in_millis() < RESPONSE_MARGIN_MS + POLL_SECONDS * 1000
            ),
        )
    except Exception as error:  # every failure must reach CloudFormation, or it waits an hour
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:1000]
        print(reason)
    _respond(event, status, reason, physical_id)


def _respond(event: Mapping[str, Any], status: str, reason: str, physical_id: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the pre-signed https URL CloudFormation gave
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()

"""What would fail on deploy, or leave the service worse, in one ``Deploy``.

* an identity claimed twice, or passed from one logical ID to another (or kept by a
  replacement): the create collides with the resource that still holds it ("already
  exists"), and the cleanup of the old one would remove what the new one owns;
* a resource that must outlive the template deleted (published versions, the bucket);
* a reference to a version that was never published or was deleted;
* capacity ordering: provisioned concurrency is ready before the alias moves (the alias
  waits for the scale-up) and released only after it (the settle waits for the alias).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tools.transitions.changes import (
    ALIAS_TYPE,
    VERSION_TYPE,
    Action,
    Deploy,
    State,
    resolve,
    resources,
    waits_for,
)
from tools.transitions.schemas import rules

PC_TYPE = "Custom::ProvisionedConcurrency"
GATE_TYPE = "Custom::TrafficGate"
SCALABLE_TARGET_TYPE = "AWS::ApplicationAutoScaling::ScalableTarget"
# ScalableTarget's primary identifier after ResourceId: ScalableDimension, ServiceNamespace.
TARGET_DIMENSION = ("lambda:function:ProvisionedConcurrency", "lambda")
# Types whose deletion loses something a later deploy or a caller still needs.
MUST_RETAIN = frozenset({VERSION_TYPE, "AWS::S3::Bucket"})


@dataclass(frozen=True)
class Identity:
    kind: str
    value: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.kind} {'/'.join(map(str, self.value))}"


def identities(template: Mapping[str, Any], state: State) -> dict[Identity, list[str]]:
    """Physical identity -> logical IDs claiming it in ``template``.

    From the schema: a type whose every ``primaryIdentifier`` property is set in the
    template (a scalable target's ResourceId/ScalableDimension/ServiceNamespace, a named
    alarm or dashboard) is identified by those values. Two more are known from the Lambda
    API: an alias by function and name, a version's provisioned-concurrency configuration
    by its qualifier.
    """
    claims: dict[Identity, list[str]] = {}
    for logical_id, resource in resources(template).items():
        properties = resolve(resource.get("Properties", {}), template, state)
        holder = logical_id
        if resource["Type"] == PC_TYPE:
            # Both phases are one owner: the reconciler function behind them.
            holder = "reconciler " + str(resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0])
        for identity in _identities_of(resource["Type"], properties, logical_id, state):
            if holder not in claims.setdefault(identity, []):
                claims[identity].append(holder)
    return claims


def _identities_of(
    resource_type: str, properties: Mapping[str, Any], logical_id: str, state: State
) -> list[Identity]:
    found = []
    identifier = rules(resource_type).primary_identifier
    values = [_get(properties, path) for path in identifier]
    if identifier and all(v is not None for v in values):
        found.append(Identity(resource_type, tuple(values)))
    if resource_type == ALIAS_TYPE:
        found.append(Identity(ALIAS_TYPE, (properties["FunctionName"], properties["Name"])))
    if resource_type == PC_TYPE and "Autoscaling" in properties:
        # The reconciler registers a scalable target per allocated version.
        found.extend(
            Identity(
                SCALABLE_TARGET_TYPE,
                (f"function:{properties['FunctionName']}:{a['Qualifier']}", *TARGET_DIMENSION),
            )
            for a in properties.get("Allocations", [])
        )
    # One policy per topic or bucket: a second policy resource replaces the first, and the
    # first one's deletion resets the topic or bucket to no policy.
    if resource_type == "AWS::SNS::TopicPolicy":
        found.extend(Identity("topic policy", (str(t),)) for t in properties.get("Topics", []))
    if resource_type == "AWS::S3::BucketPolicy":
        found.append(Identity("bucket policy", (str(properties.get("Bucket")),)))
    if resource_type == VERSION_TYPE and "ProvisionedConcurrencyConfig" in properties:
        number = state.versions.get(logical_id)
        found.append(Identity("provisioned concurrency", (properties["FunctionName"], number)))
    return found


def _get(properties: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def problems(deploy: Deploy) -> list[str]:
    return [
        *_identity_problems(deploy),
        *_retention_problems(deploy),
        *_version_reference_problems(deploy),
        *_ordering_problems(deploy.template),
    ]


def _identity_problems(deploy: Deploy) -> list[str]:
    found = []
    before = identities(deploy.previous, deploy.before)
    after = identities(deploy.template, deploy.after)
    for identity, holders in sorted(after.items(), key=lambda item: str(item[0])):
        if len(holders) > 1:
            found.append(f"{identity} is claimed by {', '.join(holders)} in one template")
        for holder in holders:
            change = deploy.changes.get(holder)
            created = change is not None and change.action in (Action.CREATE, Action.REPLACE)
            for previous in before.get(identity, []):
                if previous == holder:
                    if created:
                        assert change is not None
                        found.append(
                            f"{identity} stays with {holder}, which is replaced "
                            f"({', '.join(change.properties)} changed): the replacement is "
                            "created while the old copy still holds it"
                        )
                elif created:
                    found.append(
                        f"{identity} passes from {previous} to {holder}: CloudFormation "
                        f"creates {holder} while {previous} still holds it (already exists), "
                        f"and deleting {previous} in the cleanup would remove what {holder} "
                        "now owns"
                    )
                elif _removed(deploy, previous):
                    found.append(
                        f"{identity} passes from {previous} to {holder}: deleting {previous} "
                        f"in the cleanup phase removes what {holder} took over"
                    )
    return found


def _removed(deploy: Deploy, logical_id: str) -> bool:
    change = deploy.changes.get(logical_id)
    return change is not None and change.action in (Action.DELETE, Action.REPLACE)


def _retention_problems(deploy: Deploy) -> list[str]:
    return [
        f"{c.logical_id} ({c.type}) would be {c.action.value}: it must be retained"
        for c in deploy.changes.values()
        if c.type in MUST_RETAIN
        and (
            c.action is Action.DELETE
            or (
                c.action is Action.REPLACE
                and deploy.previous["Resources"][c.logical_id].get("DeletionPolicy") != "Retain"
            )
        )
    ]


def routing(deploy: Deploy) -> dict[str, dict[str, float]]:
    """Alias logical ID -> {version number: share of traffic} after the deploy."""
    routes = {}
    for logical_id, resource in resources(deploy.template).items():
        if resource["Type"] != ALIAS_TYPE:
            continue
        properties = deploy.resolve_new(resource["Properties"])
        weights = {
            str(w["FunctionVersion"]): float(w["FunctionWeight"])
            for w in properties.get("RoutingConfig", {}).get("AdditionalVersionWeights", [])
        }
        routes[logical_id] = {
            str(properties["FunctionVersion"]): 1 - sum(weights.values()),
            **weights,
        }
    return routes


def _version_reference_problems(deploy: Deploy) -> list[str]:
    found = []
    for alias, shares in routing(deploy).items():
        for version in shares:
            if not version.isdigit():
                found.append(f"{alias} routes to {version!r}, not a published version number")
                continue
            number = int(version)
            if number not in deploy.after.published:
                found.append(f"{alias} routes to version {number}, which was never published")
            elif number in deploy.before.deleted_versions:
                found.append(f"{alias} routes to version {number}, which CloudFormation deleted")
    return found


def provisioned_concurrency_phases(template: Mapping[str, Any]) -> dict[str, str]:
    """Phase ("scale_up", "settle") -> logical ID of the reconciler resource."""
    return {
        str(resource["Properties"]["Phase"]): logical_id
        for logical_id, resource in resources(template).items()
        if resource["Type"] == PC_TYPE
    }


def _ordering_problems(template: Mapping[str, Any]) -> list[str]:
    phases = provisioned_concurrency_phases(template)
    aliases = [k for k, r in resources(template).items() if r["Type"] == ALIAS_TYPE]
    gates = [k for k, r in resources(template).items() if r["Type"] == GATE_TYPE]
    found = [
        f"{alias} can move traffic before {gate} has checked the new version"
        for alias in aliases
        for gate in gates
        if not waits_for(template, alias, gate)
    ]
    if not phases:
        return found
    for alias in aliases:
        if "scale_up" not in phases or not waits_for(template, alias, phases["scale_up"]):
            found.append(f"{alias} can move traffic before provisioned concurrency is ready")
        if "settle" not in phases or not waits_for(template, phases["settle"], alias):
            found.append(f"provisioned concurrency can be released before {alias} has moved")
    return found


def allocations(deploy: Deploy, phase: str = "scale_up") -> dict[str, int]:
    """Version number -> provisioned executions the template asks for."""
    logical_id = provisioned_concurrency_phases(deploy.template).get(phase)
    if logical_id is None:
        return {}
    properties = deploy.resolve_new(deploy.template["Resources"][logical_id]["Properties"])
    return {
        str(a["Qualifier"]): int(a["Executions"])
        for a in properties.get("Allocations", [])
        if int(a["Executions"]) > 0
    }


def cold_versions(deploy: Deploy) -> list[str]:
    """Versions that take traffic after the deploy with no provisioned concurrency."""
    wanted = allocations(deploy)
    if not wanted:
        return []
    return sorted(
        version
        for shares in routing(deploy).values()
        for version, share in shares.items()
        if share > 0 and version not in wanted
    )

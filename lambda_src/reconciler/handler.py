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
reconciles them in two phases:

* ``scale_up`` (before the alias moves): raise each desired version to at least its
  share, and a version about to take more traffic to its share of the capacity serving
  now (bounded by its autoscaling maximum), so that a version taking over from an
  autoscaled one is not left with the configured minimum; wait until READY; register
  the scalable targets. Release versions that are neither desired nor routed by the alias
  now (that cleans up after a failed deploy: CloudFormation's rollback re-runs scale_up
  with the previous allocation);
* ``settle`` (after the alias moved): set each desired version to its share (keeping a
  higher, autoscaled allocation when autoscaling is on), register the targets exactly, and
  release every other version the alias does not route.

Failure policy: only a version whose traffic is about to grow can fail the deploy (it
must be warm before the alias moves). Everything else (releasing, lowering, a raise for a
version that already carries its traffic, as on a rollback) is best effort: logged and
reported, never FAILED, so that no cleanup can fail a deploy or hold a rollback in
UPDATE_ROLLBACK_FAILED; the next deploy's reconciliation picks up what is left.
A Delete never fails: its reads, too, are best effort, and it answers SUCCESS with a
reason naming what was left (a FAILED delete holds the stack in DELETE_FAILED).

Lambda answers 409 (ResourceConflictException) while an allocation is in progress and
429 under load; Application Auto Scaling answers ConcurrentUpdateException. Every call is
retried with bounded, jittered backoff within the custom resource's time budget, and an
allocation in progress is waited for before it is replaced or deleted.

Only the standard library and the boto3 that the Lambda Python runtime ships are used.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from custom_resource.response import REASON_MAX_CHARS, respond

SCALE_UP = "scale_up"
SETTLE = "settle"
POLL_SECONDS = 10
# Leave time to send the response before Lambda's own timeout cuts the function off.
RESPONSE_MARGIN_MS = 30_000
SERVICE_NAMESPACE = "lambda"
SCALABLE_DIMENSION = "lambda:function:ProvisionedConcurrency"
POLICY_NAME = "provisioned-concurrency-utilization"
PREDEFINED_METRIC = "LambdaProvisionedConcurrencyUtilization"
# Answers that mean "later", not "no".
RETRYABLE = frozenset(
    {
        "ResourceConflictException",  # Lambda: an allocation is in progress
        "TooManyRequestsException",  # Lambda: throttled
        "ServiceException",
        "ConcurrentUpdateException",  # Application Auto Scaling
        "InternalServiceException",
        "ThrottlingException",
    }
)
NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "ProvisionedConcurrencyConfigNotFoundException",
        "ObjectNotFoundException",
    }
)
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 20.0


class OutOfTimeError(TimeoutError):
    """The custom resource's time budget ran out."""


@dataclass(frozen=True)
class Allocation:
    executions: int
    maximum: int
    weight: float


@dataclass(frozen=True)
class Current:
    """Provisioned executions requested per qualifier, and those still IN_PROGRESS."""

    requested: dict[str, int]
    in_progress: frozenset[str] = frozenset()


@dataclass
class Outcome:
    """What was done and what was left for a later deploy (reported, not failed)."""

    puts: dict[str, int] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    registered: dict[str, tuple[int, int]] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Clock:
    """The budget: ``expired()`` when only the response margin is left."""

    expired: Callable[[], bool]
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random


def is_error(error: Exception, codes: Collection[str]) -> bool:
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in codes


def call(clock: Clock, operation: Callable[..., Any], **kwargs: Any) -> Any:
    """``operation(**kwargs)``, retried on a retryable answer until the budget runs out."""
    attempt = 0
    while True:
        try:
            return operation(**kwargs)
        except Exception as error:
            if not is_error(error, RETRYABLE):
                raise
            if clock.expired():
                raise OutOfTimeError(
                    f"{getattr(operation, '__name__', 'call')} still answers "
                    f"{type(error).__name__} ({error}); out of time"
                ) from error
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
            # Full jitter: concurrent reconcilers (or Lambda's own allocator) do not retry
            # in step.
            clock.sleep(delay * (0.5 + clock.jitter() / 2))
            attempt += 1


# ---------------------------------------------------------------------------- reading


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


def current_allocations(client: Any, clock: Clock, function_name: str) -> Current:
    requested: dict[str, int] = {}
    in_progress = set()
    marker: str | None = None
    while True:
        page = call(
            clock,
            client.list_provisioned_concurrency_configs,
            FunctionName=function_name,
            **({"Marker": marker} if marker else {}),
        )
        for config in page.get("ProvisionedConcurrencyConfigs", []):
            qualifier = config["FunctionArn"].rsplit(":", 1)[1]
            requested[qualifier] = int(config["RequestedProvisionedConcurrentExecutions"])
            if config.get("Status") == "IN_PROGRESS":
                in_progress.add(qualifier)
        marker = page.get("NextMarker")
        if not marker:
            return Current(requested, frozenset(in_progress))


def routed_weights(client: Any, clock: Clock, function_name: str, alias: str) -> dict[str, float]:
    """Version -> share of traffic the alias sends it now; empty before the alias exists."""
    try:
        answer = call(clock, client.get_alias, FunctionName=function_name, Name=alias)
    except Exception as error:
        if is_error(error, NOT_FOUND):
            return {}
        raise
    weights = {
        str(v): float(w)
        for v, w in answer.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}).items()
    }
    return {str(answer["FunctionVersion"]): 1 - sum(weights.values()), **weights}


def resource_id(function_name: str, qualifier: str) -> str:
    return f"function:{function_name}:{qualifier}"


def registered_targets(
    scaling: Any, clock: Clock, function_name: str
) -> dict[str, tuple[int, int]]:
    """Qualifier -> (min, max) of this function's registered scalable targets."""
    prefix = resource_id(function_name, "")
    targets = {}
    token: str | None = None
    while True:
        page = call(
            clock,
            scaling.describe_scalable_targets,
            ServiceNamespace=SERVICE_NAMESPACE,
            ScalableDimension=SCALABLE_DIMENSION,
            **({"NextToken": token} if token else {}),
        )
        for target in page.get("ScalableTargets", []):
            if target["ResourceId"].startswith(prefix):
                qualifier = target["ResourceId"][len(prefix) :]
                targets[qualifier] = (int(target["MinCapacity"]), int(target["MaxCapacity"]))
        token = page.get("NextToken")
        if not token:
            return targets


# ---------------------------------------------------------------------------- planning


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
    if phase not in (SCALE_UP, SETTLE):
        raise ValueError(f"Phase={phase!r} is not allowed: use {SCALE_UP!r} or {SETTLE!r}")
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


# ---------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class Clients:
    lambda_: Any
    scaling: Any


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
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceId=resource_id(function_name, qualifier),
            ScalableDimension=SCALABLE_DIMENSION,
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
    target = {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": resource_id(function_name, qualifier),
        "ScalableDimension": SCALABLE_DIMENSION,
    }
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


# ---------------------------------------------------------------------------- entry


def handle(event: Mapping[str, Any], clients: Clients, clock: Clock) -> Outcome:
    properties = event["ResourceProperties"]
    function_name = str(properties["FunctionName"])
    phase = str(properties["Phase"])
    if phase not in (SCALE_UP, SETTLE):
        raise ValueError(f"Phase={phase!r} is not allowed: use {SCALE_UP!r} or {SETTLE!r}")
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
    print(json.dumps({"phase": phase, "request": event["RequestType"], "plan": _as_dict(change)}))
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


def _as_dict(change: Plan) -> dict[str, Any]:
    return {
        "puts": change.puts,
        "required": sorted(change.required),
        "register": change.register,
        "release": change.release,
        "deregister": change.deregister,
    }


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

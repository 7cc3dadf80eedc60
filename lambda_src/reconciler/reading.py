"""What the account holds now: the function's allocations, its alias's routing and its
scalable targets; and how Application Auto Scaling names a version's scalable target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.calls import NOT_FOUND, Clock, call, is_error, pages

SERVICE_NAMESPACE = "lambda"
SCALABLE_DIMENSION = "lambda:function:ProvisionedConcurrency"


@dataclass(frozen=True)
class Current:
    """Provisioned executions requested per qualifier, and those still IN_PROGRESS."""

    requested: dict[str, int]
    in_progress: frozenset[str] = frozenset()


def current_allocations(client: Any, clock: Clock, function_name: str) -> Current:
    requested: dict[str, int] = {}
    in_progress = set()
    listing = client.list_provisioned_concurrency_configs
    for page in pages(clock, listing, ("Marker", "NextMarker"), FunctionName=function_name):
        for config in page.get("ProvisionedConcurrencyConfigs", []):
            qualifier = config["FunctionArn"].rsplit(":", 1)[1]
            requested[qualifier] = int(config["RequestedProvisionedConcurrentExecutions"])
            if config.get("Status") == "IN_PROGRESS":
                in_progress.add(qualifier)
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


def scalable_target(function_name: str, qualifier: str) -> dict[str, str]:
    """The parameters that name the version's scalable target in every call about it."""
    return {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": resource_id(function_name, qualifier),
        "ScalableDimension": SCALABLE_DIMENSION,
    }


def registered_targets(
    scaling: Any, clock: Clock, function_name: str
) -> dict[str, tuple[int, int]]:
    """Qualifier -> (min, max) of this function's registered scalable targets."""
    prefix = resource_id(function_name, "")
    targets = {}
    for page in pages(
        clock,
        scaling.describe_scalable_targets,
        ("NextToken", "NextToken"),
        ServiceNamespace=SERVICE_NAMESPACE,
        ScalableDimension=SCALABLE_DIMENSION,
    ):
        for target in page.get("ScalableTargets", []):
            if target["ResourceId"].startswith(prefix):
                qualifier = target["ResourceId"][len(prefix) :]
                targets[qualifier] = (int(target["MinCapacity"]), int(target["MaxCapacity"]))
    return targets

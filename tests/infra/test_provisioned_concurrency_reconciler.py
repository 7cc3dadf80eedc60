"""The custom resource that owns provisioned concurrency: its plan and its calls."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HANDLER = Path(__file__).resolve().parents[2] / "stacks/handlers/provisioned_concurrency/index.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pc_reconciler", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


reconciler = _load()


class FakeLambda:
    """Records calls; allocations become READY after ``polls_until_ready`` reads."""

    class exceptions:  # noqa: N801 - mirrors boto3's client.exceptions
        class ResourceNotFoundException(Exception):  # noqa: N818 - boto3's name
            pass

    def __init__(
        self,
        existing: dict[str, int],
        polls_until_ready: int = 1,
        alias: dict[str, Any] | None = None,
    ) -> None:
        self.allocations = dict(existing)
        self.alias = alias  # what get_alias returns; None: the alias does not exist yet
        self.calls: list[tuple[str, Any]] = []
        self.polls_until_ready = polls_until_ready
        self.status = "READY"

    def get_paginator(self, name: str) -> Any:
        assert name == "list_provisioned_concurrency_configs"
        fake = self

        class Paginator:
            def paginate(self, FunctionName: str) -> list[dict[str, Any]]:
                return [
                    {
                        "ProvisionedConcurrencyConfigs": [
                            {
                                "FunctionArn": f"arn:aws:lambda:eu-west-1:1:function:"
                                f"{FunctionName}:{q}",
                                "RequestedProvisionedConcurrentExecutions": n,
                            }
                            for q, n in fake.allocations.items()
                        ]
                    }
                ]

        return Paginator()

    def put_provisioned_concurrency_config(self, **kwargs: Any) -> None:
        self.calls.append(("put", (kwargs["Qualifier"], kwargs["ProvisionedConcurrentExecutions"])))
        self.allocations[kwargs["Qualifier"]] = kwargs["ProvisionedConcurrentExecutions"]

    def delete_provisioned_concurrency_config(self, **kwargs: Any) -> None:
        self.calls.append(("delete", kwargs["Qualifier"]))
        if kwargs["Qualifier"] not in self.allocations:
            raise self.exceptions.ResourceNotFoundException()
        del self.allocations[kwargs["Qualifier"]]

    def get_alias(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs == {"FunctionName": "fn", "Name": "production"}
        if self.alias is None:
            raise self.exceptions.ResourceNotFoundException()
        return self.alias

    def get_provisioned_concurrency_config(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("get", kwargs["Qualifier"]))
        self.polls_until_ready -= 1
        if self.polls_until_ready > 0:
            return {"Status": "IN_PROGRESS"}
        return {"Status": self.status, "StatusReason": "not enough concurrency"}


def event(phase: str, allocations: dict[str, int], request: str = "Update") -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResourceProperties": {
            "FunctionName": "fn",
            "AliasName": "production",
            "Phase": phase,
            "KeepHigher": "false",
            # CloudFormation sends every value as a string.
            "Allocations": [{"Qualifier": q, "Executions": str(n)} for q, n in allocations.items()],
        },
    }


def test_scale_up_only_raises_and_never_releases_a_routed_version() -> None:
    change = reconciler.plan(
        "scale_up", {"7": 4, "5": 2}, {"7": 3, "8": 1}, keep_higher=False, routed={"7", "5"}
    )
    assert change.puts == {"8": 1}
    assert change.deletes == []


def test_scale_up_releases_versions_neither_desired_nor_routed() -> None:
    change = reconciler.plan(
        "scale_up", {"7": 4, "5": 2}, {"7": 3, "8": 1}, keep_higher=False, routed={"7"}
    )
    assert change.deletes == ["5"]


def alias(version: str, weights: dict[str, float] | None = None) -> dict[str, Any]:
    routing = {"RoutingConfig": {"AdditionalVersionWeights": weights}} if weights else {}
    return {"FunctionVersion": version, **routing}


def test_rollback_of_a_failed_deploy_releases_what_its_scale_up_raised() -> None:
    # Deploy: canary 8 next to stable 7; scale_up raises 8 while the alias serves 7 only.
    client = FakeLambda({"7": 4}, alias=alias("7"))
    never = lambda: False  # noqa: E731
    reconciler.handle(event("scale_up", {"8": 1, "7": 3}), client, never)
    assert client.allocations == {"7": 4, "8": 1}
    # The alias update fails (or CodeDeploy rolls back): settle never runs, and
    # CloudFormation's rollback re-runs scale_up with the previous allocation while the
    # alias still routes only 7. Version 8 takes no traffic: its allocation goes.
    reconciler.handle(event("scale_up", {"7": 4}), client, never)
    assert client.allocations == {"7": 4}


def test_scale_up_keeps_every_version_a_weighted_alias_routes() -> None:
    # Promote while 7 (90 %) and 8 (10 %) serve: 7 is not desired but still routed.
    client = FakeLambda({"7": 3, "8": 1}, alias=alias("7", {"8": 0.1}))
    reconciler.handle(event("scale_up", {"8": 4}), client, lambda: False)
    assert client.allocations == {"7": 3, "8": 4}


def test_scale_up_before_the_alias_exists_releases_only_undesired_versions() -> None:
    client = FakeLambda({}, alias=None)
    reconciler.handle(event("scale_up", {"1": 2}), client, lambda: False)
    assert client.allocations == {"1": 2}


def test_without_an_alias_name_scale_up_releases_nothing() -> None:
    client = FakeLambda({"5": 2})
    legacy = event("scale_up", {"8": 1})
    del legacy["ResourceProperties"]["AliasName"]
    reconciler.handle(legacy, client, lambda: False)
    assert client.allocations == {"5": 2, "8": 1}


def test_settle_sets_exact_shares_and_releases_everything_else() -> None:
    change = reconciler.plan(
        "settle", {"7": 4, "5": 2, "8": 1}, {"7": 3, "8": 1}, keep_higher=False
    )
    assert change.puts == {"7": 3}
    assert change.deletes == ["5"]


def test_settle_keeps_an_autoscaled_allocation_when_asked() -> None:
    change = reconciler.plan("settle", {"7": 9}, {"7": 3}, keep_higher=True)
    assert change.puts == {}


def test_canary_start_then_promote_moves_capacity_make_before_break() -> None:
    client = FakeLambda({"7": 4}, alias=alias("7"))
    never = lambda: False  # noqa: E731
    # Canary: candidate 8 gets 1 before the alias moves, the stable version keeps 4 ...
    reconciler.handle(event("scale_up", {"8": 1, "7": 3}), client, never)
    assert client.allocations == {"7": 4, "8": 1}
    # ... and goes down to its share only after the alias moved.
    reconciler.handle(event("settle", {"8": 1, "7": 3}), client, never)
    assert client.allocations == {"7": 3, "8": 1}
    client.alias = alias("7", {"8": 0.1})
    # Promote: the candidate gets everything first, then the stable version is released.
    reconciler.handle(event("scale_up", {"8": 4}), client, never)
    assert client.allocations == {"7": 3, "8": 4}
    reconciler.handle(event("settle", {"8": 4}), client, never)
    assert client.allocations == {"8": 4}


def test_waits_until_ready_and_fails_on_failed_allocation() -> None:
    client = FakeLambda({}, polls_until_ready=3)
    reconciler.POLL_SECONDS = 0
    reconciler.handle(event("scale_up", {"8": 2}), client, lambda: False)
    assert [c for c in client.calls if c[0] == "get"] == [("get", "8")] * 3

    failing = FakeLambda({})
    failing.status = "FAILED"
    with pytest.raises(RuntimeError, match="fn:8 failed: not enough concurrency"):
        reconciler.handle(event("scale_up", {"8": 2}), failing, lambda: False)


def test_times_out_rather_than_shift_traffic_cold() -> None:
    client = FakeLambda({}, polls_until_ready=100)
    with pytest.raises(TimeoutError, match="not READY"):
        reconciler.handle(event("scale_up", {"8": 2}), client, lambda: True)


def test_delete_releases_all_on_settle_and_nothing_on_scale_up() -> None:
    client = FakeLambda({"7": 2, "8": 1})
    reconciler.handle(event("scale_up", {"8": 1}, request="Delete"), client, lambda: False)
    assert client.calls == []
    reconciler.handle(event("settle", {"8": 1}, request="Delete"), client, lambda: False)
    assert client.allocations == {}


def test_zero_executions_mean_no_allocation() -> None:
    assert reconciler.desired_allocations(
        event("settle", {"7": 0, "8": 2})["ResourceProperties"]
    ) == {"8": 2}

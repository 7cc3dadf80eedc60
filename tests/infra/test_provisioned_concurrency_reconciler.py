"""The custom resource that owns provisioned concurrency and its autoscaling.

Its plan is tested as a pure function; its calls go through real boto3 clients under
botocore's ``Stubber``, which checks every parameter and every error answer against the
Lambda and Application Auto Scaling service models. Each stubbed call is one the test
expects in that order, so a missing, extra or reordered call fails the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from custom_resource import response as cfn_response
from reconciler import applying, calls, handler, planning

FN = "fn"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:fn"
TARGET = {
    "ServiceNamespace": "lambda",
    "ScalableDimension": "lambda:function:ProvisionedConcurrency",
}
POLICY = {
    "PolicyName": "provisioned-concurrency-utilization",
    "PolicyType": "TargetTrackingScaling",
    "TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": 0.7,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
        },
    },
}


# ---------------------------------------------------------------------------- plan


def alloc(executions: int, maximum: int | None = None, weight: float = 1.0) -> Any:
    return planning.Allocation(executions, maximum or executions, weight)


def test_scale_up_never_releases_a_routed_version() -> None:
    change = planning.plan(
        "scale_up", {"7": 4, "5": 2}, {"8": alloc(4)}, routed={"7": 0.9, "5": 0.1},
        autoscaling=False,
    )  # fmt: skip
    assert change.puts == {"8": 4}
    assert change.release == []


def test_both_phases_release_versions_neither_desired_nor_routed() -> None:
    for phase in ("scale_up", "settle"):
        change = planning.plan(
            phase, {"7": 4, "5": 2}, {"7": alloc(4)}, routed={"7": 1.0}, autoscaling=False
        )
        assert change.release == ["5"]


@pytest.mark.parametrize(
    ("current", "routed", "candidate", "autoscaling", "goal"),
    [
        # Promote: stable 7 was scaled out to 18, candidate 8 holds 2; the configured
        # total is 4. The candidate takes over the live capacity...
        ({"7": 18, "8": 2}, {"7": 0.9, "8": 0.1}, alloc(4, 20, 1.0), True, 20),
        # ... bounded by its autoscaling maximum,
        ({"7": 30}, {"7": 1.0}, alloc(4, 20, 1.0), True, 20),
        # and without autoscaling it gets its configured share.
        ({"7": 3, "8": 1}, {"7": 0.9, "8": 0.1}, alloc(4, 4, 1.0), False, 4),
    ],
    ids=["live-capacity", "bounded-by-maximum", "configured-share"],
)
def test_a_version_taking_over_gets_its_goal_and_must_be_ready_first(
    current: dict[str, int],
    routed: dict[str, float],
    candidate: planning.Allocation,
    autoscaling: bool,
    goal: int,
) -> None:
    change = planning.plan(
        "scale_up", current, {"8": candidate}, routed=routed, autoscaling=autoscaling
    )
    assert change.puts == {"8": goal}
    assert change.required == {"8"}, "traffic grows on 8: it must be READY first"


def test_a_canary_candidate_gets_its_weight_of_the_serving_capacity() -> None:
    change = planning.plan(
        "scale_up", {"7": 18}, {"8": alloc(1, 2, 0.1), "7": alloc(3, 18, 0.9)},
        routed={"7": 1.0}, autoscaling=True,
    )  # fmt: skip
    assert change.puts == {"8": 2}, "ceil(18 x 0.1), within the candidate's maximum"
    assert change.required == {"8"}
    assert change.register == {"8": (1, 2), "7": (3, 18)}


def test_scale_up_never_lowers_a_maximum_before_the_alias_moves() -> None:
    change = planning.plan(
        "scale_up", {"7": 4}, {"8": alloc(1, 2, 0.1), "7": alloc(3, 18, 0.9)},
        routed={"7": 1.0}, autoscaling=True, targets={"7": (4, 20)},
    )  # fmt: skip
    assert change.register["7"] == (3, 20)
    settle = planning.plan(
        "settle", {"7": 4, "8": 1}, {"8": alloc(1, 2, 0.1), "7": alloc(3, 18, 0.9)},
        routed={"7": 0.9, "8": 0.1}, autoscaling=True, targets={"7": (3, 20), "8": (1, 2)},
    )  # fmt: skip
    assert settle.register == {"7": (3, 18)}


def test_a_raise_for_traffic_already_arrived_is_not_required() -> None:
    # Rollback: the alias already routes 90 % to 7 again when scale_up re-runs.
    change = planning.plan(
        "scale_up", {"7": 3, "8": 19}, {"7": alloc(3, 18, 0.9), "8": alloc(1, 2, 0.1)},
        routed={"7": 0.9, "8": 0.1}, autoscaling=True,
    )  # fmt: skip
    assert change.puts == {"7": 18}
    assert change.required == frozenset()


def test_settle_keeps_an_autoscaled_allocation_and_sets_exact_shares_otherwise() -> None:
    keep = planning.plan(
        "settle", {"7": 9}, {"7": alloc(3, 18)}, routed={"7": 1.0}, autoscaling=True
    )
    assert keep.puts == {}
    exact = planning.plan("settle", {"7": 9}, {"7": alloc(3)}, routed={"7": 1.0}, autoscaling=False)
    assert exact.puts == {"7": 3}


def test_autoscaling_switched_off_deregisters_targets_but_keeps_allocations() -> None:
    change = planning.plan(
        "settle", {"7": 4}, {"7": alloc(4)}, routed={"7": 1.0}, autoscaling=False,
        targets={"7": (4, 20)},
    )  # fmt: skip
    assert change.deregister == ["7"]
    assert change.release == []


def test_an_unknown_phase_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="Phase='up' is not allowed"):
        planning.plan("up", {}, {}, routed={}, autoscaling=False)


def test_properties_arrive_as_strings_and_old_templates_lack_maximum_and_weight() -> None:
    properties = {
        "Allocations": [
            {"Qualifier": "7", "Executions": "3", "Maximum": "18", "Weight": "0.9"},
            {"Qualifier": "8", "Executions": "0"},
            {"Qualifier": "9", "Executions": "2"},
        ]
    }
    assert planning.desired_allocations(properties) == {"7": alloc(3, 18, 0.9), "9": alloc(2)}
    assert planning.target_utilization({"Autoscaling": {"TargetUtilization": "0.7"}}) == 0.7
    assert planning.target_utilization({}) is None


# ---------------------------------------------------------------------------- calls


@dataclass
class FakeClock:
    """A budget of ``checks`` expiry checks; sleeps are recorded, not slept."""

    checks: int = 1_000
    slept: list[float] = field(default_factory=list)

    def clock(self) -> Any:
        def expired() -> bool:
            self.checks -= 1
            return self.checks < 0

        return calls.Clock(expired=expired, sleep=self.slept.append, jitter=lambda: 0.5)


@dataclass
class Stubs:
    lambda_: Stubber
    scaling: Stubber

    @property
    def clients(self) -> Any:
        return calls.Clients(self.lambda_.client, self.scaling.client)

    # Lambda -----------------------------------------------------------------------
    def configs(self, allocations: dict[str, int], in_progress: tuple[str, ...] = ()) -> None:
        self.lambda_.add_response(
            "list_provisioned_concurrency_configs",
            {
                "ProvisionedConcurrencyConfigs": [
                    {
                        "FunctionArn": f"{ARN}:{q}",
                        "RequestedProvisionedConcurrentExecutions": n,
                        "Status": "IN_PROGRESS" if q in in_progress else "READY",
                    }
                    for q, n in allocations.items()
                ]
            },
            {"FunctionName": FN},
        )

    def alias(self, version: str | None, weights: dict[str, float] | None = None) -> None:
        if version is None:
            self.lambda_.add_client_error(
                "get_alias", "ResourceNotFoundException", http_status_code=404,
                expected_params={"FunctionName": FN, "Name": "production"},
            )  # fmt: skip
            return
        answer: dict[str, Any] = {"FunctionVersion": version, "Name": "production"}
        if weights:
            answer["RoutingConfig"] = {"AdditionalVersionWeights": weights}
        self.lambda_.add_response("get_alias", answer, {"FunctionName": FN, "Name": "production"})

    def put(self, qualifier: str, executions: int) -> None:
        self.lambda_.add_response(
            "put_provisioned_concurrency_config",
            {"RequestedProvisionedConcurrentExecutions": executions, "Status": "IN_PROGRESS"},
            {"FunctionName": FN, "Qualifier": qualifier,
             "ProvisionedConcurrentExecutions": executions},
        )  # fmt: skip

    def status(self, qualifier: str, status: str, reason: str = "") -> None:
        self.lambda_.add_response(
            "get_provisioned_concurrency_config",
            {"Status": status, **({"StatusReason": reason} if reason else {})},
            {"FunctionName": FN, "Qualifier": qualifier},
        )

    def delete(self, qualifier: str) -> None:
        self.lambda_.add_response(
            "delete_provisioned_concurrency_config", {},
            {"FunctionName": FN, "Qualifier": qualifier},
        )  # fmt: skip

    def lambda_error(self, method: str, code: str, status: int) -> None:
        self.lambda_.add_client_error(method, code, http_status_code=status)

    # Application Auto Scaling ------------------------------------------------------
    def targets(self, targets: dict[str, tuple[int, int]]) -> None:
        self.scaling.add_response(
            "describe_scalable_targets",
            {
                "ScalableTargets": [
                    {
                        **TARGET,
                        "ResourceId": f"function:{FN}:{q}",
                        "MinCapacity": lo,
                        "MaxCapacity": hi,
                        "RoleARN": "arn:aws:iam::123456789012:role/slr",
                        "CreationTime": "2026-11-25T00:00:00Z",
                    }
                    for q, (lo, hi) in targets.items()
                ]
            },
            TARGET,
        )

    def register(self, qualifier: str, minimum: int, maximum: int) -> None:
        target = {**TARGET, "ResourceId": f"function:{FN}:{qualifier}"}
        self.scaling.add_response(
            "register_scalable_target", {}, {**target, "MinCapacity": minimum,
                                             "MaxCapacity": maximum},
        )  # fmt: skip
        self.scaling.add_response(
            "put_scaling_policy",
            {"PolicyARN": "arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:x"},
            {**target, **POLICY},
        )

    def deregister(self, qualifier: str, missing: bool = False) -> None:
        params = {**TARGET, "ResourceId": f"function:{FN}:{qualifier}"}
        if missing:
            self.scaling.add_client_error(
                "deregister_scalable_target", "ObjectNotFoundException", expected_params=params
            )
        else:
            self.scaling.add_response("deregister_scalable_target", {}, params)


@pytest.fixture
def stubs() -> Iterator[Stubs]:
    session = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-1"
    )
    lambda_client = session.client("lambda")
    scaling_client = session.client("application-autoscaling")
    with Stubber(lambda_client) as lam, Stubber(scaling_client) as scaling:
        yield Stubs(lam, scaling)
        lam.assert_no_pending_responses()
        scaling.assert_no_pending_responses()


def event(
    phase: str,
    allocations: dict[str, tuple[int, int, float]],
    request: str = "Update",
    autoscaling: bool = True,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": FN,
        "AliasName": "production",
        "Phase": phase,
        # CloudFormation sends every value as a string.
        "Allocations": [
            {"Qualifier": q, "Executions": str(n), "Maximum": str(m), "Weight": f"{w:g}"}
            for q, (n, m, w) in allocations.items()
        ],
    }
    if autoscaling:
        properties["Autoscaling"] = {"TargetUtilization": "0.7"}
    return {"RequestType": request, "ResourceProperties": properties}


def test_first_deploy_provisions_waits_and_registers_the_target(stubs: Stubs) -> None:
    stubs.configs({})
    stubs.alias(None)
    stubs.targets({})
    stubs.put("1", 4)
    stubs.status("1", "IN_PROGRESS")
    stubs.status("1", "READY")
    stubs.register("1", 4, 20)
    clock = FakeClock()
    outcome = handler.handle(event("scale_up", {"1": (4, 20, 1.0)}), stubs.clients, clock.clock())
    assert outcome.puts == {"1": 4}
    assert outcome.registered == {"1": (4, 20)}
    assert clock.slept == [calls.POLL_SECONDS]


def test_first_canary_keeps_the_autoscaled_stable_and_warms_the_candidate(stubs: Stubs) -> None:
    stubs.configs({"1": 18})
    stubs.alias("1")
    stubs.targets({"1": (4, 20)})
    stubs.put("2", 2)
    stubs.status("2", "READY")
    stubs.register("2", 1, 2)
    stubs.register("1", 3, 20)
    allocations = {"2": (1, 2, 0.1), "1": (3, 18, 0.9)}
    outcome = handler.handle(event("scale_up", allocations), stubs.clients, FakeClock().clock())
    assert outcome.puts == {"2": 2}
    assert outcome.released == []


def test_promote_then_settle_moves_live_capacity_make_before_break(stubs: Stubs) -> None:
    # scale_up: the candidate takes over the 17 + 2 executions serving now.
    stubs.configs({"1": 17, "2": 2})
    stubs.alias("1", {"2": 0.1})
    stubs.targets({"1": (3, 18), "2": (1, 2)})
    stubs.put("2", 19)
    stubs.status("2", "READY")
    stubs.register("2", 4, 20)
    promoted = {"2": (4, 20, 1.0)}
    handler.handle(event("scale_up", promoted), stubs.clients, FakeClock().clock())
    # settle, after the alias moved: the old version's target and allocation go; the
    # candidate keeps its scaled-out 19.
    stubs.configs({"1": 17, "2": 19})
    stubs.alias("2")
    stubs.targets({"1": (3, 18), "2": (4, 20)})
    stubs.deregister("1")
    stubs.delete("1")
    outcome = handler.handle(event("settle", promoted), stubs.clients, FakeClock().clock())
    assert outcome.released == ["1"]
    assert outcome.puts == {}


def test_a_conflict_while_an_allocation_is_in_progress_is_retried(stubs: Stubs) -> None:
    stubs.configs({})
    stubs.alias(None)
    stubs.targets({})
    stubs.lambda_error("put_provisioned_concurrency_config", "ResourceConflictException", 409)
    stubs.lambda_error("put_provisioned_concurrency_config", "TooManyRequestsException", 429)
    stubs.put("1", 4)
    stubs.status("1", "READY")
    clock = FakeClock()
    outcome = handler.handle(
        event("scale_up", {"1": (4, 4, 1.0)}, autoscaling=False), stubs.clients, clock.clock()
    )
    assert outcome.puts == {"1": 4}
    assert clock.slept == [0.75, 1.5], "jittered exponential backoff"


def test_an_allocation_in_progress_is_waited_for_before_it_is_deleted(stubs: Stubs) -> None:
    stubs.configs({"1": 4, "7": 2}, in_progress=("7",))
    stubs.alias("1")
    stubs.targets({})
    stubs.deregister("7", missing=True)
    stubs.status("7", "IN_PROGRESS")
    stubs.status("7", "READY")
    stubs.delete("7")
    clock = FakeClock()
    outcome = handler.handle(
        event("settle", {"1": (4, 4, 1.0)}, autoscaling=False), stubs.clients, clock.clock()
    )
    assert outcome.released == ["7"]
    assert clock.slept == [calls.POLL_SECONDS]


def test_a_release_that_keeps_failing_is_left_for_the_next_deploy_not_failed(
    stubs: Stubs,
) -> None:
    stubs.configs({"1": 4, "7": 2})
    stubs.alias("1")
    stubs.targets({})
    stubs.deregister("7", missing=True)
    for _ in range(3):
        stubs.lambda_error("delete_provisioned_concurrency_config", "TooManyRequestsException", 429)
    outcome = handler.handle(
        event("settle", {"1": (4, 4, 1.0)}, autoscaling=False),
        stubs.clients,
        FakeClock(checks=2).clock(),
    )
    assert outcome.released == []
    (left,) = outcome.left
    assert left.startswith("7: OutOfTimeError")


def test_a_required_allocation_that_fails_fails_the_deploy(stubs: Stubs) -> None:
    stubs.configs({"1": 4})
    stubs.alias("1")
    stubs.targets({})
    stubs.put("2", 1)
    stubs.status("2", "FAILED", "not enough unreserved concurrency")
    with pytest.raises(RuntimeError, match="fn:2 failed: not enough unreserved concurrency"):
        handler.handle(
            event("scale_up", {"2": (1, 1, 0.1), "1": (3, 3, 0.9)}, autoscaling=False),
            stubs.clients,
            FakeClock().clock(),
        )


def test_running_out_of_time_before_ready_fails_rather_than_shift_traffic_cold(
    stubs: Stubs,
) -> None:
    stubs.configs({})
    stubs.alias(None)
    stubs.targets({})
    stubs.put("1", 4)
    stubs.status("1", "IN_PROGRESS")
    with pytest.raises(calls.OutOfTimeError, match="not READY yet"):
        handler.handle(
            event("scale_up", {"1": (4, 4, 1.0)}, autoscaling=False),
            stubs.clients,
            FakeClock(checks=0).clock(),
        )


def test_rollback_of_a_failed_canary_releases_what_it_raised(stubs: Stubs) -> None:
    # The canary's alias update failed; CloudFormation rolled the alias back (it depends
    # on scale_up, so it rolls back first) and re-runs scale_up with the old allocation.
    stubs.configs({"1": 18, "2": 2})
    stubs.alias("1")
    stubs.targets({"1": (3, 20), "2": (1, 2)})
    stubs.deregister("2")
    stubs.delete("2")
    stubs.register("1", 4, 20)
    outcome = handler.handle(
        event("scale_up", {"1": (4, 20, 1.0)}), stubs.clients, FakeClock().clock()
    )
    assert outcome.released == ["2"]
    assert outcome.puts == {}


def test_rollback_after_a_promote_is_best_effort_and_never_fails(stubs: Stubs) -> None:
    # The promote's settle released version 1; a later resource failed. On the rollback
    # the alias routes 90 % to 1 again before scale_up re-runs: raising 1 cannot stop
    # traffic that already arrived, so a failed raise is reported, not FAILED (which would
    # leave the stack in UPDATE_ROLLBACK_FAILED).
    stubs.configs({"2": 19})
    stubs.alias("1", {"2": 0.1})
    stubs.targets({"2": (4, 20)})
    stubs.put("1", 18)
    stubs.status("1", "FAILED", "not enough unreserved concurrency")
    stubs.register("2", 1, 20)
    stubs.register("1", 3, 18)
    outcome = handler.handle(
        event("scale_up", {"2": (1, 2, 0.1), "1": (3, 18, 0.9)}),
        stubs.clients,
        FakeClock().clock(),
    )
    assert outcome.left == ["provisioned concurrency on fn:1 failed: not enough unreserved "
                            "concurrency"]  # fmt: skip


def test_deleting_the_settle_resource_releases_only_versions_without_traffic(
    stubs: Stubs,
) -> None:
    stubs.configs({"2": 4, "1": 3})
    stubs.alias("2")
    stubs.targets({"2": (4, 20), "1": (3, 18)})
    stubs.deregister("1")
    stubs.delete("1")
    outcome = handler.handle(
        event("settle", {"2": (4, 20, 1.0)}, request="Delete"), stubs.clients, FakeClock().clock()
    )
    assert outcome.released == ["1"]


def test_deleting_the_scale_up_resource_calls_nothing(stubs: Stubs) -> None:
    outcome = handler.handle(
        event("scale_up", {"2": (4, 20, 1.0)}, request="Delete"),
        stubs.clients,
        FakeClock().clock(),
    )
    assert outcome == applying.Outcome()


# ---------------------------------------------------------------------------- delete


def test_deleting_with_reads_denied_releases_what_it_can_and_reports_the_rest(
    stubs: Stubs,
) -> None:
    # A Delete must never fail (DELETE_FAILED, or UPDATE_ROLLBACK_FAILED on a rollback):
    # a denied list is reported, the alias and targets that can be read still count.
    stubs.lambda_error("list_provisioned_concurrency_configs", "AccessDeniedException", 403)
    stubs.alias("2")
    stubs.targets({"2": (4, 20), "1": (3, 18)})
    stubs.deregister("1")
    stubs.deregister("2")  # the resource goes: so does the serving version's target
    outcome = handler.handle(
        event("settle", {"2": (4, 20, 1.0)}, request="Delete"), stubs.clients, FakeClock().clock()
    )
    assert outcome.released == ["1"]
    (left,) = outcome.left
    assert left.startswith("list provisioned concurrency: ClientError")
    assert "AccessDeniedException" in left


def test_deleting_without_the_alias_routing_releases_nothing(stubs: Stubs) -> None:
    stubs.configs({"2": 4, "1": 3})
    stubs.lambda_error("get_alias", "TooManyRequestsException", 429)
    stubs.scaling.add_client_error(
        "describe_scalable_targets", "AccessDeniedException", http_status_code=400
    )
    outcome = handler.handle(
        event("settle", {"2": (4, 20, 1.0)}, request="Delete"),
        stubs.clients,
        FakeClock(checks=0).clock(),
    )
    assert outcome.released == []
    reads = [line.split(":")[0] for line in outcome.left]
    assert reads == ["get alias", "describe scalable targets"]


def test_an_update_still_fails_on_a_denied_read(stubs: Stubs) -> None:
    stubs.lambda_error("list_provisioned_concurrency_configs", "AccessDeniedException", 403)
    with pytest.raises(Exception, match="AccessDenied"):
        handler.handle(event("settle", {"2": (4, 20, 1.0)}), stubs.clients, FakeClock().clock())


@dataclass
class Response:
    """What ``handler`` sent CloudFormation."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    def urlopen(self, request: Any, timeout: float) -> Any:
        import io
        import json

        del timeout
        self.bodies.append(json.loads(request.data))
        return contextlib.closing(io.BytesIO(b""))


class LambdaContext:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def cfn_event(phase: str, request: str) -> dict[str, Any]:
    return {
        **event(phase, {"2": (4, 20, 1.0)}, request=request),
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "Settle",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/r-1",
    }


@pytest.fixture
def respond(stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> Response:
    clients = {"lambda": stubs.lambda_.client, "application-autoscaling": stubs.scaling.client}
    monkeypatch.setattr(boto3, "client", lambda name: clients[name])
    response = Response()
    monkeypatch.setattr(cfn_response.urllib.request, "urlopen", response.urlopen)
    return response


def test_the_delete_answer_is_success_whatever_the_reads_answer(
    stubs: Stubs, respond: Response
) -> None:
    stubs.lambda_error("list_provisioned_concurrency_configs", "AccessDeniedException", 403)
    stubs.lambda_.add_client_error("get_alias", "AccessDeniedException", http_status_code=403)
    stubs.scaling.add_client_error(
        "describe_scalable_targets", "AccessDeniedException", http_status_code=400
    )
    handler.handler(cfn_event("settle", "Delete"), LambdaContext())
    (body,) = respond.bodies
    assert body["Status"] == "SUCCESS"
    assert body["Reason"].startswith("reconciled; left on delete: list provisioned concurrency")
    for what in ("get alias", "describe scalable targets"):
        assert what in body["Reason"]


def test_a_failure_inside_a_delete_is_still_answered_success(
    stubs: Stubs, respond: Response, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the plan")

    monkeypatch.setattr(handler, "plan", broken)
    stubs.configs({})
    stubs.alias("2")
    stubs.targets({})
    handler.handler(cfn_event("settle", "Delete"), LambdaContext())
    (body,) = respond.bodies
    assert body["Status"] == "SUCCESS"
    assert body["Reason"] == "deleted; left: RuntimeError: a bug in the plan"


def test_an_update_that_fails_is_answered_failed(stubs: Stubs, respond: Response) -> None:
    stubs.lambda_error("list_provisioned_concurrency_configs", "AccessDeniedException", 403)
    handler.handler(cfn_event("settle", "Update"), LambdaContext())
    (body,) = respond.bodies
    assert body["Status"] == "FAILED"

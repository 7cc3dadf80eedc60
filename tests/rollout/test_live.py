"""The AWS part (status, stable from the stack, compare) against fake boto3 clients."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.rollout.conftest import Run, block, edit
from tools.rollout.__main__ import main
from tools.rollout.live import Live

FUNCTION = "sklearn-serving-prod-inference-InferenceFunction-abc"
OUTPUTS = {
    "AliasArn": f"arn:aws:lambda:eu-west-1:123456789012:function:{FUNCTION}:production",
    "PublishedVersion": "8",
    "ModelVersion": "v2",
    "DashboardName": "sklearn-serving-prod-churn",
}


class FakeCloudFormation:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if self.error:
            raise self.error
        assert StackName == "sklearn-serving-prod-inference"
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


class FakeLambda:
    def get_alias(self, FunctionName: str, Name: str) -> dict[str, Any]:
        assert (FunctionName, Name) == (FUNCTION, "production")
        return {"FunctionVersion": "7", "RoutingConfig": {"AdditionalVersionWeights": {"8": 0.1}}}

    def list_provisioned_concurrency_configs(self, **kwargs: Any) -> dict[str, Any]:
        arn = OUTPUTS["AliasArn"].rsplit(":", 1)[0]
        if "Marker" not in kwargs:
            return {
                "ProvisionedConcurrencyConfigs": [
                    {"FunctionArn": f"{arn}:7", "RequestedProvisionedConcurrentExecutions": 3,
                     "Status": "READY"},
                ],
                "NextMarker": "page2",
            }  # fmt: skip
        return {
            "ProvisionedConcurrencyConfigs": [
                {"FunctionArn": f"{arn}:8", "RequestedProvisionedConcurrentExecutions": 1,
                 "Status": "IN_PROGRESS"},
            ]
        }  # fmt: skip


class FakeCloudWatch:
    """Answers GetMetricData from a table keyed by (metric, dimension value, statistic)."""

    DATA: ClassVar[dict[tuple[str, str, str], list[float]]] = {
        ("Invocations", "7", "Sum"): [900.0],
        ("Errors", "7", "Sum"): [1.0],
        ("Duration", "7", "p99"): [120.0],
        ("Invocations", "8", "Sum"): [60.0, 40.0],  # split at a period boundary
        ("Errors", "8", "Sum"): [2.0],
        ("Duration", "8", "p99"): [150.0],
        ("InferenceLatency", "v1", "p99"): [40.0],
        ("PredictionProbability", "v1", "Average"): [0.25],
        ("InferenceLatency", "v2", "p99"): [55.5],
        ("ServerErrors", "v2", "Sum"): [3.0],  # 503s: Lambda's Errors does not count them
        ("PredictionProbability", "v2", "Average"): [0.3125],
    }

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        results = []
        for query in request["MetricDataQueries"]:
            stat = query["MetricStat"]
            dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            key = dims.get("ExecutedVersion") or dims["ModelVersion"]
            values = self.DATA.get((stat["Metric"]["MetricName"], key, stat["Stat"]), [])
            results.append({"Id": query["Id"], "Values": values, "StatusCode": "Complete"})
        return {"MetricDataResults": results}


def fake_live(cloudformation: Any = None) -> Live:
    return Live(
        cloudformation=cloudformation or FakeCloudFormation(),
        lambda_client=FakeLambda(),
        cloudwatch=FakeCloudWatch(),
    )


CANARY = {"model_version": "v2", "stable_version": 7, "canary_weight": 0.1,
          "stable_model_version": "v1"}  # fmt: skip


def test_status_with_credentials_shows_live_alias_outputs_and_pc(
    config: Path, rollout: Run
) -> None:
    edit(config, "prod", **CANARY)
    result = rollout(config, "status", "--env", "prod", live=fake_live())
    assert result.code == 0
    assert "alias production: version 7: 90.0%, version 8: 10.0%" in result.out
    assert "PublishedVersion: 8" in result.out
    assert "provisioned concurrency: version 7: 3 (READY), version 8: 1 (IN_PROGRESS)" in (
        result.out
    )


def test_start_reads_the_stable_version_from_the_stack(
    config: Path, rollout: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(OUTPUTS, "ModelVersion", "v1")  # the stack runs what cdk.json says
    result = rollout(
        config, "start", "--env", "prod", "--version", "v2", "--weight", "0.1", live=fake_live()
    )
    assert result.code == 0, result.err
    assert block(config, "prod")["stable_version"] == 8
    assert block(config, "prod")["stable_model_version"] == "v1"
    assert "note:" not in result.out


def test_start_of_the_model_the_stack_runs_is_refused(config: Path, rollout: Run) -> None:
    # The stack runs v2 already (cdk.json says v1): a canary of v2 would deploy the template
    # the stack already has, so the candidate would be the stable version 8 itself.
    before = config.read_bytes()
    result = rollout(
        config, "start", "--env", "prod", "--version", "v2", "--weight", "0.1", live=fake_live()
    )
    assert result.code == 2
    assert "note: the stack runs v2, cdk.json says v1" in result.out
    assert "--version v2 is the model the stable version 8 runs" in result.err
    assert config.read_bytes() == before


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (
            ClientError(
                {"Error": {"Code": "ValidationError", "Message": "Stack does not exist"}},
                "DescribeStacks",
            ),
            "failed: ValidationError: Stack does not exist",
        ),
        (
            EndpointConnectionError(endpoint_url="https://cloudformation.eu-west-1.amazonaws.com"),
            "Could not connect to the endpoint URL",
        ),
    ],
)
def test_aws_errors_are_messages_not_tracebacks(
    config: Path, rollout: Run, error: Exception, shown: str
) -> None:
    result = rollout(config, "status", "--env", "prod", live=fake_live(FakeCloudFormation(error)))
    assert result.code == 0, "the configured part still succeeded"
    assert "live status" in result.out and shown in result.out
    assert "Traceback" not in result.out + result.err


def test_compare_reports_each_side_over_the_window(
    config: Path, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    edit(config, "prod", **CANARY)
    live = fake_live()
    now = dt.datetime(2026, 3, 1, 12, 30, 42, tzinfo=dt.UTC)
    code = main(
        ["compare", "--env", "prod", "--minutes", "30", "--config", str(config)],
        live_factory=lambda region: live,
        now=lambda: now,
    )
    out = capsys.readouterr().out
    assert code == 0
    table = {line.strip().split("  ")[0]: line.split() for line in out.splitlines()}
    assert "stable" in out.splitlines()[1] and "candidate" in out.splitlines()[1]
    assert table["Lambda version"][-2:] == ["7", "8"]
    assert table["model version"][-2:] == ["v1", "v2"]
    assert table["invocations"][-2:] == ["900", "100"]
    # The candidate's 3 answers of 503 count as failed requests next to its 2 Lambda errors.
    assert "0.11% (1/900)" in out and "5.00% (5/100)" in out
    assert re.search(r"^  5xx answers +no data +3$", out, re.MULTILINE)
    assert "120.0 ms" in out and "150.0 ms" in out
    assert "40.0 ms" in out and "55.5 ms" in out
    assert table["mean predicted probability"][-2:] == ["0.2500", "0.3125"]
    (request,) = live.cloudwatch.requests
    assert request["StartTime"] == dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert request["EndTime"] == dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    lambda_query = request["MetricDataQueries"][0]["MetricStat"]
    assert lambda_query["Period"] == 1800
    assert {d["Name"]: d["Value"] for d in lambda_query["Metric"]["Dimensions"]} == {
        "FunctionName": FUNCTION,
        "Resource": f"{FUNCTION}:production",
        "ExecutedVersion": "7",
    }
    namespaces = {q["MetricStat"]["Metric"]["Namespace"] for q in request["MetricDataQueries"]}
    assert namespaces == {"AWS/Lambda", "SklearnLambdaServing/prod"}
    server_errors = [
        q["MetricStat"] for q in request["MetricDataQueries"]
        if q["MetricStat"]["Metric"]["MetricName"] == "ServerErrors"
    ]  # fmt: skip
    assert [(m["Metric"]["Dimensions"], m["Stat"]) for m in server_errors] == [
        ([{"Name": "ModelVersion", "Value": "v1"}], "Sum"),
        ([{"Name": "ModelVersion", "Value": "v2"}], "Sum"),
    ]


def test_compare_without_credentials_says_so(config: Path, rollout: Run) -> None:
    result = rollout(config, "compare", "--env", "prod")
    assert result.code == 1
    assert "compare needs AWS credentials (none found:" in result.out
    assert "Traceback" not in result.out + result.err


def test_compare_refuses_a_window_out_of_range(config: Path, rollout: Run) -> None:
    result = rollout(config, "compare", "--env", "prod", "--minutes", "0", live=fake_live())
    assert result.code == 2
    assert "--minutes 0 is not allowed: 1 to 20160" in result.err

"""``python -m tools.batch start|status|wait|fetch`` against botocore's Stubber, with the
real Step Functions, Lambda, CloudFormation and S3 models: each request's parameters and
each canned response are validated against the service's own shapes.

The ResultWriter's layout (``<prefix>/<map run id>/manifest.json`` listing ``ResultFiles``
by status, each file a JSON array of child executions with ``Input`` and ``Output`` as
JSON text) is AWS's: ResultWriter (Map), AWS Step Functions Developer Guide,
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tools.batch import RefusedError, cloud
from tools.batch.__main__ import main, parser

STACK = "sklearn-serving-dev-inference"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:churn-dev"
ALIAS = f"{FUNCTION}:production"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:churn-dev-batch"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:churn-dev-batch:run-1"
MAP_RUN_ID = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
MAP_RUN = f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:churn-dev-batch/Score:{MAP_RUN_ID}"
NOW = datetime(2026, 12, 8, tzinfo=UTC)
HEADER = (
    "tenure_months,monthly_charges,total_charges,num_products,has_tech_support,"
    "contract_type_encoded,payment_method_encoded"
)


class Stubs:
    def __init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.clients = {
            name: session.client(name)
            for name in ("stepfunctions", "lambda", "cloudformation", "s3")
        }
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.started: list[dict[str, Any]] = []
        self.clients["stepfunctions"].meta.events.register(
            "provide-client-params.sfn.StartExecution",
            lambda params, **_: self.started.append(dict(params)),
        )

    def aws(self) -> cloud.Aws:
        c = self.clients
        return cloud.Aws(c["stepfunctions"], c["lambda"], c["cloudformation"], c["s3"])

    def __getattr__(self, name: str) -> Stubber:
        return self.stubs[
            {"sfn": "stepfunctions", "lam": "lambda", "cfn": "cloudformation"}.get(name, name)
        ]


@pytest.fixture
def stubs() -> Iterator[Stubs]:
    made = Stubs()
    for stub in made.stubs.values():
        stub.activate()
    yield made
    for stub in made.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def run(stubs: Stubs, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = parser().parse_args(argv)
    out = io.StringIO()
    try:
        status = cloud.main(args, stubs.aws(), out)
    except RefusedError as exc:
        return 2, out.getvalue(), str(exc)
    return status, out.getvalue(), capsys.readouterr().err


def expect_outputs(stubs: Stubs, outputs: dict[str, str] | None = None) -> None:
    given = (
        {"AliasArn": ALIAS, "BatchScoringStateMachineArn": MACHINE} if outputs is None else outputs
    )
    stubs.cfn.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": STACK,
                    "CreationTime": NOW,
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in given.items()],
                }
            ]
        },
        {"StackName": STACK},
    )


def expect_version(stubs: Stubs, version: str, model_version: str = "v2") -> None:
    stubs.lam.add_response(
        "get_function_configuration",
        {
            "FunctionName": "churn-dev",
            "Version": version,
            "Environment": {"Variables": {"MODEL_VERSION": model_version}},
        },
        {"FunctionName": FUNCTION, "Qualifier": version},
    )


def expect_header(stubs: Stubs, header: str) -> None:
    stubs.s3.add_response(
        "get_object",
        {"Body": body(f"{header}\n1,2,3,4,0,1,2\n".encode())},
        {"Bucket": "in-bucket", "Key": "rows.csv", "Range": "bytes=0-65535"},
    )


START = ["start", "--env", "dev", "--input", "s3://in-bucket/rows.csv",
         "--output", "s3://out-bucket/scored/"]  # fmt: skip


def test_start_pins_the_aliass_stable_version_not_the_canary(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_outputs(stubs)
    # A canary: 10% to version 8; the stable side (FunctionVersion) is 7.
    stubs.lam.add_response(
        "get_alias",
        {
            "AliasArn": ALIAS,
            "Name": "production",
            "FunctionVersion": "7",
            "RoutingConfig": {"AdditionalVersionWeights": {"8": 0.1}},
        },
        {"FunctionName": FUNCTION, "Name": "production"},
    )
    expect_version(stubs, "7")
    expect_header(stubs, HEADER)
    stubs.sfn.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": NOW},
        {"stateMachineArn": MACHINE, "name": ANY, "input": ANY},
    )
    status, out, err = run(stubs, START, capsys)
    assert status == 0, err
    assert EXECUTION in out and "function version 7 (model v2)" in out
    [params] = stubs.started
    sent = json.loads(params["input"])
    assert sent["input"] == {"bucket": "in-bucket", "key": "rows.csv", "format": "csv"}
    assert sent["output"] == {"bucket": "out-bucket", "prefix": "scored/"}
    assert sent["function_version"] == "7" and sent["model_version"] == "v2"
    assert sent["run_id"] == params["name"] and sent["run_id"].startswith("batch-")


def test_a_prefix_is_refused_before_anything_starts(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state machine reads one object per run: a prefix would fail the run at its
    first state, so start refuses it (exit 2) and starts nothing."""
    expect_outputs(stubs)
    expect_version(stubs, "5", "v1")
    argv = ["start", "--env", "dev", "--input", "s3://in-bucket/parts/", "--format", "jsonl",
            "--output", "s3://out-bucket/scored/", "--version", "5"]  # fmt: skip
    status, _out, err = run(stubs, argv, capsys)
    assert status == 2
    assert "'s3://in-bucket/parts/' is a prefix: a run scores one object" in err
    assert stubs.started == []


def test_an_unknown_version_is_refused(stubs: Stubs, capsys: pytest.CaptureFixture[str]) -> None:
    expect_outputs(stubs)
    stubs.lam.add_client_error(
        "get_function_configuration",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found",
        http_status_code=404,
        expected_params={"FunctionName": FUNCTION, "Qualifier": "99"},
    )
    status, _, err = run(stubs, [*START, "--version", "99"], capsys)
    assert status == 2 and "unknown version '99'" in err


def test_a_header_that_does_not_match_is_refused_before_the_run(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_outputs(stubs)
    expect_version(stubs, "5")
    expect_header(stubs, HEADER.replace("num_products", "products"))
    status, _, err = run(stubs, [*START, "--version", "5"], capsys)
    assert status == 2
    assert "missing column(s) 'num_products'" in err and "unknown column(s) 'products'" in err
    assert stubs.started == []


def test_an_unreadable_input_is_refused(stubs: Stubs, capsys: pytest.CaptureFixture[str]) -> None:
    expect_outputs(stubs)
    expect_version(stubs, "5")
    stubs.s3.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    status, _, err = run(stubs, [*START, "--version", "5"], capsys)
    assert status == 2 and "is unreadable" in err and "NoSuchKey" in err


def test_a_stack_without_batch_scoring_is_refused(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_outputs(stubs, {"AliasArn": ALIAS})
    status, _, err = run(stubs, START, capsys)
    assert status == 2 and "BatchScoringStateMachineArn" in err


def counts(**given: int) -> dict[str, int]:
    names = (
        "pending",
        "running",
        "succeeded",
        "failed",
        "timedOut",
        "aborted",
        "total",
        "resultsWritten",
    )
    return {name: given.get(name, 0) for name in names}


def expect_describe(
    stubs: Stubs, status: str, items: dict[str, int], extra: dict[str, Any] | None = None
) -> None:
    stubs.sfn.add_response(
        "describe_execution",
        {
            "executionArn": EXECUTION,
            "stateMachineArn": MACHINE,
            "status": status,
            "startDate": NOW,
            **(extra or {}),
        },
        {"executionArn": EXECUTION},
    )
    stubs.sfn.add_response(
        "list_map_runs",
        {
            "mapRuns": [
                {"executionArn": EXECUTION, "mapRunArn": MAP_RUN, "stateMachineArn": MACHINE,
                 "startDate": NOW}
            ]
        },
        {"executionArn": EXECUTION},
    )  # fmt: skip
    stubs.sfn.add_response(
        "describe_map_run",
        {
            "mapRunArn": MAP_RUN,
            "executionArn": EXECUTION,
            "status": "SUCCEEDED" if status == "SUCCEEDED" else status,
            "startDate": NOW,
            "maxConcurrency": 100,
            "toleratedFailurePercentage": 5.0,
            "toleratedFailureCount": 0,
            "itemCounts": counts(**items),
            "executionCounts": counts(),
        },
        {"mapRunArn": MAP_RUN},
    )


def test_status_reads_the_map_runs_item_counts(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_describe(
        stubs, "RUNNING", {"succeeded": 4_000, "failed": 10, "running": 500, "total": 10_000}
    )
    status, out, _ = run(stubs, ["status", "--env", "dev", "--execution", EXECUTION], capsys)
    assert status == 0
    assert "RUNNING: 4,000 of 10,000 items succeeded, 10 failed, 500 running" in out


def test_a_failed_run_exits_3_with_its_error_and_cause(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_describe(
        stubs,
        "FAILED",
        {"succeeded": 9_000, "failed": 1_000, "total": 10_000},
        {"error": "States.ExceedToleratedFailureThreshold", "cause": "10% of items failed"},
    )
    status, out, err = run(stubs, ["status", "--env", "dev", "--execution", EXECUTION], capsys)
    assert status == 3 and out.startswith("FAILED: 9,000 of 10,000 items succeeded")
    assert "States.ExceedToleratedFailureThreshold: 10% of items failed" in err


def test_an_unknown_execution_is_refused(stubs: Stubs, capsys: pytest.CaptureFixture[str]) -> None:
    stubs.sfn.add_client_error(
        "describe_execution", service_error_code="ExecutionDoesNotExist", http_status_code=400
    )
    status, _, err = run(stubs, ["status", "--env", "dev", "--execution", EXECUTION], capsys)
    assert status == 2 and "ExecutionDoesNotExist" in err


def test_wait_polls_until_the_run_ends_and_shows_progress(
    stubs: Stubs, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_describe(stubs, "RUNNING", {"succeeded": 2_000, "running": 1_000, "total": 10_000})
    expect_describe(stubs, "SUCCEEDED", {"succeeded": 10_000, "total": 10_000})
    slept: list[float] = []
    progress, out = io.StringIO(), io.StringIO()
    status = cloud.wait(
        stubs.aws(), EXECUTION, out, poll_seconds=7, sleep=slept.append, progress_out=progress
    )
    assert status == 0 and slept == [7]
    assert "2,000/10,000 items" in progress.getvalue()
    assert "10,000/10,000 items" in progress.getvalue()
    assert "SUCCEEDED: 10,000 of 10,000 items succeeded" in out.getvalue()


def child(items: list[Any], rows: list[dict[str, Any]] | None, **failure: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ExecutionArn": f"{EXECUTION}:child",
        "Input": json.dumps({"Items": items, "BatchInput": {"batch_scoring": True}}),
        "Status": "SUCCEEDED" if rows is not None else "FAILED",
    }
    if rows is not None:
        entry["Output"] = json.dumps({"statusCode": 200, "rows": rows})
    entry.update(failure)
    return entry


def test_fetch_assembles_the_result_files_into_one_file_in_input_order(
    stubs: Stubs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    execution_input = {
        "input": {"bucket": "in-bucket", "key": "rows.csv", "format": "csv"},
        "output": {"bucket": "out-bucket", "prefix": "scored/"},
        "function_version": "7",
        "run_id": "run-1",
    }
    expect_describe(
        stubs, "SUCCEEDED", {"succeeded": 7, "total": 7}, {"input": json.dumps(execution_input)}
    )
    manifest = {
        "DestinationBucket": "out-bucket",
        "MapRunArn": MAP_RUN,
        "ResultFiles": {
            "SUCCEEDED": [{"Key": f"scored/{MAP_RUN_ID}/SUCCEEDED_0.json", "Size": 1}],
            "FAILED": [{"Key": f"scored/{MAP_RUN_ID}/FAILED_0.json", "Size": 1}],
            "PENDING": [],
        },
    }
    bad = {"code": "invalid_input", "message": "tenure_months: bad"}
    later: list[dict[str, Any]] = [
        {"position": 2, "prediction": 1, "probability": 0.75},
        {"position": 3, "error": bad},
    ]
    first: list[dict[str, Any]] = [{"position": 0, "prediction": 0, "probability": 0.25},
             {"position": 1, "prediction": 0, "probability": 0.125}]  # fmt: skip
    refused = child([{"index": 6, "row": {}}], [])
    refused["Output"] = json.dumps(
        {"statusCode": 400, "error": {"code": "invalid_request", "message": "too many rows"}}
    )
    # Children finish in any order; a batch the function refused whole answers no rows.
    succeeded = [child([], later), child([], first), refused]
    failed = [
        child(
            [{"index": 4, "row": {}}, {"index": 5, "row": {}}],
            None,
            Error="Lambda.TooManyRequestsException",
            Cause="Rate exceeded",
        )
    ]
    for key, content in (
        (f"scored/{MAP_RUN_ID}/manifest.json", manifest),
        (f"scored/{MAP_RUN_ID}/SUCCEEDED_0.json", succeeded),
        (f"scored/{MAP_RUN_ID}/FAILED_0.json", failed),
    ):
        stubs.s3.add_response(
            "get_object",
            {"Body": body(json.dumps(content).encode())},
            {"Bucket": "out-bucket", "Key": key},
        )
    to = tmp_path / "scored.csv"
    status, out, err = run(
        stubs, ["fetch", "--env", "dev", "--execution", EXECUTION, "--to", str(to)], capsys
    )
    assert status == 0, err
    with to.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["position"] for r in rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert [r["probability"] for r in rows[:3]] == ["0.25", "0.125", "0.75"]
    assert rows[3]["error"] == "tenure_months: bad"
    assert "Lambda.TooManyRequestsException: Rate exceeded" in rows[4]["error"]
    assert rows[6]["error"] == "refused: too many rows"
    assert "7 rows (4 with an error, 2 failed batches)" in out


def test_fetch_refuses_a_run_still_going(stubs: Stubs, capsys: pytest.CaptureFixture[str]) -> None:
    expect_describe(stubs, "RUNNING", {"total": 10})
    status, _, err = run(
        stubs, ["fetch", "--env", "dev", "--execution", EXECUTION, "--to", "x.csv"], capsys
    )
    assert status == 2 and "wait for it" in err


def test_the_command_line_refuses_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Through main: a refusal prints its message and exits 2 (an unknown environment)."""
    assert main(["status", "--env", "nowhere", "--execution", EXECUTION]) == 2
    assert "nowhere" in capsys.readouterr().err

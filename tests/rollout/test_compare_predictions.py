"""`rollout compare` judges what each side predicted with the canary evaluator's rule, from
its capture records grouped by request.

Lambda and CloudWatch Logs are real boto3 clients under botocore's ``Stubber`` (every
parameter and answer checked against the service models); the stack outputs and metrics
come from the fakes of test_live.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber

from serving.insights import MAX_ROWS, query
from tests.rollout.conftest import edit
from tests.rollout.test_live import CANARY, FUNCTION, FakeCloudFormation, FakeCloudWatch
from tools.rollout.__main__ import main
from tools.rollout.live import Live, LiveUnavailableError

NOW = dt.datetime(2026, 3, 1, 12, 30, 42, tzinfo=dt.UTC)
START = int(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp())
END = int(dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC).timestamp())
# The queried window as ``Live.captured`` takes it.
WINDOW = (dt.datetime.fromtimestamp(START, dt.UTC), dt.datetime.fromtimestamp(END, dt.UTC))
LOG_GROUP = "sklearn-serving-prod-inference-InferenceFunctionLogs-XYZ"


class Clients:
    def __init__(self) -> None:
        self.lambda_client = boto3.client("lambda", region_name="eu-west-1")
        self.logs = boto3.client("logs", region_name="eu-west-1")
        self.lambda_stub = Stubber(self.lambda_client)
        self.logs_stub = Stubber(self.logs)
        self.slept: list[float] = []

    def live(self) -> Live:
        return Live(
            cloudformation=FakeCloudFormation(),
            lambda_client=self.lambda_client,
            cloudwatch=FakeCloudWatch(),
            logs=self.logs,
            sleep=self.slept.append,
        )

    def log_group(self) -> None:
        self.lambda_stub.add_response(
            "get_function_configuration",
            {"FunctionName": FUNCTION, "LoggingConfig": {"LogGroup": LOG_GROUP,
                                                         "LogFormat": "Text"}},
            {"FunctionName": FUNCTION},
        )  # fmt: skip

    def side(self, version: str, batches: list[list[float]], *, running: int = 1) -> None:
        """``version``'s capture records: one per row of each batch (one request each)."""
        query_id = f"query-{version}"
        self.logs_stub.add_response(
            "start_query",
            {"queryId": query_id},
            {
                "logGroupName": LOG_GROUP,
                "startTime": START,
                "endTime": END,
                "queryString": query(version, field="lambda_version"),
                "limit": MAX_ROWS,
            },
        )
        for _ in range(running):
            self.logs_stub.add_response(
                "get_query_results", {"status": "Running", "results": []}, {"queryId": query_id}
            )
        rows = [
            [
                {"field": "@message", "value": json.dumps(
                    {"capture": 1, "request_id": f"{version}-{index}", "row": row,
                     "lambda_version": version, "features": {"x": 1.0}, "probability": p,
                     "prediction": int(p >= 0.5)})},
                {"field": "@ptr", "value": f"ptr-{index}-{row}"},
            ]
            for index, batch in enumerate(batches)
            for row, p in enumerate(batch)
        ]  # fmt: skip
        self.logs_stub.add_response(
            "get_query_results", {"status": "Complete", "results": rows}, {"queryId": query_id}
        )


@pytest.fixture
def clients() -> Iterator[Clients]:
    stubbed = Clients()
    with stubbed.lambda_stub, stubbed.logs_stub:
        yield stubbed
        stubbed.lambda_stub.assert_no_pending_responses()
        stubbed.logs_stub.assert_no_pending_responses()


def requests(generator: np.random.Generator, a: float, b: float, count: int) -> list[list[float]]:
    """``count`` requests of one to three rows with Beta(a, b) probabilities."""
    return [
        [float(p) for p in generator.beta(a, b, size=int(generator.integers(1, 4)))]
        for _ in range(count)
    ]


def compare(config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    edit(config, "prod", **CANARY)
    live = clients.live()
    code = main(
        ["compare", "--env", "prod", "--minutes", "30", "--config", str(config), *flags],
        live_factory=lambda region: live,
        now=lambda: NOW,
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return out


Requests = tuple[float, float, int]  # Beta(a, b) probabilities, count of requests


def compare_sides(
    config: Path,
    clients: Clients,
    capsys: pytest.CaptureFixture[str],
    sides: tuple[int, Requests, Requests],
    *flags: str,
    running: int = 1,
) -> str:
    """``compare`` of stable version 7 and candidate 8 answering ``sides``: a seed, then
    each side's requests (the candidate's query polled ``running`` times)."""
    seed, stable, candidate = sides
    generator = np.random.default_rng(seed)
    clients.log_group()
    clients.side("7", requests(generator, *stable))
    clients.side("8", requests(generator, *candidate), running=running)
    return compare(config, clients, capsys, *flags)


def test_a_candidate_predicting_otherwise_gets_roll_back(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    out = compare_sides(config, clients, capsys, (7, (2, 5, 400), (5, 2, 150)), running=2)
    assert f"predictions (Logs Insights on {LOG_GROUP}, the capture records" in out
    assert "  verdict: roll back\n" in out
    assert "positive share" in out and "a significant shift at 0.01" in out
    assert "page, do not roll back" not in out  # fewer than 200 candidate requests: no PSI
    assert "based on 400 stable and 150 candidate requests" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["stable"][1] == "400" and lines["candidate"][1] == "150"  # requests
    assert int(lines["candidate"][2]) > 150  # rows: one to three a request
    assert clients.slept == [1.0, 1.0, 1.0]  # one poll while running, two for the candidate


ALIKE = (8, (2, 5, 500), (2, 5, 300))
FEW = (9, (2, 5, 300), (2, 5, 20))


@pytest.mark.parametrize(
    ("sides", "said"),
    [
        (ALIKE, ["  verdict: promote\n", "no significant shift at 0.01", "PSI of the"]),
        (FEW, ["  verdict: hold\n", "candidate has 20 requests, at least 50 needed"]),
    ],
    ids=["alike-promote", "too-few"],
)
def test_the_verdict_of_sides_alike_or_too_few(
    config: Path,
    clients: Clients,
    capsys: pytest.CaptureFixture[str],
    no_aws: None,
    sides: tuple[int, Requests, Requests],
    said: list[str],
) -> None:
    out = compare_sides(config, clients, capsys, sides)
    for text in said:
        assert text in out


def test_a_failed_query_is_said_not_raised(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    clients.log_group()
    clients.logs_stub.add_client_error(
        "start_query",
        service_error_code="ResourceNotFoundException",
        service_message="The specified log group does not exist.",
    )
    out = compare(config, clients, capsys)
    assert (
        f"prediction analysis failed: querying the capture records of version 7 in {LOG_GROUP} "
        "failed: ResourceNotFoundException: The specified log group does not exist."
    ) in out


def test_a_query_that_ends_otherwise_is_named(clients: Clients) -> None:
    clients.logs_stub.add_response("start_query", {"queryId": "q"})
    clients.logs_stub.add_response("get_query_results", {"status": "Cancelled", "results": []})
    with pytest.raises(LiveUnavailableError, match=r"failed after 0 s: .* ended Cancelled"):
        clients.live().captured(LOG_GROUP, "7", *WINDOW)


def test_a_query_running_past_the_wait_is_stopped_and_named(clients: Clients) -> None:
    clients.logs_stub.add_response("start_query", {"queryId": "q"})
    for _ in range(121):
        clients.logs_stub.add_response("get_query_results", {"status": "Running", "results": []})
    clients.logs_stub.add_response("stop_query", {"success": True}, {"queryId": "q"})
    with pytest.raises(LiveUnavailableError, match=r"failed after 120 s: .* still Running"):
        clients.live().captured(LOG_GROUP, "7", *WINDOW)
    assert sum(clients.slept) == 120


def test_lines_that_are_not_capture_records_are_skipped(clients: Clients) -> None:
    record = {"capture": 1, "request_id": "r1", "features": {"x": 1.0}}
    results: Any = [
        [{"field": "@message", "value": "START RequestId: abc Version: 7"}],
        [{"field": "@message", "value": json.dumps({**record, "probability": 0.25})}],
        [{"field": "@message", "value": json.dumps({**record, "probability": 0.5})}],
    ]
    clients.logs_stub.add_response("start_query", {"queryId": "q"})
    clients.logs_stub.add_response("get_query_results", {"status": "Complete", "results": results})
    found = clients.live().captured(LOG_GROUP, "7", *WINDOW)
    assert found.predictions == [0.25, 0.5] and found.requests == 1 and found.skipped == 1


def test_thresholds_are_flags(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    out = compare_sides(config, clients, capsys, FEW, "--min-requests", "10")
    assert "too few" not in out and "at least" not in out
    assert "always-valid p" in out


def test_impossible_thresholds_are_refused(
    config: Path, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    code = main(
        ["compare", "--env", "prod", "--psi-watch", "0.3", "--psi-block", "0.2",
         "--config", str(config)],
    )  # fmt: skip
    assert code == 2
    assert "--psi-watch 0.3 --psi-block 0.2 --min-requests 50 is not allowed: PSI thresholds" in (
        capsys.readouterr().err
    )

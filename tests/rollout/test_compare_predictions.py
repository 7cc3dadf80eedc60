"""`rollout compare` analyses what each side predicted, from its prediction log lines.

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

from tests.rollout.conftest import edit
from tests.rollout.test_live import CANARY, FUNCTION, FakeCloudFormation, FakeCloudWatch
from tools.rollout.__main__ import main
from tools.rollout.live import (
    INSIGHTS_MAX_ROWS,
    PREDICTION_QUERY,
    Live,
    LiveUnavailableError,
    Predictions,
)

NOW = dt.datetime(2026, 3, 1, 12, 30, 42, tzinfo=dt.UTC)
START = int(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp())
END = int(dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC).timestamp())
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
        query_id = f"query-{version}"
        self.logs_stub.add_response(
            "start_query",
            {"queryId": query_id},
            {
                "logGroupName": LOG_GROUP,
                "startTime": START,
                "endTime": END,
                "queryString": PREDICTION_QUERY.format(version=version, limit=INSIGHTS_MAX_ROWS),
                "limit": INSIGHTS_MAX_ROWS,
            },
        )
        for _ in range(running):
            self.logs_stub.add_response(
                "get_query_results", {"status": "Running", "results": []}, {"queryId": query_id}
            )
        rows = [
            [
                {"field": "@message", "value": json.dumps(
                    {"message": "prediction", "lambda_version": version, "rows": len(batch),
                     "probabilities": batch, "predictions": [int(p >= 0.5) for p in batch]})},
                {"field": "@ptr", "value": f"ptr-{index}"},
            ]
            for index, batch in enumerate(batches)
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


def compare_sides(
    config: Path,
    clients: Clients,
    capsys: pytest.CaptureFixture[str],
    sides: tuple[int, tuple[float, float, int], tuple[float, float, int]],
    *flags: str,
) -> str:
    """``rollout compare`` on version 7 and 8's logged predictions; ``sides`` is the seed and
    each side's Beta(a, b) shape and request count."""
    seed, stable, candidate = sides
    generator = np.random.default_rng(seed)
    clients.log_group()
    clients.side("7", requests(generator, *stable))
    clients.side("8", requests(generator, *candidate))
    return compare(config, clients, capsys, *flags)


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


def test_a_candidate_predicting_otherwise_gets_roll_back(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    generator = np.random.default_rng(7)
    clients.log_group()
    clients.side("7", requests(generator, 2, 5, 400))
    clients.side("8", requests(generator, 5, 2, 150), running=2)
    out = compare(config, clients, capsys)
    assert f"predictions (Logs Insights on {LOG_GROUP}" in out
    assert "  verdict: roll back\n" in out
    assert "    - PSI " in out and "is above 0.25" in out
    assert "significant at 0.01" in out
    assert "based on" in out and "stable and" in out and "candidate predictions" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["stable"][1] == "400" and lines["candidate"][1] == "150"  # requests
    assert clients.slept == [1.0, 1.0, 1.0]  # one poll while running, two for the candidate


FEW_CANDIDATES = (9, (2, 5, 300), (2, 5, 20))


def test_a_candidate_predicting_alike_gets_promote(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    out = compare_sides(config, clients, capsys, (8, (2, 5, 500), (2, 5, 300)))
    assert "  verdict: promote\n" in out
    assert "no significant change at 0.01" in out


def test_too_few_predictions_is_a_verdict(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    out = compare_sides(config, clients, capsys, FEW_CANDIDATES)
    assert "  verdict: too few requests to judge\n" in out
    assert "candidate has " in out and "predictions, at least 200 needed" in out


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
        f"prediction analysis failed: querying the prediction logs of version 7 in {LOG_GROUP} "
        "failed: ResourceNotFoundException: The specified log group does not exist."
    ) in out


def version_7_predictions(clients: Clients, status: str, results: Any) -> Predictions:
    """``Live.predictions`` of version 7 over the window, the query ending with ``status``."""
    clients.logs_stub.add_response("start_query", {"queryId": "q"})
    clients.logs_stub.add_response("get_query_results", {"status": status, "results": results})
    start = dt.datetime.fromtimestamp(START, dt.UTC)
    end = dt.datetime.fromtimestamp(END, dt.UTC)
    return clients.live().predictions(LOG_GROUP, "7", start, end)


def test_a_query_that_ends_otherwise_is_named(clients: Clients) -> None:
    with pytest.raises(LiveUnavailableError, match="the query ended Cancelled after 0 s"):
        version_7_predictions(clients, "Cancelled", [])


def test_lines_that_are_not_predictions_are_skipped(clients: Clients) -> None:
    results: Any = [
        [{"field": "@message", "value": "START RequestId: abc Version: 7"}],
        [{"field": "@message", "value": json.dumps({"probabilities": [0.25, 0.5]})}],
    ]
    found = version_7_predictions(clients, "Complete", results)
    assert found.values == [0.25, 0.5] and found.requests == 2 and not found.truncated


def test_thresholds_are_flags(
    config: Path, clients: Clients, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    out = compare_sides(config, clients, capsys, FEW_CANDIDATES, "--min-samples", "10",
                        "--psi-watch", "0.5", "--psi-block", "0.9")  # fmt: skip
    assert "too few requests" not in out
    assert "(fine below 0.5, watch to 0.9, block above)" in out


def test_impossible_thresholds_are_refused(
    config: Path, capsys: pytest.CaptureFixture[str], no_aws: None
) -> None:
    code = main(
        ["compare", "--env", "prod", "--psi-watch", "0.3", "--psi-block", "0.2",
         "--config", str(config)],
    )  # fmt: skip
    assert code == 2
    assert "--psi-watch 0.3 --psi-block 0.2 --min-samples 200 is not allowed: PSI thresholds" in (
        capsys.readouterr().err
    )

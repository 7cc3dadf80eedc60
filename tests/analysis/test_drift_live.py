"""``python -m tools.drift --env E``: the deployed version's live capture records, read with
Logs Insights, under botocore's Stubber (CloudFormation and CloudWatch Logs models)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from serving.distributions import reference_distributions
from serving.insights import query
from tools.drift import __main__ as drift
from training.schema import FEATURES

STACK = "sklearn-serving-prod-inference"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    X = np.column_stack(
        [rng.uniform(f.minimum, min(f.maximum, 100), 3000).round() for f in FEATURES]
    )
    data = {"reference_distributions": reference_distributions(
        X, [f.to_json() for f in FEATURES], rng.uniform(0, 1, 3000))}  # fmt: skip
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any, Stubber, Stubber]]:
    session = boto3.Session(
        aws_access_key_id="t", aws_secret_access_key="t", region_name="eu-west-1"
    )
    cloudformation, logs = session.client("cloudformation"), session.client("logs")
    with Stubber(cloudformation) as cfn, Stubber(logs) as lg:
        yield cloudformation, logs, cfn, lg
        cfn.assert_no_pending_responses()
        lg.assert_no_pending_responses()


def records(rows: int, shift: float) -> list[list[dict[str, str]]]:
    rng = np.random.default_rng(5)
    out = []
    for row in range(rows):
        features = {f.name: float(round(rng.uniform(f.minimum, min(f.maximum, 100)))) for f in
                    FEATURES}  # fmt: skip
        features["tenure_months"] += shift
        record = {"capture": 1, "features": features, "probability": float(rng.uniform(0, 1)),
                  "request_id": f"r-{row // 2}"}  # fmt: skip
        out.append([{"field": "@message", "value": json.dumps(record)}])
    return out


def stub(
    cfn: Stubber, logs: Stubber, results: list[list[dict[str, str]]], limit: int = 10_000
) -> None:
    cfn.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": STACK, "CreationTime": "2026-11-25T00:00:00Z",
                     "StackStatus": "UPDATE_COMPLETE",
                     "Outputs": [{"OutputKey": "LogGroupName", "OutputValue": "/aws/fn"}]}]},
        {"StackName": STACK},
    )  # fmt: skip
    logs.add_response(
        "start_query", {"queryId": "q"},
        {"logGroupName": "/aws/fn", "startTime": ANY, "endTime": ANY,
         "queryString": query("v1", limit), "limit": limit},
    )  # fmt: skip
    logs.add_response("get_query_results", {"status": "Complete", "results": results},
                      {"queryId": "q"})  # fmt: skip


@pytest.mark.parametrize(("shift", "status"), [(0.0, 0), (40.0, drift.EXIT_DRIFT)])
def test_live_drift_of_the_deployed_version(
    manifest: Path, clients: Any, shift: float, status: int
) -> None:
    cloudformation, logs, cfn, lg = clients
    stub(cfn, lg, records(800, shift))
    out = io.StringIO()
    code = drift.main(["--env", "prod", "--manifest", str(manifest)], out,
                      lambda region: (cloudformation, logs))  # fmt: skip
    assert code == status, out.getvalue()
    assert "capture: 800 rows (400 requests) of the last 60 minutes" in out.getvalue()


def test_a_stack_without_the_output_is_named(manifest: Path, clients: Any, capsys: Any) -> None:
    cloudformation, logs, cfn, _ = clients
    cfn.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": STACK, "CreationTime": "2026-11-25T00:00:00Z",
                     "StackStatus": "UPDATE_COMPLETE", "Outputs": []}]},
        {"StackName": STACK},
    )  # fmt: skip
    code = drift.main(["--env", "prod", "--manifest", str(manifest)], io.StringIO(),
                      lambda region: (cloudformation, logs))  # fmt: skip
    assert code == drift.EXIT_BAD_INPUT
    assert "has no LogGroupName output" in capsys.readouterr().err


def test_capture_mode_still_needs_a_manifest(capsys: Any) -> None:
    assert drift.main(["--capture", "x.jsonl"], io.StringIO()) == drift.EXIT_BAD_INPUT
    assert "--capture needs --manifest" in capsys.readouterr().err


def test_records_of_every_task_are_read_with_their_prediction() -> None:
    from serving.insights import parse

    def result(record: dict[str, object]) -> list[dict[str, str]]:
        return [{"field": "@message", "value": json.dumps({"capture": 1, **record})}]

    multiclass = parse([
        result({"features": {"colour": "red", "n": 2}, "prediction": "bee",
                "probabilities": [0.2, 0.7, 0.1]}),
        result({"features": {"colour": 7, "n": 3}, "prediction": 2,
                "probabilities": [0.2, 0.1, 0.7]}),
        # Another task among multiclass records, and a label that is not one: skipped.
        result({"features": {"colour": "red", "n": 2}, "prediction": 1.5}),
        result({"features": {"colour": "red"}, "prediction": True, "probabilities": [1, 0, 0]}),
    ])  # fmt: skip
    assert multiclass.task == "multiclass" and multiclass.predictions == ["bee", 2]
    assert multiclass.features == [{"colour": "red", "n": 2.0}, {"colour": 7.0, "n": 3.0}]
    assert multiclass.skipped == 2
    regression = parse([result({"features": {"n": 1}, "prediction": 12.5})])
    assert (regression.task, regression.predictions) == ("regression", [12.5])
    binary = parse([result({"features": {"n": 1}, "prediction": "yes", "probability": 0.75})])
    assert (binary.task, binary.predictions) == ("binary", [0.75])


def test_model_picks_one_of_the_environments_models(
    manifest: Path, clients: Any, capsys: Any
) -> None:
    cloudformation, logs, cfn, lg = clients
    # The environment's first model by name: the stack of a one-model app.
    stub(cfn, lg, records(500, 0.0))
    argv = ["--env", "prod", "--model", "churn", "--manifest", str(manifest)]
    assert drift.main(argv, io.StringIO(), lambda region: (cloudformation, logs)) == 0
    argv = ["--env", "prod", "--model", "fraud", "--manifest", str(manifest)]
    code = drift.main(argv, io.StringIO(), lambda region: (cloudformation, logs))
    assert code == drift.EXIT_BAD_INPUT
    assert "model 'fraud' is not a model of environment prod (it has: churn)" in (
        capsys.readouterr().err
    )


def test_a_truncated_sample_is_said(
    manifest: Path, clients: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import functools

    from serving import insights

    cloudformation, logs, cfn, lg = clients
    # The real fetch with a limit of 300 rows and one query: the window holds more.
    monkeypatch.setattr(drift, "fetch", functools.partial(insights.fetch, limit=300,
                                                          max_queries=1))  # fmt: skip
    for as_json in ([], ["--json"]):
        stub(cfn, lg, records(300, 0.0), limit=300)
        out = io.StringIO()
        argv = ["--env", "prod", "--manifest", str(manifest), *as_json]
        drift.main(argv, out, lambda region: (cloudformation, logs))
        said = out.getvalue() if not as_json else capsys.readouterr().err
        assert "sample truncated: the window held more capture records" in said

"""The drift monitor: its calls against the real S3, CloudWatch Logs and CloudWatch models
(botocore's Stubber), and its place in the templates."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from monitors import drift as monitor
from serving.distributions import reference_distributions
from serving.drift import DriftThresholds
from serving.insights import query
from stacks.settings import ConfigError
from tests.infra.conftest import Synth, cdk_context

SCHEMA = [{"name": "tenure_months", "type": "integer"}, {"name": "monthly_charges",
                                                       "type": "number"}]  # fmt: skip


def manifest() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.integers(0, 72, 2000), rng.normal(70, 20, 2000)])
    proba = rng.uniform(0, 1, 2000)
    return {"reference_distributions": reference_distributions(X, SCHEMA, proba)}


def captured(rows: int, shift: float, per_request: int = 1) -> list[list[dict[str, str]]]:
    rng = np.random.default_rng(11)
    results = []
    for row in range(rows):
        record = {"capture": 1, "model_version": "v1", "request_id": f"r-{row // per_request}",
                  "features": {"tenure_months": int(rng.integers(0, 72)),
                               "monthly_charges": float(rng.normal(70 + shift, 20))},
                  "probability": float(rng.uniform(0, 1))}  # fmt: skip
        results.append([{"field": "@message", "value": json.dumps(record)}])
    results.append([{"field": "@message", "value": "not json"}])
    return results


SETTINGS = monitor.Settings(
    log_group="/aws/lambda/fn", bucket="models-bucket",
    manifest_key="models/churn/v1/x/manifest.json", model_version="v1",
    namespace="SklearnLambdaServing/dev", window_minutes=60,
    thresholds=DriftThresholds(watch=0.1, alarm=0.25, min_requests=200),
)  # fmt: skip


def stubbed_clients(*services: str) -> Iterator[tuple[dict[str, Any], dict[str, Stubber]]]:
    """A client of each of ``services`` under an active Stubber; each queued answer is used.

    The monitors' tests (this one and the canary evaluator's) yield from it in a fixture."""
    session = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-1"
    )
    clients = {name: session.client(name) for name in services}
    stubbers = {name: Stubber(client) for name, client in clients.items()}
    for stub in stubbers.values():
        stub.activate()
    yield clients, stubbers
    for stub in stubbers.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


@pytest.fixture
def stubbed() -> Iterator[tuple[dict[str, Any], dict[str, Stubber]]]:
    yield from stubbed_clients("s3", "logs", "cloudwatch")


def queue(
    stubbers: dict[str, Stubber],
    results: list[list[dict[str, str]]],
    document: dict[str, Any] | None = None,
) -> None:
    body = json.dumps(document or manifest()).encode()
    stubbers["s3"].add_response(
        "get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))},
        {"Bucket": SETTINGS.bucket, "Key": SETTINGS.manifest_key},
    )  # fmt: skip
    stubbers["logs"].add_response(
        "start_query", {"queryId": "q-1"},
        {"logGroupName": SETTINGS.log_group, "startTime": 1_000_000 - 3600, "endTime": 1_000_000,
         "queryString": query("v1"), "limit": 10_000},
    )  # fmt: skip
    stubbers["logs"].add_response("get_query_results", {"status": "Running"}, {"queryId": "q-1"})
    stubbers["logs"].add_response(
        "get_query_results", {"status": "Complete", "results": results}, {"queryId": "q-1"}
    )


def run(clients: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = monitor.run(
        SETTINGS, s3=clients["s3"], logs=clients["logs"], cloudwatch=clients["cloudwatch"],
        now=1_000_000, expired=lambda: False, sleep=lambda _: None,
    )  # fmt: skip
    return summary


def put_metrics(
    stubbers: dict[str, Stubber], expected: Callable[[list[dict[str, Any]]], None]
) -> None:
    class Check:
        def __eq__(self, other: object) -> bool:
            assert isinstance(other, list)
            expected(other)
            return True

    stubbers["cloudwatch"].add_response(
        "put_metric_data", {}, {"Namespace": SETTINGS.namespace, "MetricData": Check()}
    )


def test_drifted_traffic_publishes_psi_above_the_alarm(stubbed: Any) -> None:
    clients, stubbers = stubbed
    queue(stubbers, captured(1000, shift=25.0, per_request=2))

    def check(data: list[dict[str, Any]]) -> None:
        by_name = {(d["MetricName"], json.dumps(d["Dimensions"])): d["Value"] for d in data}
        version = '[{"Name": "ModelVersion", "Value": "v1"}]'
        assert by_name[("DriftRows", version)] == 1000
        assert by_name[("DriftRequests", version)] == 500
        assert by_name[("MaxFeaturePSI", version)] > 0.25
        # monthly_charges drifted; tenure_months did not.
        assert by_name[("DriftedFeatures", version)] == 1
        charges = [d for d in data if {"Name": "Feature", "Value": "monthly_charges"}
                   in d.get("Dimensions", [])]  # fmt: skip
        assert charges and charges[0]["Value"] > 0.25

    put_metrics(stubbers, check)
    summary = run(clients)
    assert (summary["rows"], summary["skipped"]) == (1000, 1)


def test_traffic_like_training_publishes_low_psi(stubbed: Any) -> None:
    clients, stubbers = stubbed
    queue(stubbers, captured(1000, shift=0.0))

    def check(data: list[dict[str, Any]]) -> None:
        values = {d["MetricName"]: d["Value"] for d in data if len(d["Dimensions"]) == 1}
        assert values["MaxFeaturePSI"] < 0.1 and values["PredictionPSI"] < 0.1
        assert (values["DriftRequests"], values["DriftedFeatures"]) == (1000, 0)

    put_metrics(stubbers, check)
    run(clients)


@pytest.mark.parametrize(("rows", "per_request"), [(50, 1), (1000, 10)])
def test_too_few_requests_publish_only_the_counts(
    stubbed: Any, rows: int, per_request: int
) -> None:
    """1,000 rows of 100 requests are 100 requests: below min_requests (200), as 50 are."""
    clients, stubbers = stubbed
    queue(stubbers, captured(rows, shift=25.0, per_request=per_request))

    def check(data: list[dict[str, Any]]) -> None:
        assert [(d["MetricName"], d["Value"]) for d in data] == [
            ("DriftRows", rows),
            ("DriftRequests", rows // per_request),
        ]

    put_metrics(stubbers, check)
    summary = run(clients)
    assert summary["report"]["result"].startswith("too few requests to judge")


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ValueError, match="LOG_GROUP is not set"):
        monitor.Settings.from_env({})


def test_the_monitor_runs_on_schedule_with_least_privilege(dev: Synth) -> None:
    functions = dev.resources("inference", "AWS::Lambda::Function")
    (monitor_id,) = [k for k, f in functions.items() if "LOG_GROUP" in json.dumps(f)]
    variables = functions[monitor_id]["Properties"]["Environment"]["Variables"]
    assert variables["MANIFEST_KEY"].startswith("models/churn/v1/")
    assert variables["MANIFEST_KEY"].endswith("/manifest.json")
    assert (variables["PSI_ALARM"], variables["MIN_REQUESTS"]) == ("0.25", "200")
    rules = [r["Properties"] for r in dev.resources("inference", "AWS::Events::Rule").values()
             if monitor_id in json.dumps(r)]  # fmt: skip
    assert [r["ScheduleExpression"] for r in rules] == ["rate(1 hour)"]
    statements = [
        s for p in dev.resources("inference", "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "PutMetricData" in json.dumps(s)
    ]  # fmt: skip
    assert [s["Condition"] for s in statements] == [
        {"StringEquals": {"cloudwatch:namespace": "SklearnLambdaServing/dev"}}
    ]


def test_drift_alarms_page_on_a_drifted_feature_or_the_prediction_psi(dev: Synth) -> None:
    alarms = {a["Properties"]["AlarmName"]: a["Properties"]
              for a in dev.resources("inference", "AWS::CloudWatch::Alarm").values()}  # fmt: skip
    for name, metric, threshold, operator in (
        ("feature-drift", "DriftedFeatures", 1, "GreaterThanOrEqualToThreshold"),
        ("prediction-drift", "PredictionPSI", 0.25, "GreaterThanThreshold"),
    ):
        alarm = alarms[f"sklearn-serving-dev-churn-{name}"]
        assert (alarm["MetricName"], alarm["Threshold"], alarm["Period"]) == (
            metric, threshold, 3600
        )  # fmt: skip
        assert alarm["ComparisonOperator"] == operator
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["Dimensions"] == [{"Name": "ModelVersion", "Value": "v1"}]


@pytest.mark.parametrize(
    ("drift", "capture", "message"),
    [
        ({"enabled": True}, {"enabled": False}, r"drift.enabled=true needs captured traffic"),
        ({"psi_watch": 0.3, "psi_alarm": 0.2}, {}, r"psi_watch=0.3 and .*psi_alarm=0.2"),
        ({"schedule_minutes": 1}, {}, r"schedule_minutes=1 is not allowed: an integer from 5"),
    ],
)
def test_bad_drift_settings_are_refused_by_name(
    drift: dict[str, Any], capture: dict[str, Any], message: str
) -> None:
    from stacks.config import load_config

    context = cdk_context()
    context["environments"]["dev"]["drift"].update(drift)
    context["environments"]["dev"]["capture"].update(capture)
    with pytest.raises(ConfigError, match=message):
        load_config({**context, "env": "dev"})


# ---------------------------------------------------------------------------- every task

COLOURS = ["red", "green", 7]
CLASSES = ["ant", "bee", "cat"]
TASK_SCHEMA = [
    {"name": "size", "dtype": "number"},
    {"name": "colour", "dtype": "categorical", "allowed": {"values": COLOURS}},
]


def multiclass_manifest() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    # Codes: positions in the colour's values, shares 0.5 / 0.3 / 0.2.
    X = np.column_stack([rng.normal(0, 1, 3000), rng.choice(3, 3000, p=[0.5, 0.3, 0.2])])
    rows = rng.dirichlet([4, 2, 1], 3000)  # mostly "ant" answered
    reference = reference_distributions(X, TASK_SCHEMA, rows, task="multiclass", classes=CLASSES)
    return {"reference_distributions": reference}


def multiclass_capture(rows: int, colours: list[float], answers: list[float]) -> list[Any]:
    rng = np.random.default_rng(12)
    results = []
    for row in range(rows):
        label = CLASSES[int(rng.choice(3, p=answers))]
        record = {"capture": 1, "model_version": "v1", "request_id": f"r-{row}",
                  "features": {"size": float(rng.normal()),
                               "colour": COLOURS[int(rng.choice(3, p=colours))]},
                  "prediction": label, "probabilities": [0.5, 0.3, 0.2]}  # fmt: skip
        results.append([{"field": "@message", "value": json.dumps(record)}])
    return results


def test_categorical_values_and_predicted_classes_are_judged_by_frequency(stubbed: Any) -> None:
    clients, stubbers = stubbed
    reference = multiclass_manifest()
    shares = reference["reference_distributions"]["prediction"]["proportions"]
    # Colour frequencies reversed; predicted classes as in training.
    queue(stubbers, multiclass_capture(1000, [0.2, 0.3, 0.5], shares[:3]), reference)

    def check(data: list[dict[str, Any]]) -> None:
        by_feature = {d["Dimensions"][1]["Value"]: d["Value"] for d in data
                      if d["MetricName"] == "FeaturePSI"}  # fmt: skip
        values = {d["MetricName"]: d["Value"] for d in data if len(d["Dimensions"]) == 1}
        assert by_feature["colour"] > 0.25 and by_feature["size"] < 0.1
        assert values["PredictionPSI"] < 0.1

    put_metrics(stubbers, check)
    summary = run(clients)
    assert (summary["rows"], summary["skipped"]) == (1000, 0)


def test_a_shift_in_the_predicted_classes_is_prediction_drift(stubbed: Any) -> None:
    clients, stubbers = stubbed
    queue(stubbers, multiclass_capture(1000, [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]),
          multiclass_manifest())  # fmt: skip

    def check(data: list[dict[str, Any]]) -> None:
        values = {d["MetricName"]: d["Value"] for d in data if len(d["Dimensions"]) == 1}
        assert values["PredictionPSI"] > 0.25 and values["MaxFeaturePSI"] < 0.1

    put_metrics(stubbers, check)
    run(clients)


def test_capture_records_of_another_task_than_the_reference_are_named(stubbed: Any) -> None:
    clients, stubbers = stubbed
    queue(stubbers, captured(300, shift=0.0), multiclass_manifest())
    with pytest.raises(ValueError, match="v1's capture records are binary but its manifest's "
                       "reference is multiclass"):  # fmt: skip
        run(clients)


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        (
            {"min_rows": 200},
            r"drift.min_rows=200 is not allowed any more: the minimum counts distinct requests "
            r"now; write environments.dev.drift.min_requests \(an integer from 150 to 10000",
        ),
        ({"min_requests": 100}, r"drift.min_requests=100 is not allowed: an integer from 150"),
        ({"min_requests": 10_001}, r"drift.min_requests=10001 is not allowed: .* to 10000"),
    ],
)
def test_min_requests_has_the_simulation_s_floor_and_min_rows_says_what_to_write(
    drift: dict[str, Any], message: str
) -> None:
    from stacks.config import load_config

    context = cdk_context()
    context["environments"]["dev"]["drift"].pop("min_requests")
    context["environments"]["dev"]["drift"].update(drift)
    with pytest.raises(ConfigError, match=message):
        load_config({**context, "env": "dev"})


def test_min_requests_reaches_the_monitor() -> None:
    from stacks.config import load_config

    context = cdk_context()
    context["environments"]["dev"]["drift"]["min_requests"] = 150
    config = load_config({**context, "env": "dev"})
    assert config.drift is not None and config.drift.min_requests == 150

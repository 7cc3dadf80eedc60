"""The traffic gate handler: a new version answers the golden set before it takes traffic.

Its calls go through real boto3 clients under botocore's ``Stubber``, which checks every
parameter and answer against the Lambda, S3 and CodeDeploy service models; each stubbed
call is one the test expects, in that order.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from custom_resource import response as cfn_response
from serving import gate_decision, golden_metrics, golden_sets, stats
from serving.reserved import GATE_KEY
from traffic_gate import cloudformation, hook, run
from traffic_gate import handler as gate

CANDIDATE = "arn:aws:lambda:eu-west-1:123456789012:function:fn:8"
STABLE = "arn:aws:lambda:eu-west-1:123456789012:function:fn:7"
BUCKET = "models"
KEY = "models/churn/v2/golden.json"
STABLE_KEY = "models/churn/v1/golden.json"


def golden_document(probabilities: list[float], labels: list[int]) -> dict[str, Any]:
    rows = [[float(i), 50.0 + i / 2] for i in range(len(labels))]
    return {
        "format": "golden-set/1",
        "rows": len(labels),
        "feature_names": ["tenure_months", "monthly_charges"],
        "features": rows,
        "labels": labels,
        "predictions": {
            "compiled": {
                "probabilities": probabilities,
                "labels": [int(p >= 0.5) for p in probabilities],
            }
        },
    }


CANDIDATE_P = [0.9, 0.2, 0.7, 0.4, 0.8, 0.1]
LABELS = [1, 0, 1, 0, 1, 0]
GOLDEN = golden_document(CANDIDATE_P, LABELS)
# The stable model's own golden set, other rows and labels.
STABLE_GOLDEN = golden_document([0.6, 0.3, 0.55, 0.45], [1, 0, 0, 1])


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def marked(rows: list[dict[str, Any]]) -> bytes:
    """The payload the gate must send: the batch and the gate's mark, which keeps the
    golden rows out of the version's logs, metrics and capture (docs/calling.md)."""
    return json.dumps({"instances": rows, GATE_KEY: True}).encode()


def sha(document: dict[str, Any]) -> str:
    return hashlib.sha256(encoded(document)).hexdigest()


class Aws:
    def __init__(self) -> None:
        self.lambda_client = boto3.client("lambda", region_name="eu-west-1")
        self.s3 = boto3.client("s3", region_name="eu-west-1")
        self.codedeploy = boto3.client("codedeploy", region_name="eu-west-1")
        self.stubs = [Stubber(c) for c in (self.lambda_client, self.s3, self.codedeploy)]
        self.lambda_stub, self.s3_stub, self.codedeploy_stub = self.stubs

    def golden(self, key: str, document: dict[str, Any]) -> None:
        self.s3_stub.add_response(
            "get_object", {"Body": body(encoded(document))}, {"Bucket": BUCKET, "Key": key}
        )

    def answers(
        self, function: str, document: dict[str, Any], probabilities: list[float], batch: int
    ) -> None:
        rows = golden_sets.instances(document)
        for start in range(0, len(rows), batch):
            answer = {
                "statusCode": 200,
                "predictions": [
                    {"prediction": int(p >= 0.5), "probability": p}
                    for p in probabilities[start : start + batch]
                ],
            }
            self.lambda_stub.add_response(
                "invoke",
                {"StatusCode": 200, "Payload": body(json.dumps(answer).encode())},
                {
                    "FunctionName": function,
                    "InvocationType": "RequestResponse",
                    "Payload": marked(rows[start : start + batch]),
                },
            )


@pytest.fixture
def aws() -> Iterator[Aws]:
    clients = Aws()
    for stub in clients.stubs:
        stub.activate()
    yield clients
    for stub in clients.stubs:
        stub.assert_no_pending_responses()
        stub.deactivate()


def properties(**changes: Any) -> dict[str, Any]:
    return {
        "FunctionArn": CANDIDATE,
        "StableFunctionArn": STABLE,
        "GoldenBucket": BUCKET,
        "GoldenKey": KEY,
        "GoldenSha256": sha(GOLDEN),
        "StableGoldenKey": STABLE_KEY,
        "StableGoldenSha256": sha(STABLE_GOLDEN),
        "Runtime": "compiled",
        "MaxLogLossIncrease": "0.03",
        "MaxAucDecrease": "0.02",
        "MaxBrierIncrease": "0.01",
        "BatchSize": "4",
        **changes,
    }


def request(kind: str = "Create", **changes: Any) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "TrafficGate",
        "ResourceProperties": properties(**changes),
    }


def custom_resource(aws: Aws, event: dict[str, Any]) -> tuple[str, str, str]:
    """The custom resource's (status, reason, physical id) for ``event``."""
    return cloudformation.on_custom_resource(event, lambda_client=aws.lambda_client, s3=aws.s3)


def expect_gate(aws: Aws, candidate: list[float], stable: list[float]) -> None:
    """The candidate's golden set read, then both versions asked its rows."""
    aws.golden(KEY, GOLDEN)
    aws.answers(CANDIDATE, GOLDEN, candidate, 4)
    aws.answers(STABLE, GOLDEN, stable, 4)


def expect_full_gate(aws: Aws, candidate: list[float], stable: list[float]) -> None:
    """``expect_gate``, then both versions asked the stable model's golden set."""
    expect_gate(aws, candidate, stable)
    aws.golden(STABLE_KEY, STABLE_GOLDEN)
    stable_rows = STABLE_GOLDEN["predictions"]["compiled"]["probabilities"]
    aws.answers(CANDIDATE, STABLE_GOLDEN, stable_rows, 4)
    aws.answers(STABLE, STABLE_GOLDEN, stable_rows, 4)


def test_the_tested_artifact_no_worse_than_stable_passes(aws: Aws) -> None:
    expect_full_gate(aws, CANDIDATE_P, [0.8, 0.3, 0.6, 0.45, 0.7, 0.2])
    status, reason, physical = custom_resource(aws, request())
    assert (status, physical) == ("SUCCESS", CANDIDATE)
    assert "identity on 6 golden rows: max |dp| 0" in reason
    assert "label flip rate against the stable model: 0.00%" in reason


def test_a_version_answering_otherwise_fails_identity(aws: Aws) -> None:
    drifted = [p + 1e-6 for p in CANDIDATE_P]
    expect_full_gate(aws, drifted, CANDIDATE_P)
    status, reason, _ = custom_resource(aws, request())
    assert status == "FAILED"
    assert reason.startswith(
        "identity: max |dp| 1e-06 against golden.json's compiled answers (tolerance 1e-09), "
        "0 of 6 labels differ"
    )


def test_a_worse_candidate_fails_naming_metric_value_and_tolerance(aws: Aws) -> None:
    # The stable model separates the classes perfectly; the candidate ranks one pair wrong.
    expect_gate(aws, CANDIDATE_P, [0.99, 0.01, 0.99, 0.01, 0.99, 0.01])
    status, reason, _ = custom_resource(aws, request(StableGoldenKey=None))
    assert status == "FAILED"
    assert "quality: log loss 0.2" in reason
    assert "(tolerance max_log_loss_increase=0.03)" in reason
    assert "quality: Brier score 0.05" in reason and "max_brier_increase=0.01" in reason
    assert "ROC AUC" not in reason  # 1.0 both: the ranking is perfect on both sides


def test_a_golden_set_changed_after_packaging_fails(aws: Aws) -> None:
    aws.golden(KEY, {**GOLDEN, "labels": [0] * 6})
    status, reason, _ = custom_resource(aws, request())
    assert status == "FAILED"
    assert f"the manifest pins {sha(GOLDEN)}: the golden set changed after packaging" in reason


def test_a_version_that_errors_fails_the_gate(aws: Aws) -> None:
    aws.golden(KEY, GOLDEN)
    aws.lambda_stub.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": body(b'{"errorMessage": "boom"}'),
        },
    )
    status, reason, _ = custom_resource(aws, request())
    assert status == "FAILED"
    assert f"{CANDIDATE} failed on rows 0-3: Unhandled" in reason


def test_bad_tolerance_is_named(aws: Aws) -> None:
    status, reason, _ = custom_resource(aws, request(MaxAucDecrease="lots"))
    assert (status, reason) == (
        "FAILED",
        "traffic gate could not run: MaxAucDecrease='lots' is not a number",
    )


def test_delete_checks_nothing(aws: Aws) -> None:
    event = {**request("Delete"), "PhysicalResourceId": CANDIDATE}
    assert custom_resource(aws, event) == (
        "SUCCESS",
        "nothing to undo",
        CANDIDATE,
    )


def test_response_goes_to_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    class Answer(io.BytesIO):
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *args: object) -> None:
            pass

    def urlopen(req: Any, timeout: float) -> Answer:
        sent.append(req)
        return Answer(b"")

    monkeypatch.setattr(cfn_response.urllib.request, "urlopen", urlopen)
    gate.respond(request(), "FAILED", "identity: ...", CANDIDATE)
    (req,) = sent
    assert req.get_method() == "PUT"
    assert json.loads(req.data) == {
        "Status": "FAILED",
        "Reason": "identity: ...",
        "PhysicalResourceId": CANDIDATE,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "TrafficGate",
    }


# ---------------------------------------------------------------------------- CodeDeploy hook

HOOK_EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-1"}
APPSPEC = {
    "version": 0.0,
    "Resources": [
        {
            "InferenceFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Name": "arn:aws:lambda:eu-west-1:123456789012:function:fn",
                    "Alias": "production",
                    "CurrentVersion": "7",
                    "TargetVersion": "8",
                },
            }
        }
    ],
}
HOOK_ENV = {
    "GOLDEN_BUCKET": BUCKET,
    "GOLDEN_KEY": KEY,
    "GOLDEN_SHA256": sha(GOLDEN),
    "MODEL_RUNTIME": "compiled",
    "MAX_LOG_LOSS_INCREASE": "0.03",
    "MAX_AUC_DECREASE": "0.02",
    "MAX_BRIER_INCREASE": "0.01",
    "BATCH_SIZE": "4",
}


def expect_hook(aws: Aws) -> None:
    aws.codedeploy_stub.add_response(
        "get_deployment",
        {
            "deploymentInfo": {
                "revision": {
                    "revisionType": "AppSpecContent",
                    "appSpecContent": {"content": json.dumps(APPSPEC)},
                }
            }
        },
        {"deploymentId": "d-ABCDEF123"},
    )


def expect_report(aws: Aws, status: str) -> None:
    aws.codedeploy_stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-1"},
        {
            "deploymentId": "d-ABCDEF123",
            "lifecycleEventHookExecutionId": "hook-1",
            "status": status,
        },
    )


def run_hook(
    aws: Aws, env: dict[str, str] = HOOK_ENV, deadline: run.Deadline = run.NO_DEADLINE
) -> str:
    return hook.on_hook(
        HOOK_EVENT,
        env,
        lambda_client=aws.lambda_client,
        s3=aws.s3,
        codedeploy=aws.codedeploy,
        deadline=deadline,
    )


@pytest.mark.parametrize(
    ("candidate", "status"),
    [
        (CANDIDATE_P, "Succeeded"),  # the tested artifact
        ([1 - p for p in CANDIDATE_P], "Failed"),  # a swapped artifact
    ],
)
def test_hook_checks_the_target_version_against_the_current_one(
    aws: Aws, candidate: list[float], status: str
) -> None:
    expect_hook(aws)
    expect_gate(aws, candidate, CANDIDATE_P)
    expect_report(aws, status)
    assert run_hook(aws) == status


def test_hook_reports_failed_when_it_cannot_run(aws: Aws) -> None:
    expect_hook(aws)
    expect_report(aws, "Failed")
    assert run_hook(aws, {k: v for k, v in HOOK_ENV.items() if k != "GOLDEN_KEY"}) == "Failed"


# ---------------------------------------------------------------------------- metrics


def assert_match_numpy(pairs: list[tuple[str, str]], *args: Any) -> None:
    """Each ``golden_metrics`` function named first agrees with the ``serving.stats`` one
    named second on ``args``."""
    for mine, numpy_version in pairs:
        expected = getattr(stats, numpy_version)(*args)
        assert getattr(golden_metrics, mine)(*args) == pytest.approx(expected, rel=1e-12), mine


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standard_library_metrics_match_the_numpy_ones(seed: int) -> None:
    generator = np.random.default_rng(seed)
    y = generator.integers(0, 2, 300).tolist()
    # Rounded: ties, which ROC AUC must average.
    p = np.round(generator.random(300), 2).tolist()
    assert_match_numpy([("log_loss", "log_loss"), ("brier", "brier"), ("roc_auc", "roc_auc")], y, p)


# ---------------------------------------------------------------------------- every task

CLASSES = ["ant", "bee", "cat"]
ROWS_3 = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4], [0.1, 0.1, 0.8]]
LABELS_3 = ["ant", "bee", "cat", "bee", "cat"]
VALUES = [10.0, 12.5, 9.0, 11.0]
TARGETS = [10.1, 12.4, 9.2, 10.8]


def task_document(task: str, outputs: list[Any], y: list[Any]) -> dict[str, Any]:
    """A golden set of ``task`` with one numeric and one categorical feature."""
    rows = [[float(i), float(i % 3)] for i in range(len(y))]
    if task == "regression":
        recorded: dict[str, Any] = {"values": outputs}
    else:
        recorded = {"probabilities": outputs, "labels": [CLASSES[r.index(max(r))] for r in outputs]}
    return {
        "format": "golden-set/1",
        "rows": len(y),
        "source": {},
        "task": task,
        "classes": None if task == "regression" else CLASSES,
        "feature_names": ["size", "colour"],
        "categories": {"colour": ["red", "green", 7]},
        "features": rows,
        "labels": y,
        "predictions": {"compiled": recorded},
    }


def answer_of(task: str, output: Any) -> dict[str, Any]:
    # The handler's answers (docs/calling.md): one shape per task.
    if task == "regression":
        return {"prediction": output}
    return {
        "prediction": CLASSES[output.index(max(output))],
        "probabilities": {c: p for c, p in zip(CLASSES, output, strict=True)},
    }


def expect_answers(
    aws: Aws, function: str, document: dict[str, Any], outputs: list[Any], task: str
) -> None:
    answer = {"statusCode": 200, "predictions": [answer_of(task, o) for o in outputs]}
    aws.lambda_stub.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": body(json.dumps(answer).encode())},
        {
            "FunctionName": function,
            "InvocationType": "RequestResponse",
            "Payload": marked(golden_sets.instances(document)),
        },
    )


def task_request(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return request(**{"GoldenSha256": sha(document), "StableGoldenKey": None, "BatchSize": "10",
                      **changes})  # fmt: skip


MULTICLASS = task_document("multiclass", ROWS_3, LABELS_3)
REGRESSION = task_document("regression", VALUES, TARGETS)


def task_gate(
    aws: Aws,
    document: dict[str, Any],
    candidate: list[Any],
    stable: list[Any] | None,
    **changes: Any,
) -> tuple[str, str]:
    """(status, reason) of the custom resource on ``document`` (the only golden set) when
    the candidate answers ``candidate`` and the stable version ``stable`` (None: not asked)."""
    aws.golden(KEY, document)
    expect_answers(aws, CANDIDATE, document, candidate, document["task"])
    if stable is not None:
        expect_answers(aws, STABLE, document, stable, document["task"])
    status, reason, _ = custom_resource(aws, task_request(document, **changes))
    return status, reason


def test_categorical_rows_are_sent_as_the_values_callers_send() -> None:
    rows = golden_sets.instances(MULTICLASS)
    assert [row["colour"] for row in rows] == ["red", "green", 7, "red", "green"]
    assert rows[1]["size"] == 1  # integers stay integers


def test_a_multiclass_candidate_identical_to_its_golden_set_passes(aws: Aws) -> None:
    status, reason = task_gate(aws, MULTICLASS, ROWS_3, ROWS_3)
    assert status == "SUCCESS", reason
    assert "roc_auc_ovr: candidate" in reason and "accuracy: candidate" in reason


def test_a_multiclass_candidate_is_checked_per_probability_cell(aws: Aws) -> None:
    moved = [row[:] for row in ROWS_3]
    moved[2][1] += 1e-6  # one cell, the label unchanged
    status, reason = task_gate(aws, MULTICLASS, moved, None, StableFunctionArn=None)
    assert status == "FAILED"
    assert reason.startswith("identity: max |dp| 1e-06 against golden.json's compiled answers")


def test_a_worse_multiclass_candidate_fails_on_log_loss_and_one_vs_rest_auc(aws: Aws) -> None:
    perfect = [[0.98 if CLASSES[k] == label else 0.01 for k in range(3)] for label in LABELS_3]
    status, reason = task_gate(aws, MULTICLASS, ROWS_3, perfect)
    assert status == "FAILED"
    assert "quality: log loss" in reason and "(tolerance max_log_loss_increase=0.03)" in reason
    assert "quality: ROC AUC (one-vs-rest) 0.861111" in reason
    assert "max_auc_decrease=0.02" in reason


def test_a_regression_candidate_is_judged_on_relative_rmse(aws: Aws) -> None:
    # A perfect stable model.
    status, reason = task_gate(aws, REGRESSION, VALUES, TARGETS, MaxRmseIncreaseFraction="0.5")
    assert status == "FAILED"
    assert "quality: RMSE 0.158114 against the stable model's 0 on the candidate's golden set" in (
        reason
    )
    assert "up from 0 (tolerance max_rmse_increase_fraction=0.5)" in reason


def test_a_regression_candidate_within_the_fraction_passes(aws: Aws) -> None:
    stable = [t + 1.02 * (v - t) for v, t in zip(VALUES, TARGETS, strict=True)]  # RMSE +2 %
    status, reason = task_gate(aws, REGRESSION, VALUES, stable)
    assert status == "SUCCESS", reason
    assert "identity on 4 golden rows: max |d value| / max(1, |value|) 0 (bound 1e-09)" in reason
    assert "rmse: candidate" in reason and "label flip rate" not in reason


def test_a_regression_candidate_beyond_the_default_fraction_fails(aws: Aws) -> None:
    stable = [t + 0.9 * (v - t) for v, t in zip(VALUES, TARGETS, strict=True)]  # RMSE -10 %
    status, reason = task_gate(aws, REGRESSION, VALUES, stable)
    assert status == "FAILED"
    # Without the property (a stack synthesized before it): the default 0.02.
    assert "up by 11.11% (tolerance max_rmse_increase_fraction=0.02)" in reason


def test_models_of_different_tasks_are_not_compared(aws: Aws) -> None:
    aws.golden(KEY, MULTICLASS)
    expect_answers(aws, CANDIDATE, MULTICLASS, ROWS_3, "multiclass")
    aws.golden(STABLE_KEY, STABLE_GOLDEN)
    status, reason, _ = custom_resource(aws, task_request(MULTICLASS, StableGoldenKey=STABLE_KEY))
    assert status == "FAILED"
    assert (
        'the candidate is a multiclass model over the classes ["ant", "bee", "cat"] but the '
        "stable model is a binary model over the classes [0, 1]: the gate compares models of "
        "one task and one set of classes"
    ) in reason


def test_a_stable_version_answering_another_task_is_named(aws: Aws) -> None:
    aws.golden(KEY, MULTICLASS)
    expect_answers(aws, CANDIDATE, MULTICLASS, ROWS_3, "multiclass")
    churn = {"statusCode": 200, "predictions": [{"prediction": 1, "probability": 0.7}] * 5}
    aws.lambda_stub.add_response(
        "invoke", {"StatusCode": 200, "Payload": body(json.dumps(churn).encode())}
    )
    status, reason, _ = custom_resource(aws, task_request(MULTICLASS))
    assert status == "FAILED"
    assert f"{STABLE} rows 0-4: the answer" in reason
    assert 'is not one of a multiclass model over the classes ["ant", "bee", "cat"]' in reason


@pytest.mark.parametrize("seed", [0, 1])
def test_standard_library_task_metrics_match_the_numpy_ones(seed: int) -> None:
    generator = np.random.default_rng(seed)
    y = generator.integers(0, 3, 200).tolist()
    rows = np.round(generator.dirichlet(np.ones(3), 200), 2)
    rows = (rows / rows.sum(axis=1, keepdims=True)).tolist()
    assert_match_numpy(
        [
            ("multiclass_log_loss", "multiclass_log_loss"),
            ("roc_auc_ovr", "roc_auc_ovr"),
            ("accuracy", "multiclass_accuracy"),
        ],
        y,
        rows,
    )
    truth, values = generator.normal(size=50).tolist(), generator.normal(size=50).tolist()
    assert_match_numpy([("rmse", "rmse"), ("mae", "mae"), ("r2", "r2")], truth, values)


# ------------------------------------------------- AppSpec not in GetDeployment's answer

# GetDeployment may leave out the AppSpec's content ("Required: No"); the revision it names
# is then read with GetApplicationRevision.
REVISION_WITHOUT_CONTENT = {
    "revisionType": "AppSpecContent",
    "appSpecContent": {"sha256": "0" * 64},
}


def expect_deployment_without_content(aws: Aws) -> None:
    aws.codedeploy_stub.add_response(
        "get_deployment",
        {
            "deploymentInfo": {
                "applicationName": "sklearn-serving-app",
                "deploymentId": "d-ABCDEF123",
                "revision": REVISION_WITHOUT_CONTENT,
            }
        },
        {"deploymentId": "d-ABCDEF123"},
    )


def expect_revision(aws: Aws, revision: dict[str, Any]) -> None:
    aws.codedeploy_stub.add_response(
        "get_application_revision",
        {"applicationName": "sklearn-serving-app", "revision": revision},
        {"applicationName": "sklearn-serving-app", "revision": REVISION_WITHOUT_CONTENT},
    )


@pytest.mark.parametrize(
    "revision",
    [
        {
            "revisionType": "AppSpecContent",
            "appSpecContent": {"content": json.dumps(APPSPEC), "sha256": "0" * 64},
        },
        {"revisionType": "String", "string": {"content": json.dumps(APPSPEC)}},
    ],
    ids=["appspec-content", "string"],
)
def test_hook_reads_the_appspec_from_the_revision_when_the_deployment_omits_it(
    aws: Aws, revision: dict[str, Any]
) -> None:
    expect_deployment_without_content(aws)
    expect_revision(aws, revision)
    expect_gate(aws, CANDIDATE_P, CANDIDATE_P)
    expect_report(aws, "Succeeded")
    assert run_hook(aws) == "Succeeded"


def test_hook_fails_clearly_when_no_answer_has_the_appspec(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_deployment_without_content(aws)
    expect_revision(aws, REVISION_WITHOUT_CONTENT)
    expect_report(aws, "Failed")
    assert run_hook(aws) == "Failed"
    assert (
        "neither GetDeployment nor GetApplicationRevision answered the AppSpec content of "
        "deployment d-ABCDEF123 (application sklearn-serving-app)"
    ) in capsys.readouterr().out


# ---------------------------------------------------------------------------- the deadline


class DroppingContext:
    """A Lambda context whose remaining time is each of ``remaining_ms`` in turn, then
    the last one."""

    def __init__(self, *remaining_ms: int) -> None:
        self.remaining = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def test_the_custom_resource_answers_failed_before_its_timeout(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first batch starts with 10 minutes left; before the second only 25 s remain,
    # less than the time kept to answer CloudFormation.
    clients = {"lambda": aws.lambda_client, "s3": aws.s3, "codedeploy": aws.codedeploy}
    monkeypatch.setattr(gate_boto3(), "client", lambda name: clients[name])
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        gate, "respond", lambda event, status, reason, physical: sent.append(
            {"status": status, "reason": reason}
        )
    )  # fmt: skip
    aws.golden(KEY, GOLDEN)
    first_batch = {**GOLDEN, "features": GOLDEN["features"][:4]}
    aws.answers(CANDIDATE, first_batch, CANDIDATE_P, 4)
    gate.handler(request(), DroppingContext(600_000, 25_000))
    (answer,) = sent
    assert answer["status"] == "FAILED"
    assert answer["reason"] == (
        "traffic gate could not run: deadline: 25 s of the gate's time left before "
        f"{CANDIDATE} rows 4-5, less than the 30 s kept to send the answer"
    )


def test_the_hook_reports_failed_before_its_timeout(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_hook(aws)
    aws.golden(KEY, GOLDEN)
    expect_report(aws, "Failed")
    deadline = run.Deadline(DroppingContext(29_999).get_remaining_time_in_millis)
    assert run_hook(aws, deadline=deadline) == "Failed"
    assert f"deadline: 29 s of the gate's time left before {CANDIDATE} rows 0-3" in (
        capsys.readouterr().out
    )


def gate_boto3() -> ModuleType:
    return importlib.import_module("boto3")


# ------------------------------------------- the gate runs only when a version's traffic grows

ALIAS = {"AliasName": "production", "FunctionName": "fn"}


def expect_alias(aws: Aws, version: str, weights: dict[str, float] | None = None) -> None:
    answer: dict[str, Any] = {
        "AliasArn": "arn:aws:lambda:eu-west-1:123456789012:function:fn:production",
        "Name": "production",
        "FunctionVersion": version,
    }
    if weights is not None:
        answer["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    aws.lambda_stub.add_response("get_alias", answer, {"FunctionName": "fn", "Name": "production"})


def test_a_candidate_without_traffic_is_not_checked_and_nothing_is_called(aws: Aws) -> None:
    # rollout rollback: the candidate (maybe broken) keeps no traffic; the gate must not
    # stand between it and the rollback. No stub: any AWS call fails the test.
    status, reason, physical = custom_resource(
        aws, request("Update", CandidateWeight="0", StableFunctionArn=None, **ALIAS)
    )
    assert (status, physical) == ("SUCCESS", CANDIDATE)
    assert reason == (
        f"not checked: {CANDIDATE} takes no traffic after this deploy (CandidateWeight 0)"
    )


@pytest.mark.parametrize(
    ("serving", "weights"),
    [
        ("7", {"8": 0.1}),  # a ramp or a promote: the canary already takes traffic
        ("8", None),  # an update-rollback re-sending the properties of what serves
    ],
)
def test_a_candidate_the_alias_already_routes_is_not_checked_again(
    aws: Aws, serving: str, weights: dict[str, float] | None
) -> None:
    expect_alias(aws, serving, weights)
    status, reason, _ = custom_resource(aws, request("Update", CandidateWeight="0.5", **ALIAS))
    assert status == "SUCCESS"
    assert reason == (
        "not checked: alias production already routes version 8, so it passed the gate "
        "before it took traffic"
    )


@pytest.mark.parametrize(
    ("request_type", "weight", "alias_error"),
    [
        ("Update", "0.1", None),  # the alias routes another version only
        # The first deploy: no alias yet.
        ("Create", "1", ("ResourceNotFoundException", "Function not found: fn:production", 404)),
        # Not knowing what the alias routes is no reason to skip the check.
        ("Update", "0.5", ("TooManyRequestsException", "Rate exceeded", 429)),
    ],
    ids=["routes-another-version", "no-alias", "alias-unreadable"],
)
def test_a_candidate_the_alias_does_not_route_is_checked(
    aws: Aws, request_type: str, weight: str, alias_error: tuple[str, str, int] | None
) -> None:
    if alias_error is None:
        expect_alias(aws, "7")
    else:
        code, message, http_status = alias_error
        aws.lambda_stub.add_client_error(
            "get_alias",
            service_error_code=code,
            service_message=message,
            http_status_code=http_status,
            expected_params={"FunctionName": "fn", "Name": "production"},
        )
    expect_full_gate(aws, CANDIDATE_P, [0.8, 0.3, 0.6, 0.45, 0.7, 0.2])
    status, reason, _ = custom_resource(aws, request(request_type, CandidateWeight=weight, **ALIAS))
    assert status == "SUCCESS"
    assert reason.startswith("identity on 6 golden rows")
    assert "label flip rate against the stable model" in reason


def test_without_the_alias_a_drifted_first_deploy_is_refused(aws: Aws) -> None:
    """The first deploy is checked for real: drifted answers fail it."""
    aws.lambda_stub.add_client_error(
        "get_alias",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found: fn:production",
        http_status_code=404,
        expected_params={"FunctionName": "fn", "Name": "production"},
    )
    expect_full_gate(aws, [p + 1e-6 for p in CANDIDATE_P], CANDIDATE_P)
    status, reason, _ = custom_resource(aws, request("Create", CandidateWeight="1", **ALIAS))
    assert status == "FAILED"
    assert reason.startswith("identity: max |dp| 1e-06")


def test_a_bad_candidate_weight_is_named(aws: Aws) -> None:
    status, reason, _ = custom_resource(aws, request(CandidateWeight="half", **ALIAS))
    assert (status, reason) == (
        "FAILED",
        "traffic gate could not run: CandidateWeight='half' is not allowed: a number from 0 to 1",
    )


# The decision's own cases (serving/gate_decision.py): the relative identity bound, NaN
# anywhere in an answer, and golden sets without labels.
TOLERANCES = gate_decision.Tolerances(0.03, 0.02, 0.01)


def regression_golden(values: list[float]) -> dict[str, Any]:
    return {
        **golden_document([0.5] * len(values), [0] * len(values)),
        "task": "regression",
        "classes": None,
        "labels": values,
        "predictions": {"compiled": {"values": values}},
    }


def test_the_identity_bound_is_relative_above_one() -> None:
    # One float64 step at 8.4e6 is 1.9e-9: above an absolute 1e-9, within the relative one.
    recorded = [8.4e6, 1.5e7, 0.25]
    stepped = [math.nextafter(v, math.inf) for v in recorded]
    assert stepped[0] - recorded[0] > gate_decision.IDENTITY_BOUND
    verdict = gate_decision.evaluate(
        regression_golden(recorded), "compiled", golden_sets.Answers(stepped, None), [], TOLERANCES
    )
    assert verdict.passed, verdict.refusals
    # A relative change of 1e-8 is another model's answer, large or small.
    moved = [v * (1 + 1e-8) for v in recorded]
    verdict = gate_decision.evaluate(
        regression_golden(recorded), "compiled", golden_sets.Answers(moved, None), [], TOLERANCES
    )
    assert verdict.refusals[0].startswith("identity: max |d value| / max(1, |value|) 1e-08")
    # Below 1 the bound stays absolute: 0.25 + 2e-9 is refused.
    small = [*recorded[:2], 0.25 + 2e-9]
    verdict = gate_decision.evaluate(
        regression_golden(recorded), "compiled", golden_sets.Answers(small, None), [], TOLERANCES
    )
    assert not verdict.passed


@pytest.mark.parametrize("row", [0, 3, 5])
def test_a_nan_anywhere_in_the_candidates_answer_is_refused(row: int) -> None:
    answers = list(CANDIDATE_P)
    answers[row] = math.nan
    labels = [int(p >= 0.5) for p in CANDIDATE_P]
    verdict = gate_decision.evaluate(
        GOLDEN, "compiled", golden_sets.Answers(answers, labels), [], TOLERANCES
    )
    assert not verdict.passed
    assert verdict.refusals[0] == (
        "answers: the candidate answered a value that is not a finite number on its golden "
        f"set at row {row} (1 of 6 rows, e.g. nan)"
    )
    # Reported as NaN, never as a largest difference of 0.
    assert math.isnan(verdict.max_abs_diff)
    assert "identity: max |dp| nan" in verdict.refusals[1]


def test_a_nan_in_the_stable_versions_answer_is_refused_naming_it() -> None:
    candidate = golden_sets.Answers(list(CANDIDATE_P), [int(p >= 0.5) for p in CANDIDATE_P])
    stable = golden_sets.Answers([0.8, 0.3, 0.6, 0.45, math.inf, 0.2], [1, 0, 1, 0, 1, 0])
    scored = [gate_decision.Scored(gate_decision.CANDIDATE_ROWS, LABELS, candidate, stable)]
    verdict = gate_decision.evaluate(GOLDEN, "compiled", candidate, scored, TOLERANCES)
    assert (
        "answers: the stable version answered a value that is not a finite number on the "
        "candidate's golden set at row 4 (1 of 6 rows, e.g. inf)"
    ) in verdict.refusals


UNLABELLED = {**GOLDEN, "labels": None}


def unlabelled_gate(aws: Aws, **changes: Any) -> tuple[str, str, str]:
    aws.golden(KEY, UNLABELLED)
    # An inverting candidate: with no labels, nothing could tell.
    aws.answers(CANDIDATE, UNLABELLED, CANDIDATE_P, 4)
    aws.answers(STABLE, UNLABELLED, [1 - p for p in CANDIDATE_P], 4)
    return custom_resource(
        aws,
        request(StableGoldenKey=None, GoldenSha256=sha(UNLABELLED), **changes),
    )


def test_a_golden_set_without_labels_is_refused_naming_the_key(aws: Aws) -> None:
    status, reason, _ = unlabelled_gate(aws)
    assert status == "FAILED"
    assert reason == (
        "quality not checked: the candidate's golden set has no labels (packaged without "
        "labelled data), so nothing shows the candidate predicts as well as the stable "
        "model; package it with labelled data, or set quality_gate.allow_unlabelled_golden: "
        "true to deploy it with quality unchecked"
    )


def test_a_golden_set_without_labels_passes_unchecked_when_acknowledged(aws: Aws) -> None:
    status, reason, _ = unlabelled_gate(aws, AllowUnlabelledGolden="true")
    assert status == "SUCCESS"
    assert "quality not checked: the golden set has no labels" in reason
    assert "label flip rate against the stable model: 100.00%" in reason


def test_a_bad_acknowledgement_is_named(aws: Aws) -> None:
    status, reason, _ = custom_resource(aws, request(AllowUnlabelledGolden="yes"))
    assert status == "FAILED"
    assert "AllowUnlabelledGolden='yes' is not allowed: 'true' or 'false'" in reason


def test_a_golden_set_is_compared_only_on_rows_the_other_version_did_not_train_on() -> None:
    labels = [i % 2 for i in range(400)]
    # On the first 200 rows the stable version answers perfectly: rows it trained on.
    # On the other 200 it is no better than the candidate.
    candidate = golden_sets.Answers([0.3 + 0.4 * y for y in labels], None)
    stable = golden_sets.Answers(
        [(0.01 + 0.98 * y) if i < 200 else 0.3 + 0.4 * y for i, y in enumerate(labels)], None
    )
    seen = [i < 200 for i in range(400)]
    kind_golden = {**golden_document([0.5] * 4, [0, 1, 0, 1])}

    def verdict(seen_rows: list[bool] | None) -> gate_decision.Verdict:
        scored = gate_decision.Scored(
            "the candidate's golden set", labels, candidate, stable, seen_rows
        )
        recorded = golden_sets.Answers([0.5] * 4, [1, 1, 1, 1])
        return gate_decision.evaluate(kind_golden, "compiled", recorded, [scored], TOLERANCES)

    # On every row the stable version looks far better: refused.
    everything = verdict(None)
    assert any(r.startswith("quality: log loss") for r in everything.refusals)
    assert "compared on every row (no fingerprint" in "\n".join(everything.lines())
    # On the 200 rows it did not train on the two are equal: passed.
    fresh = verdict(seen)
    assert fresh.passed, fresh.refusals
    assert "compared on the 200 rows neither version trained on (200 left out)" in (
        "\n".join(fresh.lines())
    )
    assert fresh.comparisons[0].rows == 200
    # Too few left: said, and neither passed nor refused on it.
    few = verdict([i < 250 for i in range(400)])
    assert few.passed
    assert (
        "not compared: 150 of 400 rows neither version trained on; the comparison needs 200"
    ) in "\n".join(few.lines())

"""The traffic gate handler: a new version answers the golden set before it takes traffic.

Its calls go through real boto3 clients under botocore's ``Stubber``, which checks every
parameter and answer against the Lambda, S3 and CodeDeploy service models; each stubbed
call is one the test expects, in that order.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tools import stats

HANDLER = Path(__file__).resolve().parents[2] / "stacks/handlers/traffic_gate/index.py"
CANDIDATE = "arn:aws:lambda:eu-west-1:123456789012:function:fn:8"
STABLE = "arn:aws:lambda:eu-west-1:123456789012:function:fn:7"
BUCKET = "models"
KEY = "models/churn/v2/golden.json"
STABLE_KEY = "models/churn/v1/golden.json"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("traffic_gate_under_test", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


gate = _load()


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
        rows = gate.instances(document)
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
                    "Payload": json.dumps({"instances": rows[start : start + batch]}).encode(),
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


def expect_full_gate(aws: Aws, candidate: list[float], stable: list[float]) -> None:
    aws.golden(KEY, GOLDEN)
    aws.answers(CANDIDATE, GOLDEN, candidate, 4)
    aws.answers(STABLE, GOLDEN, stable, 4)
    aws.golden(STABLE_KEY, STABLE_GOLDEN)
    stable_rows = STABLE_GOLDEN["predictions"]["compiled"]["probabilities"]
    aws.answers(CANDIDATE, STABLE_GOLDEN, stable_rows, 4)
    aws.answers(STABLE, STABLE_GOLDEN, stable_rows, 4)


def test_the_tested_artifact_no_worse_than_stable_passes(aws: Aws) -> None:
    expect_full_gate(aws, CANDIDATE_P, [0.8, 0.3, 0.6, 0.45, 0.7, 0.2])
    status, reason, physical = gate.on_custom_resource(
        request(), lambda_client=aws.lambda_client, s3=aws.s3
    )
    assert (status, physical) == ("SUCCESS", CANDIDATE)
    assert "identity on 6 golden rows: max |dp| 0" in reason
    assert "label flip rate against the stable model: 0.00%" in reason


def test_a_version_answering_otherwise_fails_identity(aws: Aws) -> None:
    drifted = [p + 1e-6 for p in CANDIDATE_P]
    expect_full_gate(aws, drifted, CANDIDATE_P)
    status, reason, _ = gate.on_custom_resource(
        request(), lambda_client=aws.lambda_client, s3=aws.s3
    )
    assert status == "FAILED"
    assert reason.startswith(
        "identity: max |dp| 1e-06 against golden.json's compiled answers (tolerance 1e-09), "
        "0 of 6 labels differ"
    )


def test_a_worse_candidate_fails_naming_metric_value_and_tolerance(aws: Aws) -> None:
    # The stable model separates the classes perfectly; the candidate ranks one pair wrong.
    aws.golden(KEY, GOLDEN)
    aws.answers(CANDIDATE, GOLDEN, CANDIDATE_P, 4)
    aws.answers(STABLE, GOLDEN, [0.99, 0.01, 0.99, 0.01, 0.99, 0.01], 4)
    status, reason, _ = gate.on_custom_resource(
        request(StableGoldenKey=None), lambda_client=aws.lambda_client, s3=aws.s3
    )
    assert status == "FAILED"
    assert "quality: log loss 0.2" in reason
    assert "(tolerance max_log_loss_increase=0.03)" in reason
    assert "quality: Brier score 0.05" in reason and "max_brier_increase=0.01" in reason
    assert "ROC AUC" not in reason  # 1.0 both: the ranking is perfect on both sides


def test_a_golden_set_changed_after_packaging_fails(aws: Aws) -> None:
    aws.golden(KEY, {**GOLDEN, "labels": [0] * 6})
    status, reason, _ = gate.on_custom_resource(
        request(), lambda_client=aws.lambda_client, s3=aws.s3
    )
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
    status, reason, _ = gate.on_custom_resource(
        request(), lambda_client=aws.lambda_client, s3=aws.s3
    )
    assert status == "FAILED"
    assert f"{CANDIDATE} failed on rows 0-3: Unhandled" in reason


def test_bad_tolerance_is_named(aws: Aws) -> None:
    status, reason, _ = gate.on_custom_resource(
        request(MaxAucDecrease="lots"), lambda_client=aws.lambda_client, s3=aws.s3
    )
    assert (status, reason) == (
        "FAILED",
        "traffic gate could not run: MaxAucDecrease='lots' is not a number",
    )


def test_delete_checks_nothing(aws: Aws) -> None:
    event = {**request("Delete"), "PhysicalResourceId": CANDIDATE}
    assert gate.on_custom_resource(event, lambda_client=aws.lambda_client, s3=aws.s3) == (
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

    monkeypatch.setattr(gate.urllib.request, "urlopen", urlopen)
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


def run_hook(aws: Aws, env: dict[str, str] = HOOK_ENV) -> str:
    status: str = gate.on_hook(
        HOOK_EVENT, env, lambda_client=aws.lambda_client, s3=aws.s3, codedeploy=aws.codedeploy
    )
    return status


def test_hook_checks_the_target_version_against_the_current_one(aws: Aws) -> None:
    expect_hook(aws)
    aws.golden(KEY, GOLDEN)
    aws.answers(CANDIDATE, GOLDEN, CANDIDATE_P, 4)
    aws.answers(STABLE, GOLDEN, CANDIDATE_P, 4)
    expect_report(aws, "Succeeded")
    assert run_hook(aws) == "Succeeded"


def test_hook_reports_failed_for_a_swapped_artifact(aws: Aws) -> None:
    expect_hook(aws)
    aws.golden(KEY, GOLDEN)
    aws.answers(CANDIDATE, GOLDEN, [1 - p for p in CANDIDATE_P], 4)
    aws.answers(STABLE, GOLDEN, CANDIDATE_P, 4)
    expect_report(aws, "Failed")
    assert run_hook(aws) == "Failed"


def test_hook_reports_failed_when_it_cannot_run(aws: Aws) -> None:
    expect_hook(aws)
    expect_report(aws, "Failed")
    assert run_hook(aws, {k: v for k, v in HOOK_ENV.items() if k != "GOLDEN_KEY"}) == "Failed"


# ---------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standard_library_metrics_match_the_numpy_ones(seed: int) -> None:
    generator = np.random.default_rng(seed)
    y = generator.integers(0, 2, 300).tolist()
    # Rounded: ties, which ROC AUC must average.
    p = np.round(generator.random(300), 2).tolist()
    assert gate.log_loss(y, p) == pytest.approx(stats.log_loss(y, p), rel=1e-12)
    assert gate.brier(y, p) == pytest.approx(stats.brier(y, p), rel=1e-12)
    assert gate.roc_auc(y, p) == pytest.approx(stats.roc_auc(y, p), rel=1e-12)

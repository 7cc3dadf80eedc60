"""A whole run of the traffic gate against the real handler: the golden rows are answered,
and none of them reaches a capture record, a prediction line or a metric.

The gate runs as CloudFormation's custom resource does, with real boto3 clients: S3 under
botocore's ``Stubber`` (the golden set as packaged), Lambda's ``Invoke`` answered by the
inference handler in this process at the HTTP layer (``before-send``), so botocore checks
each request against the Lambda model and parses each answer by it. The environment
captures every row (``CAPTURE_SAMPLE_RATE=1``, as dev does), which is how golden rows
reached compare, the canary evaluator and the drift monitor before the gate marked them.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.stub import Stubber

from inference import handler as handler_module
from serving import golden_sets
from serving.reserved import GATE_KEY
from tests.handler.conftest import (
    ARTIFACTS,
    FakeLambdaContext,
    capture_lines,
    emf_lines,
    local_env,
    log_lines,
    valid_record,
)
from traffic_gate import cloudformation

CANDIDATE = "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference:8"
STABLE = "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference:7"
BUCKET, KEY = "models", "models/churn/v1/golden.json"
GOLDEN_BYTES = (ARTIFACTS / "v1" / "golden.json").read_bytes()
GOLDEN = json.loads(GOLDEN_BYTES)
FEATURES = GOLDEN["feature_names"]

Configure = Callable[[dict[str, str]], Any]


class LocalLambda:
    """A boto3 Lambda client whose ``Invoke`` runs the inference handler here; the bodies
    it was sent, in order, are in ``payloads`` and the functions in ``functions``."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "lambda",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.payloads: list[dict[str, Any]] = []
        self.functions: list[str] = []
        self.client.meta.events.register("before-send.lambda.Invoke", self._invoke)

    def _invoke(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        assert request.method == "POST" and request.url.endswith("/invocations")
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        event = json.loads(body)
        self.payloads.append(event)
        function = unquote(request.url.split("/functions/")[1].split("/")[0])
        self.functions.append(function)
        # Lambda's context names the ARN the caller invoked, with its qualifier.
        answer = handler_module.handler(event, FakeLambdaContext(invoked_function_arn=function))
        data = json.dumps(answer).encode()
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(data), status=200, headers={}, preload_content=False
        )
        return AWSResponse(request.url, 200, {"X-Amz-Executed-Version": "8"}, raw)


@pytest.fixture
def lambda_client() -> LocalLambda:
    return LocalLambda()


@pytest.fixture
def s3() -> Iterator[Any]:
    client = boto3.client("s3", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_response(
            "get_object",
            {"Body": io.BytesIO(GOLDEN_BYTES)},
            {"Bucket": BUCKET, "Key": KEY},
        )
        yield client
        stub.assert_no_pending_responses()


def gate_event(**changes: Any) -> dict[str, Any]:
    return {
        "RequestType": "Create",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
        "RequestId": "r-1",
        "LogicalResourceId": "TrafficGate",
        "ResourceProperties": {
            "FunctionArn": CANDIDATE,
            "StableFunctionArn": STABLE,
            "GoldenBucket": BUCKET,
            "GoldenKey": KEY,
            "GoldenSha256": hashlib.sha256(GOLDEN_BYTES).hexdigest(),
            "Runtime": "sklearn-joblib",
            "MaxLogLossIncrease": "0.03",
            "MaxAucDecrease": "0.02",
            "MaxBrierIncrease": "0.01",
            "BatchSize": "150",
            **changes,
        },
    }


def golden_rows() -> set[tuple[float, ...]]:
    return {tuple(float(value) for value in row) for row in GOLDEN["features"]}


def captured_rows(out: str) -> list[tuple[float, ...]]:
    lines = capture_lines(out)
    return [tuple(float(line["features"][name]) for name in FEATURES) for line in lines]


def test_a_run_of_the_gate_and_a_warm_up_capture_count_and_log_no_row(
    fresh_environment: Configure,
    capsys: pytest.CaptureFixture[str],
    lambda_client: LocalLambda,
    s3: Any,
) -> None:
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="1000"))
    # A caller's request before and after the gate's: those are captured and counted.
    caller = {**valid_record(), "tenure_months": 61}
    handler_module.handler(caller, FakeLambdaContext(aws_request_id="caller-before"))
    capsys.readouterr()

    status, reason, _ = cloudformation.on_custom_resource(
        gate_event(), lambda_client=lambda_client.client, s3=s3
    )
    functions, payloads = list(lambda_client.functions), list(lambda_client.payloads)
    # The warmer's ping to the candidate, the other traffic the function sends itself.
    ping = lambda_client.client.invoke(FunctionName=CANDIDATE, Payload=b'{"_warmup": true}')
    assert json.loads(ping["Payload"].read())["warmup"] is True
    gate_out = capsys.readouterr().out
    handler_module.handler(caller, FakeLambdaContext(aws_request_id="caller-after"))
    after_out = capsys.readouterr().out

    # The gate compared real answers: each of the 1,000 rows, on both versions, passed.
    assert status == "SUCCESS", reason
    rows = GOLDEN["rows"]
    batches = -(-rows // 150)
    assert functions == [CANDIDATE] * batches + [STABLE] * batches
    assert all(payload.get(GATE_KEY) is True for payload in payloads)
    sent = [row for payload in payloads[:batches] for row in payload["instances"]]
    assert sent == golden_sets.instances(GOLDEN)
    # Not one golden row captured, counted or logged with its values.
    assert capture_lines(gate_out) == []
    assert emf_lines(gate_out) == []
    assert log_lines(gate_out, "prediction") == []
    assert len(log_lines(gate_out, "warm-up")) == 1
    gate_lines = log_lines(gate_out, "gate request")
    assert len(gate_lines) == 2 * batches
    assert sum(line["rows"] for line in gate_lines) == 2 * rows
    # The caller's request is captured as before: capture was on all along.
    captured = captured_rows(after_out)
    assert len(captured) == 1 and not set(captured) & golden_rows()
    assert [line["request_id"] for line in log_lines(after_out, "prediction")] == ["caller-after"]


def test_the_same_rows_unmarked_would_have_been_captured(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str], lambda_client: LocalLambda
) -> None:
    # The contamination the mark removes: one batch of golden rows, sent as any caller.
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="1000"))
    capsys.readouterr()
    batch = golden_sets.instances(GOLDEN)[:50]
    lambda_client.client.invoke(
        FunctionName=CANDIDATE, Payload=json.dumps({"instances": batch}).encode()
    )
    captured = captured_rows(capsys.readouterr().out)
    assert len(captured) == 50 and set(captured) <= golden_rows()

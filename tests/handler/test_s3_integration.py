"""The real init path against an S3 API on loopback (moto server): env, download, checksum,
load, predict; and what happens when S3 or the artifact is wrong."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from inference import handler as handler_module
from inference import model_loader, s3_fetch
from inference.config import S3Source
from tests.handler import moto_server
from tests.handler.conftest import (
    ARTIFACTS,
    Deserialized,
    FakeLambdaContext,
    http_body,
    load_event,
    log_lines,
    unavailable_reason,
)

pytestmark = pytest.mark.integration

ARTIFACT = (ARTIFACTS / "v1" / "model.joblib").read_bytes()
ARTIFACT_SHA256 = hashlib.sha256(ARTIFACT).hexdigest()
Configure = Callable[[dict[str, str]], Any]
# Each runtime downloads with its own client: sklearn with boto3, compiled with the
# standard-library s3_fetch (its image has no boto3); both must behave the same.
RUNTIME_FILES = {"sklearn": "model.joblib", "compiled": "model.compiled.npz"}


@dataclass(frozen=True)
class Runtime:
    name: str
    key: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def env(self, bucket: str, sha256: str | None = None) -> dict[str, str]:
        return {**s3_env(bucket, self.key, sha256 or self.sha256), "MODEL_RUNTIME": self.name}


@pytest.fixture(params=sorted(RUNTIME_FILES))
def runtime(request: pytest.FixtureRequest) -> Runtime:
    file = RUNTIME_FILES[request.param]
    return Runtime(request.param, f"churn/v1/{file}", (ARTIFACTS / "v1" / file).read_bytes())


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server.running() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials and the loopback endpoint, where boto3 reads them: os.environ."""
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
    }
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def bucket(aws_env: dict[str, str]) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return name


def s3_env(bucket: str, key: str, sha256: str = ARTIFACT_SHA256) -> dict[str, str]:
    # The handler reads the same process environment Lambda would give it.
    return {
        **os.environ,
        "MODEL_NAME": "churn",
        "MODEL_VERSION": "v1",
        "MODEL_BUCKET": bucket,
        "MODEL_KEY": key,
        "MODEL_SHA256": sha256,
        "AWS_LAMBDA_FUNCTION_VERSION": "12",
    }


def upload(bucket: str, key: str, data: bytes = ARTIFACT) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


def predict() -> dict[str, Any]:
    return handler_module.handler(load_event("function_url_v2.json"), FakeLambdaContext())


def test_end_to_end_from_s3(
    bucket: str, runtime: Runtime, fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(bucket, runtime.key, runtime.data)
    state = fresh_environment(runtime.env(bucket))
    assert isinstance(state, handler_module.Ready), state
    assert state.loaded.source == f"s3://{bucket}/{runtime.key}"
    assert state.loaded.sha256 == runtime.sha256
    response = predict()
    assert response["statusCode"] == 200
    body = http_body(response)
    assert (body["model_version"], body["lambda_version"]) == ("v1", "12")
    assert 0.0 <= body["probability"] <= 1.0
    [loaded] = log_lines(capsys.readouterr().out, "model loaded")
    assert (loaded["size_bytes"], loaded["runtime"]) == (len(runtime.data), runtime.name)


def test_checksum_mismatch_is_503_and_no_prediction(
    bucket: str,
    runtime: Runtime,
    fresh_environment: Configure,
    deserialized: Deserialized,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upload(bucket, runtime.key, runtime.data + b"tampered")
    fresh_environment(runtime.env(bucket))
    response = predict()
    out = capsys.readouterr().out
    message = unavailable_reason(response, out)
    assert message.startswith(f"checksum mismatch for s3://{bucket}/")
    assert f"MODEL_SHA256 pins {runtime.sha256}" in message
    assert bucket not in response["body"] and runtime.sha256 not in response["body"]
    assert deserialized == []
    assert log_lines(out, "prediction") == []


def test_missing_object_is_503_then_recovers_once_uploaded(
    bucket: str, runtime: Runtime, fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(runtime.env(bucket))
    response = predict()
    assert "NoSuchKey" in unavailable_reason(response, capsys.readouterr().out)
    upload(bucket, runtime.key, runtime.data)
    assert predict()["statusCode"] == 200


def test_unreachable_s3_fails_fast_then_recovers_when_it_returns(
    aws_env: dict[str, str],
    runtime: Runtime,
    fresh_environment: Configure,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    bucket = f"models-unreachable-{runtime.name}"
    started = time.monotonic()
    fresh_environment(runtime.env(bucket))
    assert time.monotonic() - started < 10, "init must not hang on a dead endpoint"
    response = predict()
    assert "cannot download" in unavailable_reason(response, capsys.readouterr().out)

    with moto_server.running(port):
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        s3.put_object(Bucket=bucket, Key=runtime.key, Body=runtime.data)
        assert predict()["statusCode"] == 200


def test_s3_client_has_bounded_timeouts_and_standard_retries(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[Any] = []
    real_client = boto3.client

    def spy(*args: Any, **kwargs: Any) -> Any:
        client = real_client(*args, **kwargs)
        created.append(client)
        return client

    monkeypatch.setattr(boto3, "client", spy)
    upload(bucket, "k")
    assert model_loader.fetch_bytes(S3Source(bucket, "k")) == ARTIFACT
    config = created[-1].meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 10)
    # One request per call: the loader counts attempts itself, because botocore's own
    # retries know no overall deadline.
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}


def test_init_retries_s3_but_a_reload_on_the_request_path_tries_once(
    bucket: str,
    runtime: Runtime,
    fresh_environment: Configure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3 attempts at init; 1 per reload, or retries inside a request outlast its 30 s."""
    attempts: list[int] = []
    budgets: list[float] = []
    if runtime.name == "sklearn":
        real_fetch = model_loader._fetch_s3

        def fetch_spy(source: Any, max_attempts: int, deadline: float, limit: int) -> bytes:
            attempts.append(max_attempts)
            budgets.append(deadline - time.monotonic())
            return real_fetch(source, max_attempts, deadline, limit)

        monkeypatch.setattr(model_loader, "_fetch_s3", fetch_spy)
    else:
        real_get = s3_fetch.get_object

        def get_spy(*args: Any, **kwargs: Any) -> bytes:
            attempts.append(kwargs["max_attempts"])
            budgets.append(kwargs["deadline"] - time.monotonic())
            return real_get(*args, **kwargs)

        monkeypatch.setattr(s3_fetch, "get_object", get_spy)
    fresh_environment(runtime.env(bucket))  # NoSuchKey: fails at once, retries or not
    assert attempts == [model_loader.S3_MAX_ATTEMPTS] == [3]
    assert predict()["statusCode"] == 503
    assert predict()["statusCode"] == 503
    assert attempts == [3, 1, 1]
    upload(bucket, runtime.key, runtime.data)
    assert predict()["statusCode"] == 200
    assert attempts == [3, 1, 1, 1]
    # Every download has an overall deadline: init's within Lambda's 10 s init phase,
    # a reload's within what the request has left (30 s here) less a margin, and 8 s.
    assert all(0 < budget <= 8.0 for budget in budgets), budgets


def test_compiled_runtime_reads_s3_settings_from_the_configured_env(
    aws_env: dict[str, str],
    bucket: str,
    fresh_environment: Configure,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """configure(env) is the environment: the process's S3 settings must not leak in."""
    data = (ARTIFACTS / "v1" / "model.compiled.npz").read_bytes()
    key = "churn/v1/model.compiled.npz"
    env = {
        **aws_env,
        "MODEL_NAME": "churn",
        "MODEL_VERSION": "v1",
        "MODEL_RUNTIME": "compiled",
        "MODEL_BUCKET": bucket,
        "MODEL_KEY": key,
        "MODEL_SHA256": hashlib.sha256(data).hexdigest(),
    }
    # The process environment points at a dead endpoint with other credentials.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-process")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    state = fresh_environment(env)  # the object is not there yet: NoSuchKey from moto
    assert isinstance(state, handler_module.Unavailable)
    assert "NoSuchKey" in state.reason, state.reason
    boto3.client(
        "s3",
        endpoint_url=aws_env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="eu-west-1",
    ).put_object(Bucket=bucket, Key=key, Body=data)
    # The reload on the request path reads the same mapping.
    assert predict()["statusCode"] == 200
    state = handler_module.current_state()
    assert isinstance(state, handler_module.Ready)
    assert state.loaded.source == f"s3://{bucket}/{key}"


def test_compiled_runtime_cold_start_imports_no_boto3_or_sklearn(bucket: str) -> None:
    """A fresh process, as a new execution environment of the compiled image would be."""
    data = (ARTIFACTS / "v1" / "model.compiled.npz").read_bytes()
    upload(bucket, "churn/v1/model.compiled.npz", data)
    env = {
        **s3_env(bucket, "churn/v1/model.compiled.npz", hashlib.sha256(data).hexdigest()),
        "MODEL_RUNTIME": "compiled",
        "PYTHONPATH": str(ARTIFACTS.parents[1] / "lambda_src"),
    }
    script = (
        "import json, sys\n"
        "from inference import handler\n"
        "from tests.handler.conftest import valid_record\n"
        "answer = handler.handler(valid_record(), None)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'boto3', 'botocore', 'sklearn', 'joblib', 'scipy'})\n"
        "print(json.dumps({'status': answer['statusCode'], 'heavy': heavy}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "PYTHONPATH": f"{env['PYTHONPATH']}{os.pathsep}{ARTIFACTS.parents[1]}"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"status": 200, "heavy": []}

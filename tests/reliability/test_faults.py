"""Faults on the model's way in, for both runtimes' download paths (sklearn: boto3;
compiled: inference/s3_fetch.py), against a moto S3 server on loopback.

A small proxy sits between the handler and moto and injects each fault on demand:
answers slower than the read timeout, an endpoint that never answers, a body that
trickles in a byte at a time, 403 AccessDenied, a body cut off mid-transfer, an object
larger than the manifest says. Every fault must give a 503 (the reason in the logs, not
the answer) and no prediction from a wrong or partial model, within the time bounds;
once it is removed, the next invocation serves v1 again without a restart.
Server down at init, a missing key and appended bytes are covered in
tests/handler/test_s3_integration.py.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import http.server
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from inference import handler as handler_module
from inference import model_loader
from inference import state as state_module
from tests.handler import moto_server
from tests.handler.conftest import (
    ARTIFACTS,
    FakeLambdaContext,
    log_lines,
    unavailable_reason,
    valid_record,
)
from tests.reliability.conftest import RUNTIME_FILES, runtime_env

pytestmark = pytest.mark.integration

# The tests that make the endpoint slow use this short read timeout; the others keep a
# generous one, so that a loaded machine's slow loopback is not mistaken for a fault.
READ_TIMEOUT_S = 0.3
GENEROUS_TIMEOUT_S = 5.0
# Far beyond the read timeout, and released at teardown so no thread outlives the test.
SLOW_ANSWER_S = 5.0
# The deadlines the time-bound tests inject (production: 8 s at init, the request's
# remaining time less a margin on reload). Their read timeout stays at production's
# 10 s: only the deadline can end these loads in time.
SHORT_DEADLINE_S = 1.0
# What a bounded load may take beyond its deadline on a loaded 2-core machine.
SLACK_S = 1.0
TRICKLE_INTERVAL_S = 0.1
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>FAULT</RequestId></Error>"
)


@dataclass
class FaultProxy:
    """Forwards S3 requests to moto, or injects ``fault``: None, "slow", "silent" (never
    answers), "trickle" (a byte every TRICKLE_INTERVAL_S), "deny", "truncate", "unsized"
    (no Content-Length: the body ends when the connection closes)."""

    upstream: tuple[str, int]
    endpoint: str = ""
    fault: str | None = None
    requests: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        self.requests += 1
        fault = self.fault
        if fault == "slow":
            self.release.wait(SLOW_ANSWER_S)
        if fault == "silent":
            self.release.wait(SLOW_ANSWER_S * 4)
            return
        if fault == "deny":
            self._send(handler, 403, {"Content-Type": "application/xml"}, ACCESS_DENIED)
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=10)
        try:
            connection.request("GET", handler.path, headers=dict(handler.headers))
            response = connection.getresponse()
            body = response.read()
            headers = {
                name: value
                for name, value in response.getheaders()
                if name.lower() not in ("connection", "transfer-encoding", "content-length")
            }
        finally:
            connection.close()
        headers["Content-Length"] = str(len(body))
        if fault == "trickle" and response.status == 200:
            self._trickle(handler, headers, body)
            return
        if fault == "unsized" and response.status == 200:
            del headers["Content-Length"]
            headers["Connection"] = "close"
            handler.close_connection = True
            try:
                handler.send_response(200)
                for name, value in headers.items():
                    handler.send_header(name, value)
                handler.end_headers()
                handler.wfile.write(body)
            except OSError:
                pass
            return
        if fault == "truncate" and response.status == 200:
            # Promise the whole object, send half of it, hang up.
            self._send(handler, 200, headers, body[: len(body) // 2])
            handler.close_connection = True
            return
        self._send(handler, response.status, headers, body)

    def _trickle(
        self, handler: http.server.BaseHTTPRequestHandler, headers: dict[str, str], body: bytes
    ) -> None:
        try:
            handler.send_response(200)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            for index in range(len(body)):
                if self.release.wait(TRICKLE_INTERVAL_S):
                    break
                handler.wfile.write(body[index : index + 1])
                handler.wfile.flush()
        except OSError:
            pass  # the client gave up: what the test wants
        handler.close_connection = True

    @staticmethod
    def _send(
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        headers.setdefault("Content-Length", str(len(body)))
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass  # the client gave up (a timeout under test): nothing to tell it


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[str, int]]:
    with moto_server.running() as endpoint:
        address = urllib.parse.urlsplit(endpoint)
        assert address.hostname is not None and address.port is not None
        yield address.hostname, address.port


@pytest.fixture
def proxy(moto: tuple[str, int]) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(moto)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            fault_proxy.answer(self)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fault_proxy.endpoint = f"http://127.0.0.1:{server.server_port}"
    yield fault_proxy
    fault_proxy.release.set()
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Deployment:
    """One runtime's v1 function, reading through the proxy from a fresh bucket."""

    runtime: str
    bucket: str
    key: str
    s3: Any
    proxy: FaultProxy
    aws: dict[str, str]

    def artifact(self, version: str) -> bytes:
        return (ARTIFACTS / version / RUNTIME_FILES[self.runtime]).read_bytes()

    def env(self, *, version: str = "v1", pin: str = "v1") -> dict[str, str]:
        env = runtime_env(self.runtime, version, MODEL_PATH="")
        sha256 = hashlib.sha256(self.artifact(pin)).hexdigest()
        return {
            **env,
            **self.aws,
            "MODEL_BUCKET": self.bucket,
            "MODEL_KEY": self.key,
            "MODEL_SHA256": sha256,
        }

    def upload(self, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=data)

    def init_with_fault(self, fault: str) -> tuple[handler_module.State, float]:
        """v1 in the bucket, ``fault`` on the way to it, then a new environment's init: the
        state it left and the seconds it took."""
        self.upload(self.artifact("v1"))
        self.proxy.fault = fault
        started = time.monotonic()
        state = handler_module.configure(self.env())
        return state, time.monotonic() - started


@pytest.fixture(params=sorted(RUNTIME_FILES))
def deployment(
    request: pytest.FixtureRequest,
    moto: tuple[str, int],
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> Deployment:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": proxy.endpoint,
    }
    # On Lambda the function's environment and the process's are one. Here the compiled
    # path (s3_fetch) reads the env given to configure() (Deployment.env carries these),
    # and boto3 (sklearn) reads the process environment, so they go there too.
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(model_loader, "S3_READ_TIMEOUT_S", GENEROUS_TIMEOUT_S)
    monkeypatch.setattr(model_loader, "S3_CONNECT_TIMEOUT_S", GENEROUS_TIMEOUT_S)
    monkeypatch.setattr(model_loader, "S3_MAX_ATTEMPTS", 2)
    # A new execution environment per test; the module's globals come back afterwards.
    for name in ("_state", "_env", "_cold"):
        monkeypatch.setattr(handler_module, name, getattr(handler_module, name))
    s3 = boto3.client("s3", endpoint_url=f"http://{moto[0]}:{moto[1]}")
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    runtime = request.param
    return Deployment(runtime, bucket, f"churn/v1/{RUNTIME_FILES[runtime]}", s3, proxy, aws)


@functools.cache
def v1_probability(runtime: str) -> float:
    """What v1 answers for the sample record, loaded from the local artifact."""
    state = handler_module.init_state(runtime_env(runtime))
    assert isinstance(state, handler_module.Ready)
    import numpy as np

    row = [[float(valid_record()[f.name]) for f in state.loaded.schema]]
    return float(state.loaded.model.outputs(np.array(row, dtype=np.float64))[0])


@dataclass
class ShortContext(FakeLambdaContext):
    """A request with ``remaining_ms`` left before the function times out."""

    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def invoke(context: FakeLambdaContext | None = None) -> dict[str, Any]:
    response: dict[str, Any] = handler_module.handler(valid_record(), context or ShortContext())
    return response


def assert_unavailable(
    fragment: str, capsys: pytest.CaptureFixture[str], context: FakeLambdaContext | None = None
) -> str:
    response = invoke(context)
    message = unavailable_reason(response, capsys.readouterr().out)
    assert response["model_version"] == "v1"
    assert fragment in message, message
    assert "prediction" not in response
    return message


def assert_serves_v1(deployment: Deployment) -> None:
    response = invoke()
    assert response["statusCode"] == 200, response
    expected = v1_probability(deployment.runtime)
    assert (response["model_version"], response["probability"]) == ("v1", expected)
    state = handler_module.current_state()
    assert isinstance(state, handler_module.Ready)
    assert state.loaded.sha256 == hashlib.sha256(deployment.artifact("v1")).hexdigest()


def test_slower_than_the_read_timeout_is_503_then_recovers(
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_loader, "S3_READ_TIMEOUT_S", READ_TIMEOUT_S)
    monkeypatch.setattr(model_loader, "S3_CONNECT_TIMEOUT_S", READ_TIMEOUT_S)
    _, init_s = deployment.init_with_fault("slow")
    # A bound that detects a hang (2 attempts of 0.3 s plus backoff), not a timing claim.
    assert init_s < SLOW_ANSWER_S
    assert deployment.proxy.requests == 2, "a timeout is retried, within S3_MAX_ATTEMPTS"
    message = assert_unavailable("cannot download", capsys)
    # The reload inside the request tries once: retries there could outlast the timeout.
    assert deployment.proxy.requests == 3, "a reload on the request path is not retried"
    assert "timed out" in message.lower() or "timeout" in message.lower()
    deployment.proxy.fault = None
    assert_serves_v1(deployment)
    assert len(log_lines(capsys.readouterr().out, "prediction")) == 1


def test_access_denied_is_503_naming_it_not_retried_then_recovers(
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment.init_with_fault("deny")
    assert deployment.proxy.requests == 1, "403 is not a transient error"
    assert_unavailable("AccessDenied", capsys)
    deployment.proxy.fault = None
    assert_serves_v1(deployment)


def test_transfer_cut_off_mid_body_is_503_and_nothing_deserialized(
    deployment: Deployment,
    deserialized: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment.init_with_fault("truncate")
    assert_unavailable("cannot download", capsys)
    assert deserialized == []
    deployment.proxy.fault = None
    assert_serves_v1(deployment)
    assert deserialized == [len(deployment.artifact("v1"))]


@pytest.mark.parametrize("stored", ["first half of v1", "v2's artifact"])
def test_wrong_bytes_under_the_key_fail_the_pin_and_are_never_deserialized(
    deployment: Deployment,
    deserialized: list[int],
    stored: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = deployment.artifact("v1")
    deployment.upload(
        v1[: len(v1) // 2] if stored == "first half of v1" else deployment.artifact("v2")
    )
    handler_module.configure(deployment.env())
    assert_unavailable("checksum mismatch", capsys)
    assert deserialized == []
    deployment.upload(v1)
    assert_serves_v1(deployment)


def test_another_versions_artifact_with_its_own_pin_is_refused_by_identity(
    deployment: Deployment,
    deserialized: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A deploy mistake: v2's bytes and v2's SHA-256, labelled MODEL_VERSION=v1. Serving
    # it would put v2's predictions on v1's dashboards, so every retry refuses it.
    deployment.upload(deployment.artifact("v2"))
    handler_module.configure(deployment.env(version="v1", pin="v2"))
    for _ in range(3):
        assert_unavailable("holds churn v2 but MODEL_VERSION is 'v1'", capsys)
    # Loaded once: the pinned bytes would fail the same way, after running their code
    # (a pickle's) again, so this environment does not retry them.
    assert deserialized == [len(deployment.artifact("v2"))]
    assert deployment.proxy.requests == 1


# --- time bounds: the deadline, not the read timeout, ends a load ----------------------


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Init's whole-load deadline shortened; the per-read timeout back at production's."""
    monkeypatch.setattr(state_module, "INIT_LOAD_DEADLINE_S", SHORT_DEADLINE_S)
    monkeypatch.setattr(model_loader, "S3_READ_TIMEOUT_S", 10)
    monkeypatch.setattr(model_loader, "S3_CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(model_loader, "S3_MAX_ATTEMPTS", 3)


@pytest.mark.parametrize("fault", ["silent", "trickle"])
def test_a_stalled_or_trickling_endpoint_ends_init_and_reload_within_their_deadlines(
    deployment: Deployment,
    deserialized: list[int],
    short_deadlines: None,
    fault: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, init_s = deployment.init_with_fault(fault)
    assert isinstance(state, handler_module.Unavailable)
    assert init_s < SHORT_DEADLINE_S + SLACK_S, f"init took {init_s:.2f}s"
    # On the request path the deadline is the time Lambda gives the request, less a
    # margin for the answer: 2.5 s left -> a reload of at most 1 s, then the 503.
    context = ShortContext(remaining_ms=int((state_module.RELOAD_MARGIN_S + 1.0) * 1000))
    started = time.monotonic()
    assert_unavailable("deadline reached", capsys, context)
    reload_s = time.monotonic() - started
    assert reload_s < context.remaining_ms / 1000, f"the reload took {reload_s:.2f}s"
    assert deserialized == []
    deployment.proxy.fault = None
    assert_serves_v1(deployment)


def test_too_little_time_left_in_the_request_answers_503_without_a_reload(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    handler_module.configure(deployment.env())  # nothing uploaded: NoSuchKey
    requests = deployment.proxy.requests
    context = ShortContext(remaining_ms=int(state_module.RELOAD_MARGIN_S * 1000))
    assert_unavailable("NoSuchKey", capsys, context)
    assert deployment.proxy.requests == requests


# One runtime (the deployed one) proves the default bound; both prove the mechanism above.
@pytest.mark.parametrize("deployment", ["compiled"], indirect=True)
def test_the_default_init_deadline_holds_against_an_endpoint_that_never_answers(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Production's settings: 8 s for the whole load, 10 s read timeout, 3 attempts. Before
    # the deadline, this took 3 x 10 s plus backoff, past Lambda's 10 s init phase.
    monkeypatch.setattr(model_loader, "S3_READ_TIMEOUT_S", 10)
    monkeypatch.setattr(model_loader, "S3_CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(model_loader, "S3_MAX_ATTEMPTS", 3)
    state, elapsed = deployment.init_with_fault("silent")
    assert isinstance(state, handler_module.Unavailable)
    assert state_module.INIT_LOAD_DEADLINE_S == 8.0
    assert elapsed < 8.0 + SLACK_S, f"init took {elapsed:.2f}s"


# --- bytes: the download stops at the size the manifest gives -------------------------


@pytest.mark.parametrize("fault", [None, "unsized"])
def test_an_object_larger_than_expected_is_not_read_whole(
    deployment: Deployment,
    deserialized: list[int],
    fault: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = deployment.artifact("v1")
    deployment.upload(v1 + b"\0" * (8 * 1024 * 1024))
    deployment.proxy.fault = fault
    env = {**deployment.env(), "MODEL_SIZE_BYTES": str(len(v1))}
    handler_module.configure(env)
    assert_unavailable(f"more than the expected {len(v1)}", capsys)
    assert deserialized == []
    deployment.upload(v1)
    deployment.proxy.fault = None
    handler_module.configure(env)
    assert_serves_v1(deployment)

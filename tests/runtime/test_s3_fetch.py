from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from inference.s3_fetch import Credentials, S3FetchError, S3Location, get_object, sign_get
from tests.runtime.conftest import free_port

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_REGION": "eu-west-1",
}


@pytest.mark.parametrize("token", [None, "session-token-value"])
@pytest.mark.parametrize("key", ["models/churn/v1/model.compiled.npz", "odd key/ü+=&.bin"])
def test_signature_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, token: str | None, key: str
) -> None:
    now = datetime(2026, 11, 25, 12, 34, 56, tzinfo=UTC)
    location = S3Location.for_object(
        "bucket-1", key, region="eu-west-1", endpoint="http://127.0.0.1:9000"
    )
    ours = sign_get(location, Credentials("AKIDEXAMPLE", "secret", token), "eu-west-1", now)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest(method="GET", url=f"http://127.0.0.1:9000{location.path}")
    botocore.auth.S3SigV4Auth(
        BotoCredentials("AKIDEXAMPLE", "secret", token), "s3", "eu-west-1"
    ).add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_virtual_hosted_location_on_aws() -> None:
    location = S3Location.for_object("b", "models/a b", region="us-west-2", endpoint=None)
    assert (location.scheme, location.host, location.path) == (
        "https",
        "b.s3.us-west-2.amazonaws.com",
        "/models/a%20b",
    )


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("us-east-1", "b.s3.us-east-1.amazonaws.com"),
        ("us-gov-west-1", "b.s3.us-gov-west-1.amazonaws.com"),
        # The China partition has its own domain; amazonaws.com does not resolve there.
        ("cn-north-1", "b.s3.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", "b.s3.cn-northwest-1.amazonaws.com.cn"),
    ],
)
def test_virtual_hosted_location_uses_the_partitions_domain(region: str, host: str) -> None:
    location = S3Location.for_object("b", "k", region=region, endpoint=None)
    assert location.host == host
    # The same domain botocore resolves for the region (its endpoint data is the oracle).
    botocore_host = urllib.parse.urlsplit(
        boto3.client(
            "s3", region_name=region, aws_access_key_id="a", aws_secret_access_key="b"
        ).meta.endpoint_url
    ).hostname
    assert botocore_host is not None
    assert host.endswith("." + botocore_host[botocore_host.index("amazonaws") :])


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    name = f"fetch-{free_port()}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="models/m/v1/model.bin", Body=b"\x00model-bytes" * 1000)
    return name


def test_reads_an_object_from_an_s3_api(moto_endpoint: str, bucket: str) -> None:
    env = {**ENV, "AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_SESSION_TOKEN": "t"}
    assert get_object(bucket, "models/m/v1/model.bin", env=env) == b"\x00model-bytes" * 1000


def test_missing_key_fails_at_once_with_s3s_code(moto_endpoint: str, bucket: str) -> None:
    sleeps: list[float] = []
    with pytest.raises(S3FetchError, match=r"NoSuchKey.*\(after 1 attempt\)") as info:
        get_object(
            bucket,
            "models/m/v9/model.bin",
            env={**ENV, "AWS_ENDPOINT_URL": moto_endpoint},
            sleep=sleeps.append,
        )
    assert (info.value.code, info.value.status, sleeps) == ("NoSuchKey", 404, [])


def test_server_down_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    env = {**ENV, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(S3FetchError, match=r"connection failed.*\(after 3 attempts\)") as info:
        get_object("b", "k", env=env, sleep=sleeps.append)
    assert info.value.code == "ConnectionError" and len(sleeps) == 2


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield listener.getsockname()[1]
    listener.close()


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    env = {**ENV, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{silent_server}"}
    with pytest.raises(S3FetchError, match="timed out") as info:
        get_object("b", "k", env=env, read_timeout=0.2, max_attempts=1)
    assert info.value.code == "Timeout"


def test_throttling_is_retried_until_it_clears() -> None:
    answers = [503, 503, 200]

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = answers.pop(0)
            body = b"ok" if status == 200 else b"<Error><Code>SlowDown</Code></Error>"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**ENV, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{server.server_port}"}
        sleeps: list[float] = []
        assert get_object("b", "k", env=env, sleep=sleeps.append) == b"ok"
        assert len(sleeps) == 2 and all(0 <= s <= 2 for s in sleeps)
    finally:
        server.shutdown()


def test_missing_credentials_are_named() -> None:
    with pytest.raises(S3FetchError, match="AWS_SECRET_ACCESS_KEY is not set"):
        get_object("b", "k", env={"AWS_ACCESS_KEY_ID": "a"})


def test_the_deadline_ends_retries_against_a_silent_server(silent_server: int) -> None:
    # The read timeout alone would allow 3 x 10 s here; the deadline ends the call.
    env = {**ENV, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{silent_server}"}
    started = time.monotonic()
    with pytest.raises(S3FetchError, match="deadline reached") as info:
        get_object("b", "k", env=env, read_timeout=10, max_attempts=3, deadline=started + 0.5)
    assert time.monotonic() - started < 1.5
    assert info.value.code == "Deadline"


def test_no_backoff_sleep_runs_past_the_deadline() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    env = {**ENV, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{dead}"}
    deadline = time.monotonic() + 0.5
    ends: list[float] = []

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        ends.append(time.monotonic())

    with pytest.raises(S3FetchError, match="connection failed"):
        get_object("b", "k", env=env, max_attempts=10, deadline=deadline, sleep=sleep)
    assert all(end < deadline for end in ends)
    assert time.monotonic() < deadline + 0.5


def test_an_object_over_max_bytes_is_refused_from_its_content_length(
    moto_endpoint: str, bucket: str
) -> None:
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    ).put_object(Bucket=bucket, Key="big", Body=b"x" * 1000)
    env = {**ENV, "AWS_ENDPOINT_URL_S3": moto_endpoint}
    with pytest.raises(S3FetchError, match="object is 1000 bytes, more than the expected 999"):
        get_object(bucket, "big", env=env, max_bytes=999)
    assert get_object(bucket, "big", env=env, max_bytes=1000) == b"x" * 1000

"""A small S3 GetObject client on the standard library, for the lean image.

Creating a boto3 S3 client costs about 0.3 s of a cold start (imports plus loading the
service model); one signed GET does not need any of it. This module signs the request
with Signature Version 4 (the same bytes botocore would sign: a test compares them),
reads credentials from the environment as Lambda provides them, bounds connect and
read time, and retries throttling, 5xx and connection errors with capped exponential
backoff and full jitter, like botocore's "standard" retry mode (3 attempts).

Two bounds hold whatever the server does: ``deadline`` (a ``time.monotonic()`` instant)
ends the whole call, attempts and backoff included, even against a server that trickles
a byte a second (each socket read waits at most until the deadline); ``max_bytes`` stops
the read as soon as the object is larger than expected, before it fills memory.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import math
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"})
# The AWS China partition (Beijing cn-north-1, Ningxia cn-northwest-1) has its own domain.
CHINA_REGION_PREFIX = "cn-"
CHINA_DNS_SUFFIX = "amazonaws.com.cn"
DEFAULT_DNS_SUFFIX = "amazonaws.com"


class S3FetchError(RuntimeError):
    """The object could not be read; ``code`` is S3's error code or a local reason."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Credentials:
        try:
            return cls(
                env["AWS_ACCESS_KEY_ID"],
                env["AWS_SECRET_ACCESS_KEY"],
                env.get("AWS_SESSION_TOKEN") or None,
            )
        except KeyError as missing:
            raise S3FetchError(
                f"no AWS credentials in the environment ({missing.args[0]} is not set)",
                code="NoCredentials",
            ) from None


@dataclass(frozen=True)
class S3Location:
    scheme: str
    host: str
    path: str

    @classmethod
    def for_object(cls, bucket: str, key: str, *, region: str, endpoint: str | None) -> S3Location:
        quoted_key = urllib.parse.quote(key, safe="/-_.~")
        if endpoint:
            # Custom endpoints (an S3 API on loopback, a VPC endpoint URL) take path style.
            parsed = urllib.parse.urlsplit(endpoint)
            base = parsed.path.rstrip("/")
            return cls(parsed.scheme, parsed.netloc, f"{base}/{bucket}/{quoted_key}")
        return cls("https", f"{bucket}.s3.{region}.{dns_suffix(region)}", f"/{quoted_key}")


def dns_suffix(region: str) -> str:
    """The domain of ``region``'s partition: ``amazonaws.com.cn`` in China, else amazonaws.com."""
    return CHINA_DNS_SUFFIX if region.startswith(CHINA_REGION_PREFIX) else DEFAULT_DNS_SUFFIX


def sign_get(
    location: S3Location,
    credentials: Credentials,
    region: str,
    now: datetime,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the headers of a SigV4-signed GET of ``location`` at time ``now``."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {
        "host": location.host,
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": amz_date,
        **{k.lower(): v.strip() for k, v in (extra_headers or {}).items()},
    }
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    signed = sorted(headers)
    canonical = "\n".join(
        [
            "GET",
            location.path,
            "",
            *(f"{name}:{headers[name]}" for name in signed),
            "",
            ";".join(signed),
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers


def is_retryable(code: str, status: int | None) -> bool:
    """Throttling, 5xx and connection trouble: what botocore's standard mode retries."""
    return (
        status in RETRYABLE_STATUS
        or code in RETRYABLE_CODES
        or code in {"ConnectionError", "Timeout"}
    )


def retry_delay(attempt: int) -> float:
    """Full jitter over a capped exponential: botocore's standard mode, after ``attempt``."""
    return random.uniform(0, min(20.0, 2.0 ** (attempt - 1)))  # noqa: S311


def get_object(
    bucket: str,
    key: str,
    *,
    env: Mapping[str, str],
    connect_timeout: float = 2.0,
    read_timeout: float = 10.0,
    max_attempts: int = 3,
    deadline: float | None = None,
    max_bytes: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """Read ``s3://bucket/key`` whole. Raises ``S3FetchError`` naming the cause.

    ``deadline`` (``time.monotonic()`` value) bounds the whole call; ``max_bytes`` is the
    most the object may hold.
    """
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    location = S3Location.for_object(bucket, key, region=region, endpoint=endpoint)
    credentials = Credentials.from_env(env)
    end = math.inf if deadline is None else deadline
    last: S3FetchError | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            return _get_once(
                location, credentials, region, connect_timeout, read_timeout, end, max_bytes
            )
        except S3FetchError as exc:
            last = exc
            if not is_retryable(exc.code, exc.status) or attempt == max_attempts:
                break
            delay = retry_delay(attempt)
            if exc.code == "Deadline" or time.monotonic() + delay >= end:
                break
            sleep(delay)
    assert last is not None
    raise S3FetchError(
        f"{last} (after {attempt} attempt{'s' if attempt > 1 else ''})",
        code=last.code,
        status=last.status,
    )


# One socket read asks for at most this much; the deadline is checked between reads.
READ_CHUNK_BYTES = 256 * 1024
# S3 error bodies are small XML; more than this is not an S3 error body.
ERROR_BODY_MAX_BYTES = 64 * 1024


def _get_once(
    location: S3Location,
    credentials: Credentials,
    region: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: float = math.inf,
    max_bytes: int | None = None,
) -> bytes:
    headers = sign_get(location, credentials, region, datetime.now(UTC))
    connection_class = (
        http.client.HTTPSConnection if location.scheme == "https" else http.client.HTTPConnection
    )

    def wait(limit: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise S3FetchError("deadline reached", code="Deadline")
        return min(limit, left)

    connection = connection_class(location.host, timeout=wait(connect_timeout))
    try:
        connection.connect()
        sock = connection.sock
        if sock is not None:
            sock.settimeout(wait(read_timeout))
        connection.request("GET", location.path, headers=headers)
        response = connection.getresponse()
        expected = response.getheader("Content-Length")
        limit = max_bytes if response.status == 200 else ERROR_BODY_MAX_BYTES
        if (
            response.status == 200
            and limit is not None
            and expected is not None
            and expected.isdigit()
            and int(expected) > limit
        ):
            raise S3FetchError(
                f"object is {expected} bytes, more than the expected {limit}", code="TooLarge"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            if sock is not None:
                # Each read waits at most until the deadline: a trickle cannot outlast it.
                sock.settimeout(wait(read_timeout))
            chunk = response.read1(READ_CHUNK_BYTES)
            if not chunk:
                break
            size += len(chunk)
            if limit is not None and size > limit:
                raise S3FetchError(
                    f"object is more than the expected {limit} bytes", code="TooLarge"
                )
            chunks.append(chunk)
        body = b"".join(chunks)
    except TimeoutError as exc:
        if time.monotonic() >= deadline:
            raise S3FetchError("deadline reached (timed out)", code="Deadline") from None
        raise S3FetchError(f"timed out ({exc})", code="Timeout") from None
    except (OSError, http.client.HTTPException) as exc:
        raise S3FetchError(f"connection failed ({exc})", code="ConnectionError") from None
    finally:
        connection.close()
    if response.status == 200:
        if expected is not None and expected.isdigit() and int(expected) != len(body):
            raise S3FetchError(
                f"short read: {len(body)} of {expected} bytes", code="ConnectionError"
            )
        return body
    code = _xml_field(body, "Code") or f"HTTP{response.status}"
    message = _xml_field(body, "Message") or response.reason
    raise S3FetchError(f"{code}: {message}", code=code, status=response.status)


def _xml_field(body: bytes, name: str) -> str | None:
    # S3 error bodies are tiny, flat XML; a regex avoids importing an XML parser.
    match = re.search(rf"<{name}>([^<]*)</{name}>".encode(), body)
    return match.group(1).decode("utf-8", "replace") if match else None


__all__ = [
    "Credentials",
    "S3FetchError",
    "S3Location",
    "dns_suffix",
    "get_object",
    "is_retryable",
    "retry_delay",
    "sign_get",
]

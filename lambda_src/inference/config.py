"""Function settings: the environment the CDK stack sets, parsed once and checked.

Every error names the variable, the value and what is allowed, because the only place
an operator sees it is a 503 body or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from inference import runtimes
from serving import capture
from serving.artifacts import SHA256_PATTERN

# Lambda refuses synchronous request payloads above 6 MB before the handler runs, so a
# larger MAX_BODY_BYTES would only pretend to allow something.
from serving.payload import (
    DEFAULT_MAX_EXPLAIN_ROWS,
    LAMBDA_PAYLOAD_LIMIT_BYTES,
    MAX_BATCH_SIZE_LIMIT,
)

RUNTIMES = runtimes.NAMES
DEFAULT_RUNTIME = runtimes.DEFAULT
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Loading an artifact nobody pinned runs whatever it holds (a joblib file is a pickle).
# Only this exact opt-in allows it, for local experiments; the name says what it costs.
UNVERIFIED_OPT_IN = "UNSAFE_ALLOW_UNVERIFIED_MODEL"
# Without MODEL_SIZE_BYTES a download still stops here (Lambda's largest /tmp and memory
# are 10 GB, but a model this size would not load within the init phase anyway).
DEFAULT_MAX_MODEL_BYTES = 1024 * 1024 * 1024
DEFAULT_METRICS_NAMESPACE = "SklearnLambdaServing"


class ConfigError(ValueError):
    """An environment variable is missing or has a value the handler cannot use."""


@dataclass(frozen=True)
class S3Source:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class LocalSource:
    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class Settings:
    model_name: str | None
    model_version: str | None
    runtime: str
    source: S3Source | LocalSource
    sha256: str | None
    # The artifact's size from the manifest: a download stops as soon as it is exceeded.
    size_bytes: int | None
    # UNSAFE_ALLOW_UNVERIFIED_MODEL=1 and no MODEL_SHA256: a local file loaded unverified.
    unverified: bool
    max_batch_size: int
    max_body_bytes: int
    metrics_namespace: str
    lambda_version: str
    provisioned: bool
    # Share of requests whose rows are written as capture records (0: none), and the most
    # rows of one request that are.
    capture_sample_rate: float
    capture_max_rows: int
    # The most rows one request may ask explanations for (beyond: a 413 naming it).
    max_explain_rows: int = DEFAULT_MAX_EXPLAIN_ROWS


def settings_from_env(env: Mapping[str, str]) -> Settings:
    runtime = env.get("MODEL_RUNTIME", "").strip() or DEFAULT_RUNTIME
    if runtime not in RUNTIMES:
        raise ConfigError(f"MODEL_RUNTIME={runtime!r} is not allowed: use one of {RUNTIMES}")
    source = _source(env)
    sha256 = (env.get("MODEL_SHA256") or "").strip().lower() or None
    if sha256 is None and isinstance(source, S3Source):
        # An unpinned S3 object could be replaced under a published Lambda version.
        raise ConfigError(
            f"MODEL_SHA256 is not set: refusing to load {source} without a pinned checksum"
        )
    if sha256 is not None and not SHA256_PATTERN.fullmatch(sha256):
        raise ConfigError(f"MODEL_SHA256={sha256!r} is not a SHA-256 (64 hexadecimal digits)")
    opt_in = (env.get(UNVERIFIED_OPT_IN) or "").strip()
    if opt_in not in ("", "1"):
        raise ConfigError(f"{UNVERIFIED_OPT_IN}={opt_in!r} is not allowed: set it to 1 or unset it")
    if sha256 is None and not opt_in:
        raise ConfigError(
            f"MODEL_SHA256 is not set: refusing to load {source} unverified (loading a model "
            f"can run code it carries); set MODEL_SHA256, or {UNVERIFIED_OPT_IN}=1 for a "
            "local experiment"
        )
    return Settings(
        model_name=env.get("MODEL_NAME") or None,
        model_version=env.get("MODEL_VERSION") or None,
        runtime=runtime,
        source=source,
        sha256=sha256,
        size_bytes=_positive_int(env, "MODEL_SIZE_BYTES", 0, None) or None,
        unverified=sha256 is None,
        max_batch_size=_positive_int(
            env, "MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE, MAX_BATCH_SIZE_LIMIT
        ),
        max_body_bytes=_positive_int(
            env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, LAMBDA_PAYLOAD_LIMIT_BYTES
        ),
        metrics_namespace=env.get("METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE,
        lambda_version=env.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST",
        provisioned=env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency",
        capture_sample_rate=_capture_rate(env),
        capture_max_rows=_positive_int(
            env, "CAPTURE_MAX_ROWS", capture.DEFAULT_MAX_ROWS, capture.MAX_ROWS_PER_REQUEST
        ),
        max_explain_rows=_positive_int(
            env, "MAX_EXPLAIN_ROWS", DEFAULT_MAX_EXPLAIN_ROWS, MAX_BATCH_SIZE_LIMIT
        ),
    )


def _capture_rate(env: Mapping[str, str]) -> float:
    raw = env.get("CAPTURE_SAMPLE_RATE", "")
    if not raw.strip():
        return 0.0
    try:
        return capture.parse_rate(raw, "CAPTURE_SAMPLE_RATE")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _source(env: Mapping[str, str]) -> S3Source | LocalSource:
    bucket = env.get("MODEL_BUCKET") or ""
    key = env.get("MODEL_KEY") or ""
    path = env.get("MODEL_PATH") or ""
    if path and (bucket or key):
        raise ConfigError(
            f"both MODEL_PATH={path!r} and MODEL_BUCKET/MODEL_KEY are set: set only one source"
        )
    if path:
        return LocalSource(path)
    if bucket and key:
        return S3Source(bucket, key)
    if bucket or key:
        missing = "MODEL_KEY" if bucket else "MODEL_BUCKET"
        raise ConfigError(
            f"{missing} is not set: an S3 model needs both MODEL_BUCKET and MODEL_KEY"
        )
    raise ConfigError("no model source: set MODEL_BUCKET and MODEL_KEY, or MODEL_PATH")


def _positive_int(env: Mapping[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < 1 or (maximum is not None and value > maximum):
        allowed = f"1 to {maximum}" if maximum is not None else "at least 1"
        raise ConfigError(f"{name}={value} is out of range: allowed {allowed}")
    return value

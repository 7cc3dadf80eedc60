"""Fetch the model's bytes, verify their SHA-256, and hand them to the runtime that loads them.

The order matters: a joblib artifact is a pickle, and unpickling runs code, so nothing
deserializes bytes whose checksum has not matched the pinned ``MODEL_SHA256``.

Every download has an overall deadline (attempts, backoff and a body that trickles in
included), and stops reading as soon as the object is larger than ``MODEL_SIZE_BYTES``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from inference import runtimes
from inference.config import DEFAULT_MAX_MODEL_BYTES, LocalSource, S3Source, Settings
from inference.validation import CategoryValue, Feature, schema_from_artifact

# Per request: a sick endpoint is detected within seconds. The deadline below bounds
# the whole download whatever these say.
S3_CONNECT_TIMEOUT_S = 2
S3_READ_TIMEOUT_S = 10
# Init (module scope) may retry; on the request path one attempt keeps a 503 quick.
S3_MAX_ATTEMPTS = 3
S3_RELOAD_ATTEMPTS = 1
# One boto3 body read asks for at most this much; the deadline is checked between reads.
READ_CHUNK_BYTES = 256 * 1024


class ModelLoadError(Exception):
    """The model cannot be served; the message says why and goes to the logs (not callers).

    ``deterministic``: the pinned bytes were read and the failure came from them (they do
    not deserialize, or hold another model): loading them again would fail the same way,
    after running their code again, so this environment does not retry.
    """

    def __init__(self, message: str, *, deterministic: bool = False) -> None:
        super().__init__(message)
        self.deterministic = deterministic


class Model(Protocol):
    """What every runtime (sklearn, compiled) returns from ``load(data: bytes)``."""

    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    @property
    def features(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def task(self) -> str:
        """``binary``, ``multiclass`` or ``regression``."""
        ...

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels in output column order (binary: the second is positive); None for
        regression."""
        ...

    def outputs(
        self,
        X: NDArray[np.float64],
        unknown: Mapping[tuple[int, int], CategoryValue] | None = None,
    ) -> NDArray[np.float64]:
        """binary: P(classes[1]), shape (n,); multiclass: shape (n, len(classes)), rows
        summing to 1; regression: the value, shape (n,). ``X`` is the codes matrix (NaN
        for null, ``UNKNOWN_CODE`` for a passed unknown category); ``unknown`` holds the
        request's value of each passed unknown by (row, column)
        (``inference.validation.Instances.unknown``): a frame model hands it to its
        pipeline, the compiled runtime ignores it."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    model: Model
    schema: tuple[Feature, ...]
    model_name: str
    model_version: str
    source: str
    size_bytes: int
    sha256: str
    verified: bool
    load_ms: float


def load_model(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    max_attempts: int | None = None,
    deadline: float | None = None,
) -> LoadedModel:
    """Fetch, verify and load the model ``settings`` name.

    ``env`` is the environment ``settings`` came from (default ``os.environ``): the
    compiled runtime's S3 client reads its region, endpoint and credentials there; the
    sklearn runtime's boto3 always reads the process environment (see ``fetch_bytes``).
    ``max_attempts`` bounds the S3 requests (default ``S3_MAX_ATTEMPTS``); ``deadline``
    (a ``time.monotonic()`` instant) ends the download, whatever the attempts.
    """
    started = time.perf_counter()
    data = fetch_bytes(
        settings.source,
        runtime=settings.runtime,
        env=env,
        max_attempts=max_attempts,
        deadline=deadline,
        max_bytes=settings.size_bytes,
    )
    digest = verify_sha256(data, settings.sha256, source=str(settings.source))
    # From here on the bytes are the pinned ones: a failure would repeat on every retry.
    # Unpinned bytes (the local opt-in) may be fixed on disk, so those stay retryable.
    deterministic = settings.sha256 is not None
    loader = runtime_loader(settings.runtime)
    try:
        model = loader(data)
    except ModelLoadError as exc:
        raise ModelLoadError(str(exc), deterministic=deterministic) from exc
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {settings.source} with runtime {settings.runtime!r}: "
            f"{type(exc).__name__}: {exc}",
            deterministic=deterministic,
        ) from exc
    try:
        schema = schema_from_artifact(model.features)
    except ValueError as exc:
        raise ModelLoadError(f"{settings.source}: {exc}", deterministic=deterministic) from exc
    name, version = str(model.model_name), str(model.model_version)
    try:
        _check_identity(settings, name, version)
    except ModelLoadError as exc:
        raise ModelLoadError(str(exc), deterministic=deterministic) from exc
    return LoadedModel(
        model=model,
        schema=schema,
        model_name=name,
        model_version=version,
        source=str(settings.source),
        size_bytes=len(data),
        sha256=digest,
        verified=settings.sha256 is not None,
        load_ms=(time.perf_counter() - started) * 1000,
    )


def fetch_bytes(
    source: S3Source | LocalSource,
    *,
    runtime: str = "sklearn",
    env: Mapping[str, str] | None = None,
    max_attempts: int | None = None,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """The artifact's bytes, unverified, at most ``max_bytes`` of them.

    S3 settings (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``/
    ``AWS_ENDPOINT_URL``, credentials): the ``compiled`` runtime reads them from ``env``
    (default ``os.environ``); the ``sklearn`` runtime's boto3 reads the process
    environment (``os.environ``, plus its config files and credential chain) and ignores
    ``env``. On Lambda both are the same environment.
    """
    limit = DEFAULT_MAX_MODEL_BYTES if max_bytes is None else max_bytes
    if isinstance(source, LocalSource):
        return _read_local(source, limit)
    # Read at call time, not bound as a default: tests (and operators) tune the module value.
    attempts = S3_MAX_ATTEMPTS if max_attempts is None else max_attempts
    if attempts < 1:
        raise ValueError(f"max_attempts={attempts}: at least 1 request is needed")
    end = math.inf if deadline is None else deadline
    if runtimes.get(runtime).lean_fetch:
        return _fetch_s3_lean(source, attempts, os.environ if env is None else env, end, limit)
    return _fetch_s3(source, attempts, end, limit)


def _read_local(source: LocalSource, limit: int) -> bytes:
    try:
        with open(source.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise ModelLoadError(
                    f"MODEL_PATH={source.path!r} holds {size} bytes, more than the expected "
                    f"{limit}: not read"
                )
            return handle.read(limit + 1)
    except OSError as exc:
        raise ModelLoadError(f"cannot read MODEL_PATH={source.path!r}: {exc.strerror}") from exc


def _fetch_s3_lean(
    source: S3Source, max_attempts: int, env: Mapping[str, str], deadline: float, limit: int
) -> bytes:
    # The compiled image carries no boto3: creating an S3 client would cost more of the
    # cold start (~0.3 s) than everything else it does. Same timeouts and attempts.
    from inference import s3_fetch

    try:
        return s3_fetch.get_object(
            source.bucket,
            source.key,
            env=env,
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=S3_READ_TIMEOUT_S,
            max_attempts=max_attempts,
            deadline=None if deadline == math.inf else deadline,
            max_bytes=limit,
        )
    except s3_fetch.S3FetchError as exc:
        raise ModelLoadError(f"cannot download {source}: {exc}") from exc


def _fetch_s3(source: S3Source, max_attempts: int, deadline: float, limit: int) -> bytes:
    # Imported here: local runs and tests never pay boto3's import time.
    import boto3
    from botocore.config import Config

    from inference import s3_fetch

    def left() -> float:
        return deadline - time.monotonic()

    config = Config(
        connect_timeout=max(0.001, min(S3_CONNECT_TIMEOUT_S, left())),
        read_timeout=max(0.001, min(S3_READ_TIMEOUT_S, left())),
        # The attempts are counted here, not by botocore: its retries know no deadline.
        retries={"mode": "standard", "total_max_attempts": 1},
    )
    # boto3 reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the credentials itself, from
    # the process environment, not from the mapping handler.configure() was given.
    client = boto3.client("s3", config=config)
    for attempt in range(1, max_attempts + 1):
        try:
            return _get_once_boto(client, source, deadline, limit)
        except _AttemptError as failed:
            delay = s3_fetch.retry_delay(attempt)
            if (
                not failed.retryable
                or attempt == max_attempts
                or time.monotonic() + delay >= deadline
            ):
                suffix = f" (after {attempt} attempt{'s' if attempt > 1 else ''})"
                raise ModelLoadError(f"cannot download {source}: {failed}{suffix}") from None
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt raises")


class _AttemptError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _get_once_boto(client: Any, source: S3Source, deadline: float, limit: int) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    if time.monotonic() >= deadline:
        raise _AttemptError("deadline reached", retryable=False)
    try:
        response = client.get_object(Bucket=source.bucket, Key=source.key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        from inference import s3_fetch

        raise _AttemptError(
            f"{code}: {error.get('Message', exc)}",
            retryable=s3_fetch.is_retryable(code, status),
        ) from None
    except (BotoCoreError, OSError) as exc:
        timed_out = time.monotonic() >= deadline
        raise _AttemptError(
            "deadline reached" if timed_out else str(exc), retryable=not timed_out
        ) from None
    size = response.get("ContentLength")
    if isinstance(size, int) and size > limit:
        response["Body"].close()
        raise _AttemptError(
            f"object is {size} bytes, more than the expected {limit}", retryable=False
        )
    return _read_body(response["Body"], deadline, limit)


def _read_body(body: Any, deadline: float, limit: int) -> bytes:
    # A read blocks until bytes arrive; a watchdog shuts the socket at the deadline so
    # that neither a stalled nor a trickling body outlasts it.
    raw = getattr(body, "_raw_stream", None)
    read = getattr(raw, "read1", None) or body.read
    watchdog = None
    if math.isfinite(deadline):
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shutdown, args=(raw,))
        watchdog.daemon = True
        watchdog.start()
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() >= deadline:
                raise _AttemptError("deadline reached while reading the body", retryable=False)
            chunk = read(READ_CHUNK_BYTES)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise _AttemptError(
                    f"object is more than the expected {limit} bytes", retryable=False
                )
            chunks.append(chunk)
    except _AttemptError:
        raise
    except Exception as exc:
        if time.monotonic() >= deadline:
            raise _AttemptError(
                "deadline reached while reading the body", retryable=False
            ) from None
        raise _AttemptError(f"read failed: {type(exc).__name__}: {exc}", retryable=True) from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        body.close()
    if time.monotonic() >= deadline:
        # The watchdog may have cut the stream short: those bytes are not the object.
        raise _AttemptError("deadline reached while reading the body", retryable=False)
    expected = getattr(body, "_content_length", None)
    if expected is not None and int(expected) != size:
        raise _AttemptError(f"short read: {size} of {expected} bytes", retryable=True)
    return b"".join(chunks)


def _shutdown(raw: Any) -> None:
    # Already closed or released to the pool: nothing left to interrupt.
    with contextlib.suppress(Exception):
        raw.shutdown()


def verify_sha256(data: bytes, expected: str | None, *, source: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise ModelLoadError(
            f"checksum mismatch for {source}: its SHA-256 is {digest}, MODEL_SHA256 pins "
            f"{expected}; refusing to deserialize it"
        )
    return digest


def runtime_loader(runtime: str) -> Callable[[bytes], Model]:
    # Each runtime is imported only when chosen (inference/runtimes.py): the sklearn image
    # must not need the compiled module, and the compiled image has no scikit-learn.
    try:
        module = runtimes.load_module(runtime)
    except (runtimes.UnknownRuntimeError, runtimes.RuntimeUnavailableError) as exc:
        raise ModelLoadError(str(exc)) from None
    loader: Callable[[bytes], Model] = module.load
    return loader


def _check_identity(settings: Settings, name: str, version: str) -> None:
    # Metrics and responses carry MODEL_VERSION; serving another version under that
    # label would make a canary's dashboards lie.
    if settings.model_name is not None and settings.model_name != name:
        raise ModelLoadError(
            f"{settings.source} holds model {name!r} but MODEL_NAME is {settings.model_name!r}"
        )
    if settings.model_version is not None and settings.model_version != version:
        raise ModelLoadError(
            f"{settings.source} holds {name} {version} but MODEL_VERSION is "
            f"{settings.model_version!r}"
        )

"""Fetch the model's bytes, verify their SHA-256, and hand them to the runtime that loads them.

The order matters: a joblib artifact is a pickle, and unpickling runs code, so nothing
deserializes bytes whose checksum has not matched the pinned ``MODEL_SHA256``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from inference.config import LocalSource, S3Source, Settings
from inference.validation import Feature, schema_from_artifact

# Bounded so that a sick S3 endpoint fails init within seconds instead of hanging until
# the function times out; "standard" retries back off and cover throttling too.
S3_CONNECT_TIMEOUT_S = 2
S3_READ_TIMEOUT_S = 10
# Init (module scope) has its own 10 s phase and can afford retries. A reload after a
# failed load runs inside a request and shares the function timeout (30 s) with it:
# 3 x (2 s + 10 s) plus backoff could outlast it and the caller would get a timeout
# instead of a 503. One attempt there (worst ~12 s); the next invocation tries again.
S3_MAX_ATTEMPTS = 3
S3_RELOAD_ATTEMPTS = 1


class ModelLoadError(Exception):
    """The model cannot be served; the message says why and goes into the 503 answer."""


class Model(Protocol):
    """What every runtime (sklearn, compiled) returns from ``load(data: bytes)``."""

    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    @property
    def features(self) -> Sequence[Mapping[str, Any]]: ...

    def predict_proba(self, X: NDArray[np.float64]) -> NDArray[np.float64]: ...


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
) -> LoadedModel:
    """Fetch, verify and load the model ``settings`` name.

    ``env`` is the environment ``settings`` came from (default ``os.environ``): the
    compiled runtime's S3 client reads its region, endpoint and credentials there; the
    sklearn runtime's boto3 always reads the process environment (see ``fetch_bytes``).
    ``max_attempts`` bounds the S3 requests (default ``S3_MAX_ATTEMPTS``).
    """
    started = time.perf_counter()
    data = fetch_bytes(
        settings.source, runtime=settings.runtime, env=env, max_attempts=max_attempts
    )
    digest = verify_sha256(data, settings.sha256, source=str(settings.source))
    loader = runtime_loader(settings.runtime)
    try:
        model = loader(data)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {settings.source} with runtime {settings.runtime!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        schema = schema_from_artifact(model.features)
    except ValueError as exc:
        raise ModelLoadError(f"{settings.source}: {exc}") from exc
    name, version = str(model.model_name), str(model.model_version)
    _check_identity(settings, name, version)
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
) -> bytes:
    """The artifact's bytes, unverified.

    S3 settings (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``/
    ``AWS_ENDPOINT_URL``, credentials): the ``compiled`` runtime reads them from ``env``
    (default ``os.environ``); the ``sklearn`` runtime's boto3 reads the process
    environment (``os.environ``, plus its config files and credential chain) and ignores
    ``env``. On Lambda both are the same environment.
    """
    if isinstance(source, LocalSource):
        try:
            return Path(source.path).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read MODEL_PATH={source.path!r}: {exc.strerror}") from exc
    # Read at call time, not bound as a default: tests (and operators) tune the module value.
    attempts = S3_MAX_ATTEMPTS if max_attempts is None else max_attempts
    if attempts < 1:
        raise ValueError(f"max_attempts={attempts}: at least 1 request is needed")
    if runtime == "compiled":
        return _fetch_s3_lean(source, attempts, os.environ if env is None else env)
    return _fetch_s3(source, attempts)


def _fetch_s3_lean(source: S3Source, max_attempts: int, env: Mapping[str, str]) -> bytes:
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
        )
    except s3_fetch.S3FetchError as exc:
        raise ModelLoadError(f"cannot download {source}: {exc}") from exc


def _fetch_s3(source: S3Source, max_attempts: int) -> bytes:
    # Imported here: local runs and tests never pay boto3's import time.
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_READ_TIMEOUT_S,
        # total_max_attempts counts the first request; botocore reads "max_attempts" as
        # retries after it (max_attempts=3 would mean 4 requests).
        retries={"mode": "standard", "total_max_attempts": max_attempts},
    )
    try:
        # boto3 reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the credentials itself,
        # from the process environment, not from the mapping handler.configure() was given.
        client = boto3.client("s3", config=config)
        response = client.get_object(Bucket=source.bucket, Key=source.key)
        data: bytes = response["Body"].read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ModelLoadError(
            f"cannot download {source}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
        ) from exc
    except (BotoCoreError, OSError) as exc:
        raise ModelLoadError(f"cannot download {source}: {exc}") from exc
    return data


def verify_sha256(data: bytes, expected: str | None, *, source: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise ModelLoadError(
            f"checksum mismatch for {source}: its SHA-256 is {digest}, MODEL_SHA256 pins "
            f"{expected}; refusing to deserialize it"
        )
    return digest


def runtime_loader(runtime: str) -> Callable[[bytes], Model]:
    # Each runtime is imported only when chosen: the sklearn image must not need the
    # compiled module, and the compiled image has no scikit-learn or joblib to import.
    if runtime == "sklearn":
        from inference import sklearn_model

        return sklearn_model.load
    if runtime == "compiled":
        try:
            module = importlib.import_module("inference.compiled_model")
        except ModuleNotFoundError as exc:
            if exc.name not in ("inference.compiled_model", None):
                raise
            raise ModelLoadError("runtime 'compiled' is not available in this image") from None
        loader: Callable[[bytes], Model] = module.load
        return loader
    raise ModelLoadError(f"unknown runtime {runtime!r}")


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

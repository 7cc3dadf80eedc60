"""Calls to Lambda and Application Auto Scaling within the custom resource's time budget.

Lambda answers 409 (ResourceConflictException) while an allocation is in progress and
429 under load; Application Auto Scaling answers ConcurrentUpdateException. ``call``
retries every such answer with bounded, jittered backoff until the budget (``Clock``) runs
out; ``pages`` follows a listing's continuation marker through ``call``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

# Seconds between two reads of a status that is not settled yet.
POLL_SECONDS = 10
# Answers that mean "later", not "no".
RETRYABLE = frozenset(
    {
        "ResourceConflictException",  # Lambda: an allocation is in progress
        "TooManyRequestsException",  # Lambda: throttled
        "ServiceException",
        "ConcurrentUpdateException",  # Application Auto Scaling
        "InternalServiceException",
        "ThrottlingException",
    }
)
NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "ProvisionedConcurrencyConfigNotFoundException",
        "ObjectNotFoundException",
    }
)
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 20.0


class OutOfTimeError(TimeoutError):
    """The custom resource's time budget ran out."""


@dataclass(frozen=True)
class Clock:
    """The budget: ``expired()`` when only the response margin is left."""

    expired: Callable[[], bool]
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random


@dataclass(frozen=True)
class Clients:
    """The boto3 clients of Lambda and of Application Auto Scaling."""

    lambda_: Any
    scaling: Any


def is_error(error: Exception, codes: Collection[str]) -> bool:
    """Whether ``error`` is an AWS error answer with one of ``codes``."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in codes


def call(clock: Clock, operation: Callable[..., Any], **kwargs: Any) -> Any:
    """``operation(**kwargs)``, retried on a retryable answer until the budget runs out."""
    attempt = 0
    while True:
        try:
            return operation(**kwargs)
        except Exception as error:
            if not is_error(error, RETRYABLE):
                raise
            if clock.expired():
                raise OutOfTimeError(
                    f"{getattr(operation, '__name__', 'call')} still answers "
                    f"{type(error).__name__} ({error}); out of time"
                ) from error
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
            # Full jitter: concurrent reconcilers (or Lambda's own allocator) do not retry
            # in step.
            clock.sleep(delay * (0.5 + clock.jitter() / 2))
            attempt += 1


def pages(
    clock: Clock, operation: Callable[..., Any], marker: tuple[str, str], **kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Each page of a listing; ``marker`` names the continuation in (request, answer)."""
    sent, answered = marker
    token: str | None = None
    while True:
        page: dict[str, Any] = call(clock, operation, **kwargs, **({sent: token} if token else {}))
        yield page
        token = page.get(answered)
        if not token:
            return

"""What the two scheduled monitors share: the settings every run reads, and the wiring of a
scheduled invocation (the runtime's clients, the clock, the time left to publish)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from serving.insights import setting

# Leave this much of the invocation for publishing after the query.
MARGIN_MS = 20_000


@dataclass(frozen=True)
class MonitorSettings:
    """The settings of either monitor: whose records, where, and where the metrics go."""

    log_group: str
    model_version: str
    namespace: str

    @staticmethod
    def common(env: Mapping[str, str]) -> dict[str, Any]:
        """These fields, read from the function's environment."""
        return {
            "log_group": setting(env, "LOG_GROUP"),
            "model_version": setting(env, "MODEL_VERSION"),
            "namespace": setting(env, "METRICS_NAMESPACE"),
        }


def scheduled_run(
    run: Callable[..., dict[str, Any]],
    settings_from_env: Callable[[Mapping[str, str]], Any],
    context: Any,
    **services: str,
) -> dict[str, Any]:
    """``run(settings, <name>=boto3.client(<service>)..., now=..., expired=...)`` for this
    invocation: settings from the environment, clients of Lambda's boto3, the current time,
    and a deadline ``MARGIN_MS`` before the invocation's end."""
    import boto3  # the runtime's boto3

    return run(
        settings_from_env(os.environ),
        **{name: boto3.client(service) for name, service in services.items()},
        now=int(time.time()),
        expired=lambda: context.get_remaining_time_in_millis() < MARGIN_MS,
    )

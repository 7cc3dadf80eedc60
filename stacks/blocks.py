"""The service blocks of an environment's settings, each parsed into its type of stacks.settings.

One parser per block of ``environments.<env>`` (``function``, ``provisioned_concurrency``,
``warmer``, ``alarms``, ``capture``, ``encryption``, ``drift``, ``quality_gate``,
``batch_scoring``): each
refuses a key it does not know and checks its values and their bounds. The ``rollout``
block is stacks.rollout_block's; stacks.config assembles an environment from them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from serving.capture import MAX_ROWS_PER_REQUEST
from serving.drift import DEFAULT_MIN_REQUESTS, MIN_REQUESTS_FLOOR
from serving.payload import DEFAULT_MAX_EXPLAIN_ROWS, MAX_BATCH_SIZE_LIMIT
from stacks.context_values import Block, boolean, integer, mapping, optional_pattern
from stacks.settings import (
    EXPRESS_CHILD_LIMIT_SECONDS,
    MAX_ROWS_PER_INVOCATION,
    STATE_PAYLOAD_LIMIT_BYTES,
    AlarmSettings,
    Architecture,
    AutoscalingSettings,
    BatchScoringSettings,
    CaptureSettings,
    ConfigError,
    DriftSettings,
    EncryptionSettings,
    FunctionSettings,
    ProvisionedConcurrencySettings,
    QualityGateSettings,
    WarmerSettings,
)

FUNCTION_KEYS = (
    "architecture", "memory_mb", "timeout_seconds", "reserved_concurrency",
    "log_retention_days", "tracing", "max_batch_size", "max_explain_rows",
    "metrics_namespace",
)  # fmt: skip
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
_NAMESPACE = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def default_metrics_namespace(environment: str) -> str:
    return f"SklearnLambdaServing/{environment}"


def function_settings(block: Block, *, default_namespace: str) -> FunctionSettings:
    at = block.at
    block.only(FUNCTION_KEYS)
    retention = block.integer("log_retention_days", 30, 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"{at}.log_retention_days={retention} is not allowed: CloudWatch Logs accepts "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    reserved = block.raw.get("reserved_concurrency")
    namespace = block.text("metrics_namespace", default_namespace)
    if not _NAMESPACE.fullmatch(namespace) or namespace.startswith("AWS/"):
        raise ConfigError(
            f"{at}.metrics_namespace={namespace!r} is not allowed: 1-255 letters, digits or "
            "'._/#:-', not starting with 'AWS/'"
        )
    return FunctionSettings(
        architecture=block.choice("architecture", "arm64", Architecture),
        memory_mb=block.integer("memory_mb", 1024, 128, 10240),
        timeout_seconds=block.integer("timeout_seconds", 30, 1, 900),
        reserved_concurrency=(
            None if reserved is None else integer(f"{at}.reserved_concurrency", reserved, 1, None)
        ),
        log_retention_days=retention,
        tracing=block.boolean("tracing", True),
        max_batch_size=block.integer("max_batch_size", 1000, 1, MAX_BATCH_SIZE_LIMIT),
        max_explain_rows=block.integer(
            "max_explain_rows", DEFAULT_MAX_EXPLAIN_ROWS, 1, MAX_BATCH_SIZE_LIMIT
        ),
        metrics_namespace=namespace,
    )


def provisioned_concurrency_settings(block: Block) -> ProvisionedConcurrencySettings:
    at = block.at
    block.only(("total", "autoscaling"))
    total = block.integer("total", 0, 0, None)
    scaling_raw = block.raw.get("autoscaling")
    if scaling_raw is None:
        return ProvisionedConcurrencySettings(total=total, autoscaling=None)
    scaling = Block(f"{at}.autoscaling", mapping(f"{at}.autoscaling", scaling_raw))
    scaling.only(("max_total", "target_utilization"))
    if total == 0:
        raise ConfigError(
            f"{at}.autoscaling={dict(scaling.raw)!r} is not allowed with {at}.total=0: "
            "autoscaling scales provisioned concurrency, so set a total of at least 1 or "
            "autoscaling to null"
        )
    max_total = scaling.integer("max_total", None, total, None)
    target = scaling.number("target_utilization", 0.7)
    if not 0.1 <= target <= 0.9:
        raise ConfigError(
            f"{at}.autoscaling.target_utilization={target} is not allowed: use 0.1 to 0.9"
        )
    return ProvisionedConcurrencySettings(total, AutoscalingSettings(max_total, target))


def _on_or_auto(block: Block, auto: bool) -> bool:
    """The block's ``enabled``: true, false, or "auto" (the default), which gives ``auto``."""
    enabled_raw = block.raw.get("enabled", "auto")
    return auto if enabled_raw == "auto" else boolean(block.key("enabled"), enabled_raw, "auto")


def warmer_settings(block: Block, pc: ProvisionedConcurrencySettings) -> WarmerSettings:
    block.only(("enabled", "rate_minutes"))
    # "auto": provisioned concurrency already keeps initialised environments, so pinging
    # them would only cost invocations; without it the pings are the only warm-up.
    enabled = _on_or_auto(block, pc.total == 0)
    return WarmerSettings(enabled=enabled, rate_minutes=block.integer("rate_minutes", 5, 1, 60))


ALARM_KEYS = (
    "email", "latency_p99_ms", "latency_evaluation_minutes", "latency_breaching_minutes",
    "errors_threshold", "errors_period_minutes", "throttles_threshold",
)  # fmt: skip
# An alarm that waits for more than an hour of data reacts too late to stop a canary.
_MAX_ALARM_MINUTES = 60


def alarm_settings(block: Block, context: Mapping[str, Any]) -> AlarmSettings:
    at = block.at
    block.only(ALARM_KEYS)
    # -c alarm_email=... replaces the committed address (none, null or '' clears it).
    email_key, email_raw = (
        ("alarm_email", context["alarm_email"])
        if "alarm_email" in context
        else (f"{at}.email", block.raw.get("email"))
    )
    evaluation = block.integer("latency_evaluation_minutes", 5, 1, _MAX_ALARM_MINUTES)
    breaching = block.integer("latency_breaching_minutes", 3, 1, None)
    if breaching > evaluation:
        raise ConfigError(
            f"{at}.latency_breaching_minutes={breaching} is not allowed: at most "
            f"{at}.latency_evaluation_minutes={evaluation} (the minutes out of which it counts)"
        )
    return AlarmSettings(
        email=optional_pattern(email_key, email_raw, _EMAIL, "an address"),
        latency_p99_ms=block.integer("latency_p99_ms", 500, 1, None),
        latency_evaluation_minutes=evaluation,
        latency_breaching_minutes=breaching,
        errors_threshold=block.integer("errors_threshold", 5, 0, None),
        errors_period_minutes=block.integer("errors_period_minutes", 5, 1, _MAX_ALARM_MINUTES),
        throttles_threshold=block.integer("throttles_threshold", 0, 0, None),
    )


CAPTURE_KEYS = ("enabled", "sample_rate", "max_rows_per_request", "retention_days")


def capture_settings(block: Block) -> CaptureSettings:
    block.only(CAPTURE_KEYS)
    rate = block.number("sample_rate", 1.0)
    if not 0 <= rate <= 1:
        raise ConfigError(
            f"{block.at}.sample_rate={rate:g} is not allowed: the share of requests to capture, "
            "from 0 (none) to 1 (every request)"
        )
    return CaptureSettings(
        enabled=block.boolean("enabled", False),
        sample_rate=rate,
        max_rows_per_request=block.integer("max_rows_per_request", 100, 1, MAX_ROWS_PER_REQUEST),
        # S3 lifecycle expiration takes whole days.
        retention_days=block.integer("retention_days", 90, 1, 3650),
    )


ENCRYPTION_KEYS = ("customer_managed_key",)


def encryption_settings(block: Block) -> EncryptionSettings:
    block.only(ENCRYPTION_KEYS)
    return EncryptionSettings(customer_managed_key=block.boolean("customer_managed_key", False))


# The most requests a window can be asked for (a Logs Insights query returned 10,000 rows).
MAX_MIN_REQUESTS = 10_000
DRIFT_KEYS = ("enabled", "schedule_minutes", "window_minutes", "psi_watch", "psi_alarm",
              "min_requests")  # fmt: skip


def drift_settings(block: Block, capture: CaptureSettings) -> DriftSettings | None:
    at = block.at
    if "min_rows" in block.raw:
        # Renamed when the unit became the request: say what to write, not "unknown key".
        raise ConfigError(
            f"{at}.min_rows={block.raw['min_rows']!r} is not allowed any more: the minimum "
            f"counts distinct requests now; write {at}.min_requests (an integer from "
            f"{MIN_REQUESTS_FLOOR} to {MAX_MIN_REQUESTS}, default {DEFAULT_MIN_REQUESTS})"
        )
    block.only(DRIFT_KEYS)
    # "auto": on exactly when there is captured traffic to judge.
    enabled = _on_or_auto(block, capture.effective_rate > 0)
    if enabled and capture.effective_rate == 0:
        raise ConfigError(
            f"{at}.enabled=true needs captured traffic: set capture.enabled=true with a "
            "sample_rate above 0, or drift.enabled to false or 'auto'"
        )
    watch = block.number("psi_watch", 0.1)
    alarm = block.number("psi_alarm", 0.25)
    if not 0 < watch <= alarm:
        raise ConfigError(
            f"{at}.psi_watch={watch:g} and {at}.psi_alarm={alarm:g} are not allowed: "
            "0 < psi_watch <= psi_alarm (the usual 0.1 and 0.25)"
        )
    settings = DriftSettings(
        schedule_minutes=block.integer("schedule_minutes", 60, 5, 1440),
        window_minutes=block.integer("window_minutes", 60, 5, 1440),
        psi_watch=watch,
        psi_alarm=alarm,
        # The floor: below it, chance alone pushes the prediction's PSI over psi_alarm
        # (serving.drift.MIN_REQUESTS_FLOOR, docs/capture-and-drift.md "False alarms").
        min_requests=block.integer(
            "min_requests", DEFAULT_MIN_REQUESTS, MIN_REQUESTS_FLOOR, MAX_MIN_REQUESTS
        ),
    )
    return settings if enabled else None


QUALITY_GATE_KEYS = ("max_log_loss_increase", "max_auc_decrease", "max_brier_increase",
                     "max_rmse_increase_fraction")  # fmt: skip
# Larger bounds would let through a model that is no better than a coin (ROC AUC and Brier
# live in [0, 1]; a coin's log loss is 0.69), or a regressor twice as far off.
_QUALITY_GATE_MAXIMA = {"max_log_loss_increase": 1.0, "max_auc_decrease": 0.5,
                        "max_brier_increase": 0.25, "max_rmse_increase_fraction": 1.0}  # fmt: skip


def quality_gate_settings(block: Block) -> QualityGateSettings:
    block.only((*QUALITY_GATE_KEYS, "allow_unlabelled_golden"))
    defaults = QualityGateSettings()
    values = {}
    for key in QUALITY_GATE_KEYS:
        value = block.number(key, getattr(defaults, key))
        if not 0 <= value <= _QUALITY_GATE_MAXIMA[key]:
            raise ConfigError(
                f"{block.at}.{key}={value:g} is not allowed: 0 (no worse than the stable "
                f"model) to {_QUALITY_GATE_MAXIMA[key]:g}"
            )
        values[key] = value
    # A golden set without labels compares nothing: deploying one is an explicit choice.
    allow = block.boolean("allow_unlabelled_golden", defaults.allow_unlabelled_golden)
    return QualityGateSettings(**values, allow_unlabelled_golden=allow)


BATCH_SCORING_KEYS = (
    "enabled", "max_concurrency", "rows_per_invocation", "tolerated_failure_percentage",
    "input_buckets", "output_buckets",
)  # fmt: skip
# Distributed Map runs at most 10,000 child workflows at once.
MAX_BATCH_CONCURRENCY = 10_000
# S3's rules for a bucket name (general purpose buckets): 3-63 lower-case letters, digits,
# '.' and '-', beginning and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The retries of a batch (stacks.constructs.batch_scoring): a timed-out invocation is tried
# once more, and the backoff of every retry adds up to at most this many seconds.
BATCH_TIMEOUT_ATTEMPTS = 2
BATCH_BACKOFF_SECONDS = 62
# The task state waits this much longer than the function's timeout for an invocation.
BATCH_TASK_MARGIN_SECONDS = 10


def _buckets(block: Block, name: str) -> tuple[str, ...]:
    raw = block.raw.get(name, [])
    if not isinstance(raw, list) or not all(
        isinstance(b, str) and _BUCKET.fullmatch(b) for b in raw
    ):
        raise ConfigError(
            f"{block.key(name)}={raw!r} is not allowed: a list of S3 bucket names (3 to 63 "
            "lower-case letters, digits, '.' and '-')"
        )
    return tuple(dict.fromkeys(raw))


def batch_scoring_settings(block: Block, function: FunctionSettings) -> BatchScoringSettings:
    at = block.at
    block.only(BATCH_SCORING_KEYS)
    defaults = BatchScoringSettings()
    rows = block.integer("rows_per_invocation", defaults.rows_per_invocation, 1, None)
    if rows > MAX_ROWS_PER_INVOCATION:
        raise ConfigError(
            f"{at}.rows_per_invocation={rows} is not allowed: at most "
            f"{MAX_ROWS_PER_INVOCATION}, so that a batch's answer (one row per input row) fits "
            f"Step Functions' {STATE_PAYLOAD_LIMIT_BYTES // 1024} KiB limit on a state's output"
        )
    if rows > function.max_batch_size:
        raise ConfigError(
            f"{at}.rows_per_invocation={rows} is not allowed: at most "
            f"function.max_batch_size={function.max_batch_size}, the most rows the function "
            "accepts in one invocation (MAX_BATCH_SIZE); lower it or raise max_batch_size"
        )
    # An integer: the States Language schema's type for ToleratedFailurePercentage.
    tolerated = block.integer(
        "tolerated_failure_percentage", defaults.tolerated_failure_percentage, 0, 100
    )
    settings = BatchScoringSettings(
        enabled=block.boolean("enabled", defaults.enabled),
        max_concurrency=block.integer(
            "max_concurrency", defaults.max_concurrency, 1, MAX_BATCH_CONCURRENCY
        ),
        rows_per_invocation=rows,
        tolerated_failure_percentage=tolerated,
        input_buckets=_buckets(block, "input_buckets"),
        output_buckets=_buckets(block, "output_buckets"),
    )
    if not settings.enabled:
        return settings
    for name in ("input_buckets", "output_buckets"):
        if not getattr(settings, name):
            raise ConfigError(
                f"{at}.{name}=[] is not allowed with {at}.enabled=true: name the S3 buckets "
                "runs read their input from (input_buckets) and write their results to "
                "(output_buckets); the state machine may touch no other bucket"
            )
    attempt = function.timeout_seconds + BATCH_TASK_MARGIN_SECONDS
    worst = BATCH_TIMEOUT_ATTEMPTS * attempt + BATCH_BACKOFF_SECONDS
    if worst > EXPRESS_CHILD_LIMIT_SECONDS:
        longest = (
            EXPRESS_CHILD_LIMIT_SECONDS - BATCH_BACKOFF_SECONDS
        ) // BATCH_TIMEOUT_ATTEMPTS - BATCH_TASK_MARGIN_SECONDS
        raise ConfigError(
            f"function.timeout_seconds={function.timeout_seconds} is not allowed with "
            f"{at}.enabled=true: each batch runs in an Express child workflow, which ends "
            f"after {EXPRESS_CHILD_LIMIT_SECONDS} s, and a batch may take "
            f"{BATCH_TIMEOUT_ATTEMPTS} invocations that time out (each waited for "
            f"{BATCH_TASK_MARGIN_SECONDS} s past the timeout) plus {BATCH_BACKOFF_SECONDS} s "
            f"of backoff ({worst} s); use at most {longest}"
        )
    return settings

"""Deployment configuration: CDK context in, the frozen types of stacks.settings out.

Context arrives from three places: ``cdk.json`` (JSON values), ``-c key=value`` on the
command line (always strings) and ``cdk.context.json``. Everything is parsed here, once;
constructs receive typed values and never read context. Every error names the key, the
value and what is allowed, because a synth error is the whole user interface.

Shape of the context (docs/configuration.md is the reference, tested against this parser)::

    env, model, model_version, stable_version, canary_weight, alarm_email  # -c overrides
    environments: {<env>: {model_name, runtime, account, region, termination_protection,
                           function: {...}, provisioned_concurrency: {...},
                           warmer: {...}, endpoint: {...}, alarms: {...}, capture: {...},
                           encryption: {customer_managed_key},
                           rollout: {mode, model_version, stable_version, canary_weight,
                                     stable_model_version, deployment},
                           quality_gate: {max_log_loss_increase, max_auc_decrease,
                                          max_brier_increase, max_rmse_increase_fraction}}}

Scalars are read by stacks.context_values, provisioned-concurrency rules live in
stacks.capacity, and a model version's manifest is read by stacks.model_artifact.

The ``rollout`` block is the committed state of a release; the rollout command
(``python -m tools.rollout``) rewrites it in ``cdk.json``, and the four command-line keys
override it for one synth.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.artifacts import NAME_PATTERN, VERSION_PATTERN
from stacks.capacity import check_concurrency, split_provisioned_concurrency
from stacks.context_values import (
    boolean,
    choice,
    integer,
    is_unset,
    mapping,
    number,
    only,
    optional_pattern,
    text,
)
from stacks.model_artifact import load_model_artifact
from stacks.settings import (
    DEFAULT_ARTIFACTS_ROOT,
    DEFAULT_ENVIRONMENT,
    DEFAULT_TRAFFIC_SHIFT,
    REPO_ROOT,
    AlarmSettings,
    Architecture,
    AutoscalingSettings,
    CaptureSettings,
    ConfigError,
    DriftSettings,
    EncryptionSettings,
    EndpointAuth,
    EnvironmentConfig,
    FunctionSettings,
    ModelArtifact,
    ModelRuntime,
    ProvisionedConcurrencySettings,
    QualityGateSettings,
    Rollout,
    RolloutMode,
    TrafficShift,
    WarmerSettings,
)

CDK_JSON = REPO_ROOT / "cdk.json"
# The public command-line interface; anything else at the top level is a typo. The three
# rollout keys move one model (-c model=...); alarm_email subscribes every model's topic.
ROLLOUT_OVERRIDE_KEYS = ("model_version", "stable_version", "canary_weight")
OVERRIDE_KEYS = ("env", "model", *ROLLOUT_OVERRIDE_KEYS, "alarm_email")
TOP_LEVEL_KEYS = (*OVERRIDE_KEYS, "environments")

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
# Model names and versions are the artifact writer's: one rule for training and deploy.
_MODEL_NAME = NAME_PATTERN
_MODEL_VERSION = VERSION_PATTERN
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Equal to the handler's inference.limits.MAX_BATCH_SIZE_LIMIT (derived there from Lambda's
# 6 MB response limit); repeated because the CDK app cannot import lambda_src. A test in
# tests/infra keeps the two equal.
MAX_BATCH_SIZE_LIMIT = 100_000


def committed_context() -> dict[str, Any]:
    """The context of the repository's ``cdk.json``, as the tools read it (no ``-c``)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


def load_committed(env: str) -> EnvironmentConfig:
    """Environment ``env`` as the committed ``cdk.json`` configures it."""
    return load_config({**committed_context(), "env": env})


def load_config(
    context: Mapping[str, Any], *, artifacts_root: Path = DEFAULT_ARTIFACTS_ROOT
) -> EnvironmentConfig:
    """Parse the app's whole context into the configuration of the selected environment."""
    unknown = sorted(k for k in context if k not in TOP_LEVEL_KEYS and not _is_cdk_owned(k))
    if unknown:
        raise ConfigError(
            f"unknown context key(s) {', '.join(unknown)}: allowed are "
            f"{', '.join(TOP_LEVEL_KEYS)} (plus CDK's own '@aws-cdk/...' and 'aws:cdk:...' keys)"
        )
    environments = context.get("environments")
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError(
            f"context key 'environments'={environments!r} is not allowed: cdk.json must map "
            "each environment name to its settings"
        )
    env_name = text("env", context.get("env", DEFAULT_ENVIRONMENT))
    if env_name not in environments:
        raise ConfigError(
            f"env={env_name!r} is not a configured environment: use one of "
            f"{', '.join(sorted(environments))}"
        )
    raw = mapping(f"environments.{env_name}", environments[env_name])
    _check_distinct_namespaces(environments)
    at = f"environments.{env_name}"
    models = mapping(f"{at}.models", raw.get("models", {}))
    primary_name = text(f"{at}.model_name", raw.get("model_name", "churn"))
    selected = text("model", context.get("model", primary_name))
    if selected != primary_name and selected not in models:
        raise ConfigError(
            f"model={selected!r} is not a model of environment {env_name!r}: use one of "
            f"{', '.join([primary_name, *models])}"
        )
    # The command-line rollout keys move one model: the one -c model= names.
    overrides = {k: v for k, v in context.items() if k != "model"}
    without = {k: v for k, v in overrides.items() if k not in ROLLOUT_OVERRIDE_KEYS}
    primary = _environment(
        env_name, at, raw, overrides if selected == primary_name else without, artifacts_root
    )
    additional = tuple(
        dataclasses.replace(
            _environment(
                env_name,
                f"{at}.models.{model_name}",
                _model_settings(at, raw, model_name, models[model_name], primary),
                overrides if selected == model_name else without,
                artifacts_root,
            ),
            first_model=False,
        )
        for model_name in models
    )
    _check_distinct_models(at, (primary, *additional))
    return dataclasses.replace(primary, additional_models=additional)


# What a model of ``environments.<env>.models`` may set; every other setting is the
# environment's (account, region, protection, encryption, the capture bucket's retention).
_MODEL_KEYS = (
    "runtime", "function", "provisioned_concurrency", "warmer", "endpoint", "alarms",
    "capture", "drift", "quality_gate", "rollout",
)  # fmt: skip
_MERGED_BLOCKS = frozenset(_MODEL_KEYS) - {"runtime", "rollout"}


def _model_settings(
    at: str,
    environment: Mapping[str, Any],
    model_name: str,
    raw_model: Any,
    primary: EnvironmentConfig,
) -> dict[str, Any]:
    """A further model's settings: the environment's, with the model's own blocks merged
    key by key over them; its rollout block is its own (required)."""
    where = f"{at}.models.{model_name}"
    if not isinstance(model_name, str) or not _MODEL_NAME.fullmatch(model_name):
        raise ConfigError(
            f"{at}.models key {model_name!r} is not allowed: a model name is lower-case "
            "letters, digits and '-', starting with a letter, at most 40 characters"
        )
    if model_name == primary.model.model_name:
        raise ConfigError(
            f"{where}: {model_name!r} is already the environment's model_name; list only the "
            "further models under 'models'"
        )
    own = mapping(where, raw_model)
    only(where, own, _MODEL_KEYS)
    if "rollout" not in own:
        raise ConfigError(
            f"{where}.rollout is missing: each model has its own rollout block (at least "
            '{"model_version": "v1"})'
        )
    capture = mapping(f"{where}.capture", own.get("capture", {}))
    if "retention_days" in capture:
        raise ConfigError(
            f"{where}.capture.retention_days is not allowed: the capture bucket and its "
            f"retention are the environment's ({at}.capture.retention_days)"
        )
    merged: dict[str, Any] = {
        k: v for k, v in environment.items() if k not in ("models", "rollout", "model_name")
    }
    merged["model_name"] = model_name
    for key, value in own.items():
        if key in _MERGED_BLOCKS:
            merged[key] = {**mapping(f"{at}.{key}", environment.get(key, {})),
                           **mapping(f"{where}.{key}", value)}  # fmt: skip
        else:
            merged[key] = value
    function = dict(merged.get("function", {}))
    if "metrics_namespace" not in mapping(f"{where}.function", own.get("function", {})):
        # Model metrics carry the ModelVersion dimension only: each model its own namespace.
        function["metrics_namespace"] = f"{primary.function.metrics_namespace}/{model_name}"
    merged["function"] = function
    return merged


def _check_distinct_models(at: str, models: tuple[EnvironmentConfig, ...]) -> None:
    seen: dict[str, str] = {}
    for config in models:
        namespace, name = config.function.metrics_namespace, config.model.model_name
        if namespace in seen:
            raise ConfigError(
                f"{at}: models {seen[namespace]!r} and {name!r} both use "
                f"function.metrics_namespace={namespace!r}: each model needs its own (model "
                "metrics carry only the ModelVersion dimension, so their alarms would count "
                "each other's answers)"
            )
        seen[namespace] = name


def _is_cdk_owned(key: str) -> bool:
    # Feature flags ("@aws-cdk/..."), CLI settings ("aws:cdk:...") and cached lookups
    # ("availability-zones:account=...") all contain ':' or start with '@'.
    return key.startswith("@") or ":" in key


_ENVIRONMENT_KEYS = (
    "account", "region", "model_name", "runtime", "termination_protection", "function",
    "provisioned_concurrency", "warmer", "endpoint", "alarms", "capture", "drift", "rollout",
    "quality_gate", "encryption", "models",
)  # fmt: skip
_FUNCTION_KEYS = (
    "architecture", "memory_mb", "timeout_seconds", "reserved_concurrency",
    "log_retention_days", "tracing", "max_batch_size", "metrics_namespace",
)  # fmt: skip


def _environment(
    name: str,
    at: str,
    raw: Mapping[str, Any],
    context: Mapping[str, Any],
    artifacts_root: Path,
) -> EnvironmentConfig:
    only(at, raw, _ENVIRONMENT_KEYS)
    account = optional_pattern(f"{at}.account", raw.get("account"), _ACCOUNT, "12 digits")
    region = optional_pattern(f"{at}.region", raw.get("region"), _REGION, "e.g. eu-west-1")
    model_name = text(f"{at}.model_name", raw.get("model_name", "churn"))
    if not _MODEL_NAME.fullmatch(model_name):
        raise ConfigError(
            f"{at}.model_name={model_name!r} is not allowed: lower-case letters, digits and "
            "'-', starting with a letter, at most 40 characters"
        )
    runtime = choice(f"{at}.runtime", raw.get("runtime", "sklearn"), ModelRuntime)
    function = _function(
        f"{at}.function",
        mapping(f"{at}.function", raw.get("function", {})),
        default_namespace=default_metrics_namespace(name),
    )
    pc = _provisioned_concurrency(
        f"{at}.provisioned_concurrency",
        mapping(f"{at}.provisioned_concurrency", raw.get("provisioned_concurrency", {})),
    )
    rollout = _rollout(f"{at}.rollout", mapping(f"{at}.rollout", raw.get("rollout", {})), context)
    warmer = _warmer(f"{at}.warmer", mapping(f"{at}.warmer", raw.get("warmer", {})), pc)
    endpoint = mapping(f"{at}.endpoint", raw.get("endpoint", {}))
    only(f"{at}.endpoint", endpoint, ("auth",))
    auth = choice(f"{at}.endpoint.auth", endpoint.get("auth", "AWS_IAM"), EndpointAuth)
    alarms = _alarms(f"{at}.alarms", mapping(f"{at}.alarms", raw.get("alarms", {})), context)
    env_at = f"environments.{name}"
    protection = boolean(
        f"{env_at}.termination_protection", raw.get("termination_protection", False)
    )
    if protection and alarms.email is None:
        # A protected environment is one someone depends on: its alarms must page someone.
        raise ConfigError(
            f"{at}.alarms.email=None is not allowed with {env_at}.termination_protection=true: "
            "the alarms of a protected environment must reach someone. Set "
            f"{at}.alarms.email in cdk.json to an address (confirm the e-mail AWS sends), "
            f"or pass one for this command: -c alarm_email=<on-call address>"
        )
    capture = _capture(f"{at}.capture", mapping(f"{at}.capture", raw.get("capture", {})))
    encryption = _encryption(
        f"{env_at}.encryption", mapping(f"{env_at}.encryption", raw.get("encryption", {}))
    )
    drift = _drift(f"{at}.drift", mapping(f"{at}.drift", raw.get("drift", {})), capture)
    gate = _quality_gate(
        f"{at}.quality_gate", mapping(f"{at}.quality_gate", raw.get("quality_gate", {}))
    )
    check_concurrency(at, function, pc, rollout)
    model = load_model_artifact(artifacts_root, model_name, rollout.model_version, runtime)
    return EnvironmentConfig(
        name=name,
        account=account,
        region=region,
        model=model,
        function=function,
        provisioned_concurrency=pc,
        pc_share=split_provisioned_concurrency(pc, rollout),
        warmer=warmer,
        endpoint_auth=auth,
        alarms=alarms,
        capture=capture,
        drift=drift,
        rollout=rollout,
        termination_protection=protection,
        quality_gate=gate,
        encryption=encryption,
        stable_model=_same_task(
            at, model, _stable_model(artifacts_root, model_name, rollout, runtime)
        ),
    )


def _stable_model(
    artifacts_root: Path, model_name: str, rollout: Rollout, runtime: ModelRuntime
) -> ModelArtifact | None:
    """The stable side's artifact for the traffic gate, when recorded and present here."""
    version = rollout.stable_model_version
    if version is None or version == rollout.model_version:
        return None
    try:
        return load_model_artifact(artifacts_root, model_name, version, runtime)
    except ConfigError:
        # Trained elsewhere and not checked in: the gate scores the candidate's rows only.
        return None


def _same_task(at: str, model: ModelArtifact, stable: ModelArtifact | None) -> ModelArtifact | None:
    # The alias answers callers from both versions: one answer shape, one set of metrics.
    if stable is not None and stable.task != model.task:
        raise ConfigError(
            f"{at}.rollout: model_version {model.model_version} is a {model.task} model but "
            f"stable_model_version {stable.model_version} is {stable.task}: a canary splits "
            "one endpoint's callers between them, so both must answer alike; deploy a model "
            "of another task under another model name"
        )
    return stable


def default_metrics_namespace(environment: str) -> str:
    return f"SklearnLambdaServing/{environment}"


def _check_distinct_namespaces(environments: Mapping[str, Any]) -> None:
    # Model metrics carry only the ModelVersion dimension: two environments in one account
    # and region that share a namespace would count each other's errors in their alarms
    # (and roll each other back in automated mode).
    seen: dict[str, str] = {}
    for name, raw in environments.items():
        function = raw.get("function", {}) if isinstance(raw, Mapping) else {}
        if not isinstance(function, Mapping):
            continue  # the selected environment's parser names this error
        namespace = function.get("metrics_namespace", default_metrics_namespace(name))
        if namespace in seen:
            raise ConfigError(
                f"environments.{seen[namespace]} and environments.{name} both set "
                f"function.metrics_namespace={namespace!r}: each environment needs its own "
                "(their alarms would count each other's errors when they share an account "
                "and region)"
            )
        seen[namespace] = name


def _function(at: str, raw: Mapping[str, Any], *, default_namespace: str) -> FunctionSettings:
    only(at, raw, _FUNCTION_KEYS)
    retention = integer(f"{at}.log_retention_days", raw.get("log_retention_days", 30), 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"{at}.log_retention_days={retention} is not allowed: CloudWatch Logs accepts "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    reserved = raw.get("reserved_concurrency")
    namespace = text(f"{at}.metrics_namespace", raw.get("metrics_namespace", default_namespace))
    if not _NAMESPACE.fullmatch(namespace) or namespace.startswith("AWS/"):
        raise ConfigError(
            f"{at}.metrics_namespace={namespace!r} is not allowed: 1-255 letters, digits or "
            "'._/#:-', not starting with 'AWS/'"
        )
    return FunctionSettings(
        architecture=choice(f"{at}.architecture", raw.get("architecture", "arm64"), Architecture),
        memory_mb=integer(f"{at}.memory_mb", raw.get("memory_mb", 1024), 128, 10240),
        timeout_seconds=integer(f"{at}.timeout_seconds", raw.get("timeout_seconds", 30), 1, 900),
        reserved_concurrency=(
            None if reserved is None else integer(f"{at}.reserved_concurrency", reserved, 1, None)
        ),
        log_retention_days=retention,
        tracing=boolean(f"{at}.tracing", raw.get("tracing", True)),
        max_batch_size=integer(
            f"{at}.max_batch_size", raw.get("max_batch_size", 1000), 1, MAX_BATCH_SIZE_LIMIT
        ),
        metrics_namespace=namespace,
    )


def _provisioned_concurrency(at: str, raw: Mapping[str, Any]) -> ProvisionedConcurrencySettings:
    only(at, raw, ("total", "autoscaling"))
    total = integer(f"{at}.total", raw.get("total", 0), 0, None)
    scaling_raw = raw.get("autoscaling")
    if scaling_raw is None:
        return ProvisionedConcurrencySettings(total=total, autoscaling=None)
    scaling = mapping(f"{at}.autoscaling", scaling_raw)
    only(f"{at}.autoscaling", scaling, ("max_total", "target_utilization"))
    if total == 0:
        raise ConfigError(
            f"{at}.autoscaling={dict(scaling)!r} is not allowed with {at}.total=0: autoscaling "
            "scales provisioned concurrency, so set a total of at least 1 or autoscaling to null"
        )
    max_total = integer(f"{at}.autoscaling.max_total", scaling.get("max_total"), total, None)
    target = number(f"{at}.autoscaling.target_utilization", scaling.get("target_utilization", 0.7))
    if not 0.1 <= target <= 0.9:
        raise ConfigError(
            f"{at}.autoscaling.target_utilization={target} is not allowed: use 0.1 to 0.9"
        )
    return ProvisionedConcurrencySettings(total, AutoscalingSettings(max_total, target))


def _warmer(at: str, raw: Mapping[str, Any], pc: ProvisionedConcurrencySettings) -> WarmerSettings:
    only(at, raw, ("enabled", "rate_minutes"))
    enabled_raw = raw.get("enabled", "auto")
    # "auto": provisioned concurrency already keeps initialised environments, so pinging
    # them would only cost invocations; without it the pings are the only warm-up.
    enabled = (
        pc.total == 0 if enabled_raw == "auto" else boolean(f"{at}.enabled", enabled_raw, "auto")
    )
    rate = integer(f"{at}.rate_minutes", raw.get("rate_minutes", 5), 1, 60)
    return WarmerSettings(enabled=enabled, rate_minutes=rate)


ALARM_KEYS = (
    "email", "latency_p99_ms", "latency_evaluation_minutes", "latency_breaching_minutes",
    "errors_threshold", "errors_period_minutes", "throttles_threshold",
)  # fmt: skip
# An alarm that waits for more than an hour of data reacts too late to stop a canary.
_MAX_ALARM_MINUTES = 60


def _alarms(at: str, raw: Mapping[str, Any], context: Mapping[str, Any]) -> AlarmSettings:
    only(at, raw, ALARM_KEYS)
    # -c alarm_email=... replaces the committed address (none, null or '' clears it).
    email_key, email_raw = (
        ("alarm_email", context["alarm_email"])
        if "alarm_email" in context
        else (f"{at}.email", raw.get("email"))
    )
    evaluation = integer(
        f"{at}.latency_evaluation_minutes",
        raw.get("latency_evaluation_minutes", 5),
        1,
        _MAX_ALARM_MINUTES,
    )
    breaching = integer(
        f"{at}.latency_breaching_minutes", raw.get("latency_breaching_minutes", 3), 1, None
    )
    if breaching > evaluation:
        raise ConfigError(
            f"{at}.latency_breaching_minutes={breaching} is not allowed: at most "
            f"{at}.latency_evaluation_minutes={evaluation} (the minutes out of which it counts)"
        )
    return AlarmSettings(
        email=optional_pattern(email_key, email_raw, _EMAIL, "an address"),
        latency_p99_ms=integer(f"{at}.latency_p99_ms", raw.get("latency_p99_ms", 500), 1, None),
        latency_evaluation_minutes=evaluation,
        latency_breaching_minutes=breaching,
        errors_threshold=integer(f"{at}.errors_threshold", raw.get("errors_threshold", 5), 0, None),
        errors_period_minutes=integer(
            f"{at}.errors_period_minutes",
            raw.get("errors_period_minutes", 5),
            1,
            _MAX_ALARM_MINUTES,
        ),
        throttles_threshold=integer(
            f"{at}.throttles_threshold", raw.get("throttles_threshold", 0), 0, None
        ),
    )


CAPTURE_KEYS = ("enabled", "sample_rate", "max_rows_per_request", "retention_days")
# The handler's own bound (inference/capture.py): one line per captured row.
MAX_CAPTURED_ROWS = 1000


def _capture(at: str, raw: Mapping[str, Any]) -> CaptureSettings:
    only(at, raw, CAPTURE_KEYS)
    rate = number(f"{at}.sample_rate", raw.get("sample_rate", 1.0))
    if not 0 <= rate <= 1:
        raise ConfigError(
            f"{at}.sample_rate={rate:g} is not allowed: the share of requests to capture, "
            "from 0 (none) to 1 (every request)"
        )
    return CaptureSettings(
        enabled=boolean(f"{at}.enabled", raw.get("enabled", False)),
        sample_rate=rate,
        max_rows_per_request=integer(
            f"{at}.max_rows_per_request",
            raw.get("max_rows_per_request", 100),
            1,
            MAX_CAPTURED_ROWS,
        ),
        # S3 lifecycle expiration takes whole days.
        retention_days=integer(f"{at}.retention_days", raw.get("retention_days", 90), 1, 3650),
    )


ENCRYPTION_KEYS = ("customer_managed_key",)


def _encryption(at: str, raw: Mapping[str, Any]) -> EncryptionSettings:
    only(at, raw, ENCRYPTION_KEYS)
    return EncryptionSettings(
        customer_managed_key=boolean(
            f"{at}.customer_managed_key", raw.get("customer_managed_key", False)
        )
    )


DRIFT_KEYS = ("enabled", "schedule_minutes", "window_minutes", "psi_watch", "psi_alarm",
              "min_rows")  # fmt: skip


def _drift(at: str, raw: Mapping[str, Any], capture: CaptureSettings) -> DriftSettings | None:
    only(at, raw, DRIFT_KEYS)
    enabled_raw = raw.get("enabled", "auto")
    # "auto": on exactly when there is captured traffic to judge.
    enabled = (
        capture.effective_rate > 0
        if enabled_raw == "auto"
        else boolean(f"{at}.enabled", enabled_raw, "auto")
    )
    if enabled and capture.effective_rate == 0:
        raise ConfigError(
            f"{at}.enabled=true needs captured traffic: set capture.enabled=true with a "
            "sample_rate above 0, or drift.enabled to false or 'auto'"
        )
    watch = number(f"{at}.psi_watch", raw.get("psi_watch", 0.1))
    alarm = number(f"{at}.psi_alarm", raw.get("psi_alarm", 0.25))
    if not 0 < watch <= alarm:
        raise ConfigError(
            f"{at}.psi_watch={watch:g} and {at}.psi_alarm={alarm:g} are not allowed: "
            "0 < psi_watch <= psi_alarm (the usual 0.1 and 0.25)"
        )
    settings = DriftSettings(
        schedule_minutes=integer(
            f"{at}.schedule_minutes", raw.get("schedule_minutes", 60), 5, 1440
        ),
        window_minutes=integer(f"{at}.window_minutes", raw.get("window_minutes", 60), 5, 1440),
        psi_watch=watch,
        psi_alarm=alarm,
        min_rows=integer(f"{at}.min_rows", raw.get("min_rows", 200), 10, 10_000),
    )
    return settings if enabled else None


QUALITY_GATE_KEYS = ("max_log_loss_increase", "max_auc_decrease", "max_brier_increase",
                     "max_rmse_increase_fraction")  # fmt: skip
# Larger bounds would let through a model that is no better than a coin (ROC AUC and Brier
# live in [0, 1]; a coin's log loss is 0.69), or a regressor twice as far off.
_QUALITY_GATE_MAXIMA = {"max_log_loss_increase": 1.0, "max_auc_decrease": 0.5,
                        "max_brier_increase": 0.25, "max_rmse_increase_fraction": 1.0}  # fmt: skip


def _quality_gate(at: str, raw: Mapping[str, Any]) -> QualityGateSettings:
    only(at, raw, QUALITY_GATE_KEYS)
    defaults = QualityGateSettings()
    values = {}
    for key in QUALITY_GATE_KEYS:
        value = number(f"{at}.{key}", raw.get(key, getattr(defaults, key)))
        if not 0 <= value <= _QUALITY_GATE_MAXIMA[key]:
            raise ConfigError(
                f"{at}.{key}={value:g} is not allowed: 0 (no worse than the stable model) to "
                f"{_QUALITY_GATE_MAXIMA[key]:g}"
            )
        values[key] = value
    return QualityGateSettings(**values)


ROLLOUT_KEYS = (
    "mode", "model_version", "stable_version", "canary_weight", "stable_model_version",
    "deployment",
)  # fmt: skip


def _rollout(at: str, raw: Mapping[str, Any], context: Mapping[str, Any]) -> Rollout:
    only(at, raw, ROLLOUT_KEYS)
    mode = choice(f"{at}.mode", raw.get("mode", "manual"), RolloutMode)

    # A command-line value replaces the committed one; the error names where it came from.
    def pick(key: str) -> tuple[str, Any]:
        if key in context:
            return key, context[key]
        return f"{at}.{key}", raw.get(key)

    version_key, version_raw = pick("model_version")
    if version_raw is None:
        raise ConfigError(f"{version_key} is not set: name a version under model_artifacts/")
    model_version = text(version_key, version_raw)
    if not _MODEL_VERSION.fullmatch(model_version):
        raise ConfigError(
            f"{version_key}={model_version!r} is not allowed: 'v' and a number, e.g. v2"
        )

    stable_key, stable_raw = pick("stable_version")
    stable = None if is_unset(stable_raw) else integer(stable_key, stable_raw, 1, None)

    weight_key, weight_raw = pick("canary_weight")
    weight = 0.0 if is_unset(weight_raw) else number(weight_key, weight_raw)
    if not 0 <= weight < 1:
        raise ConfigError(
            f"{weight_key}={weight_raw!r} is not allowed: a fraction in [0, 1) of traffic for the "
            "candidate (0.1 = 10 %); to give it all traffic, promote it (drop stable_version)"
        )
    if mode is RolloutMode.AUTOMATED:
        # CodeDeploy owns the weights in this mode; a committed weight would fight it.
        for key, value, is_set in (
            (stable_key, stable_raw, stable is not None),
            (weight_key, weight_raw, weight > 0),
        ):
            if is_set:
                raise ConfigError(
                    f"{key}={value!r} is not allowed with {at}.mode='automated': CodeDeploy "
                    "shifts traffic from the version the alias serves to the one the deploy "
                    f"publishes ({at}.deployment); set it to null (weight 0), or use "
                    "mode 'manual' to route by hand"
                )
    if weight > 0 and stable is None:
        raise ConfigError(
            f"{weight_key}={weight_raw!r} needs stable_version: a canary splits traffic between "
            "the candidate and an already published Lambda version (-c stable_version=N)"
        )

    stable_model_raw = raw.get("stable_model_version")
    stable_model = None
    if not is_unset(stable_model_raw):
        stable_model = text(f"{at}.stable_model_version", stable_model_raw)
        if not _MODEL_VERSION.fullmatch(stable_model):
            raise ConfigError(
                f"{at}.stable_model_version={stable_model!r} is not allowed: 'v' and a number, "
                "e.g. v1, or null"
            )
        if mode is RolloutMode.MANUAL and stable is None:
            raise ConfigError(
                f"{at}.stable_model_version={stable_model!r} names the model of the stable "
                f"version, but {stable_key} is not set: set both (a canary or a rollback) or "
                "neither (python -m tools.rollout promote clears both)"
            )

    deployment_raw = raw.get("deployment")
    traffic_shift = None
    if mode is RolloutMode.AUTOMATED:
        traffic_shift = (
            DEFAULT_TRAFFIC_SHIFT
            if is_unset(deployment_raw)
            else choice(f"{at}.deployment", deployment_raw, TrafficShift)
        )
    elif not is_unset(deployment_raw):
        raise ConfigError(
            f"{at}.deployment={deployment_raw!r} is not allowed with {at}.mode='manual': "
            "it selects how CodeDeploy shifts traffic in mode 'automated'; set it to null "
            "or set the mode to 'automated'"
        )
    return Rollout(
        mode=mode,
        model_version=model_version,
        stable_lambda_version=stable,
        canary_weight=weight,
        stable_model_version=stable_model,
        traffic_shift=traffic_shift,
    )

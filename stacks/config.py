"""Deployment configuration: CDK context in, frozen typed dataclasses out.

Context arrives from three places: ``cdk.json`` (JSON values), ``-c key=value`` on the
command line (always strings) and ``cdk.context.json``. Everything is parsed here, once;
constructs receive typed values and never read context. Every error names the key, the
value and what is allowed, because a synth error is the whole user interface.

Shape of the context (see the README's configuration reference)::

    env, model_version, stable_version, canary_weight     # command-line overrides
    environments: {<env>: {model_name, runtime, account, region,
                           function: {...}, provisioned_concurrency: {...},
                           warmer: {...}, endpoint: {...}, alarms: {...},
                           rollout: {mode, model_version, stable_version, canary_weight,
                                     stable_model_version, deployment}}}

The ``rollout`` block is the committed state of a release; the rollout command
(``python -m tools.rollout``) rewrites it in ``cdk.json``, and the four command-line keys
override it for one synth.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from training.artifacts import NAME_PATTERN, VERSION_PATTERN

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACTS_ROOT = REPO_ROOT / "model_artifacts"
DEFAULT_ENVIRONMENT = "dev"
ALIAS_NAME = "production"

# The public command-line interface; anything else at the top level is a typo.
OVERRIDE_KEYS = ("env", "model_version", "stable_version", "canary_weight")
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


_Choice = TypeVar("_Choice", bound=StrEnum)


class ConfigError(ValueError):
    """A context value the app cannot deploy; the message names key, value and what is allowed."""


class Architecture(StrEnum):
    ARM64 = "arm64"
    X86_64 = "x86_64"


class ModelRuntime(StrEnum):
    SKLEARN = "sklearn"
    COMPILED = "compiled"


class EndpointAuth(StrEnum):
    AWS_IAM = "AWS_IAM"
    NONE = "NONE"


class RolloutMode(StrEnum):
    # manual: the committed stable_version/canary_weight route the alias.
    # automated: each deploy that publishes a version hands the alias to CodeDeploy, which
    # shifts traffic by the configured TrafficShift and rolls back when an alarm fires.
    MANUAL = "manual"
    AUTOMATED = "automated"


class TrafficShift(StrEnum):
    """How CodeDeploy moves traffic in automated mode (LambdaDeploymentConfig)."""

    CANARY_10_5MIN = "canary10-5min"
    CANARY_10_15MIN = "canary10-15min"
    LINEAR_10_EVERY_1MIN = "linear10-every-1min"
    LINEAR_10_EVERY_3MIN = "linear10-every-3min"
    ALL_AT_ONCE = "all-at-once"


DEFAULT_TRAFFIC_SHIFT = TrafficShift.CANARY_10_5MIN


@dataclass(frozen=True)
class FunctionSettings:
    architecture: Architecture
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None
    log_retention_days: int
    tracing: bool
    max_batch_size: int
    metrics_namespace: str


@dataclass(frozen=True)
class AutoscalingSettings:
    max_total: int
    target_utilization: float


@dataclass(frozen=True)
class ProvisionedConcurrencySettings:
    total: int
    autoscaling: AutoscalingSettings | None


@dataclass(frozen=True)
class WarmerSettings:
    enabled: bool
    rate_minutes: int


@dataclass(frozen=True)
class AlarmSettings:
    email: str | None


@dataclass(frozen=True)
class ModelArtifact:
    """One model version as the function will load it, pinned by checksum."""

    model_name: str
    model_version: str
    runtime: ModelRuntime
    file: str
    sha256: str
    # The artifact's bytes: the function stops a download that exceeds them.
    size_bytes: int
    directory: Path
    # Every file the bucket needs for this version: all runtimes' artifacts + the manifest.
    upload_files: tuple[str, ...]
    # Names these exact bytes: see content_id(). A retrained version gets a new one.
    content_id: str

    @property
    def prefix(self) -> str:
        """Where this version's files go: content-addressed, so nothing is ever overwritten.

        A published Lambda version pins its artifact's key and SHA-256. Retraining a version
        (``--force``) changes the manifest, hence the content id and the key: the new bytes
        land next to the old ones, which older Lambda versions keep finding.
        """
        return f"models/{self.model_name}/{self.model_version}/{self.content_id}/"

    @property
    def key(self) -> str:
        return f"{self.prefix}{self.file}"

    @property
    def model_prefix(self) -> str:
        """Every version of this model: what the inference role may read."""
        return f"models/{self.model_name}/"


@dataclass(frozen=True)
class Rollout:
    mode: RolloutMode
    model_version: str
    stable_version: int | None
    canary_weight: float
    # The model the stable (manual) or previously published (automated) version runs: a
    # Lambda version number does not say, so the rollout command records it for labels,
    # graphs and alarms. None when unknown (e.g. a stable_version given with -c).
    stable_model_version: str | None = None
    # Automated mode only; None in manual mode.
    traffic_shift: TrafficShift | None = None

    @property
    def is_canary(self) -> bool:
        """Traffic is split between two published versions."""
        return self.stable_version is not None and self.canary_weight > 0


@dataclass(frozen=True)
class ProvisionedConcurrencyShare:
    """Provisioned concurrency per side of the alias; 0 means none on that version."""

    candidate: int
    stable: int
    candidate_max: int
    stable_max: int


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    account: str | None
    region: str | None
    model: ModelArtifact
    function: FunctionSettings
    provisioned_concurrency: ProvisionedConcurrencySettings
    warmer: WarmerSettings
    endpoint_auth: EndpointAuth
    alarms: AlarmSettings
    rollout: Rollout

    @property
    def pc_share(self) -> ProvisionedConcurrencyShare:
        return split_provisioned_concurrency(self.provisioned_concurrency, self.rollout)


def split_provisioned_concurrency(
    pc: ProvisionedConcurrencySettings, rollout: Rollout
) -> ProvisionedConcurrencyShare:
    """Share the total between candidate and stable in proportion to their traffic.

    Each side that takes traffic gets at least one, so neither side of a canary serves its
    first requests cold; ``load_config`` has already refused a total too small for that.
    """
    ceiling = pc.autoscaling.max_total if pc.autoscaling else pc.total
    if pc.total == 0:
        return ProvisionedConcurrencyShare(0, 0, 0, 0)
    if rollout.stable_version is None:
        return ProvisionedConcurrencyShare(pc.total, 0, ceiling, 0)
    if rollout.canary_weight == 0:
        return ProvisionedConcurrencyShare(0, pc.total, 0, ceiling)
    candidate = min(pc.total - 1, max(1, round(pc.total * rollout.canary_weight)))
    stable = pc.total - candidate
    candidate_max = max(candidate, math.ceil(ceiling * rollout.canary_weight))
    stable_max = max(stable, math.ceil(ceiling * (1 - rollout.canary_weight)))
    return ProvisionedConcurrencyShare(candidate, stable, candidate_max, stable_max)


# ---------------------------------------------------------------------------- parsing


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
    env_name = _text("env", context.get("env", DEFAULT_ENVIRONMENT))
    if env_name not in environments:
        raise ConfigError(
            f"env={env_name!r} is not a configured environment: use one of "
            f"{', '.join(sorted(environments))}"
        )
    raw = _mapping(f"environments.{env_name}", environments[env_name])
    _check_distinct_namespaces(environments)
    return _environment(env_name, raw, context, artifacts_root)


def _is_cdk_owned(key: str) -> bool:
    # Feature flags ("@aws-cdk/..."), CLI settings ("aws:cdk:...") and cached lookups
    # ("availability-zones:account=...") all contain ':' or start with '@'.
    return key.startswith("@") or ":" in key


_ENVIRONMENT_KEYS = (
    "account", "region", "model_name", "runtime", "function",
    "provisioned_concurrency", "warmer", "endpoint", "alarms", "rollout",
)  # fmt: skip
_FUNCTION_KEYS = (
    "architecture", "memory_mb", "timeout_seconds", "reserved_concurrency",
    "log_retention_days", "tracing", "max_batch_size", "metrics_namespace",
)  # fmt: skip


def _environment(
    name: str, raw: Mapping[str, Any], context: Mapping[str, Any], artifacts_root: Path
) -> EnvironmentConfig:
    at = f"environments.{name}"
    _only(at, raw, _ENVIRONMENT_KEYS)
    account = _optional_pattern(f"{at}.account", raw.get("account"), _ACCOUNT, "12 digits")
    region = _optional_pattern(f"{at}.region", raw.get("region"), _REGION, "e.g. eu-west-1")
    model_name = _text(f"{at}.model_name", raw.get("model_name", "churn"))
    if not _MODEL_NAME.match(model_name):
        raise ConfigError(
            f"{at}.model_name={model_name!r} is not allowed: lower-case letters, digits and "
            "'-', starting with a letter, at most 40 characters"
        )
    runtime = _choice(f"{at}.runtime", raw.get("runtime", "sklearn"), ModelRuntime)
    function = _function(
        f"{at}.function",
        _mapping(f"{at}.function", raw.get("function", {})),
        default_namespace=default_metrics_namespace(name),
    )
    pc = _provisioned_concurrency(
        f"{at}.provisioned_concurrency",
        _mapping(f"{at}.provisioned_concurrency", raw.get("provisioned_concurrency", {})),
    )
    rollout = _rollout(f"{at}.rollout", _mapping(f"{at}.rollout", raw.get("rollout", {})), context)
    warmer = _warmer(f"{at}.warmer", _mapping(f"{at}.warmer", raw.get("warmer", {})), pc)
    endpoint = _mapping(f"{at}.endpoint", raw.get("endpoint", {}))
    _only(f"{at}.endpoint", endpoint, ("auth",))
    auth = _choice(f"{at}.endpoint.auth", endpoint.get("auth", "AWS_IAM"), EndpointAuth)
    alarms = _mapping(f"{at}.alarms", raw.get("alarms", {}))
    _only(f"{at}.alarms", alarms, ("email",))
    email = _optional_pattern(f"{at}.alarms.email", alarms.get("email"), _EMAIL, "an address")
    _check_concurrency(at, function, pc, rollout)
    model = load_model_artifact(artifacts_root, model_name, rollout.model_version, runtime)
    return EnvironmentConfig(
        name=name,
        account=account,
        region=region,
        model=model,
        function=function,
        provisioned_concurrency=pc,
        warmer=warmer,
        endpoint_auth=auth,
        alarms=AlarmSettings(email=email),
        rollout=rollout,
    )


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
    _only(at, raw, _FUNCTION_KEYS)
    retention = _int(f"{at}.log_retention_days", raw.get("log_retention_days", 30), 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"{at}.log_retention_days={retention} is not allowed: CloudWatch Logs accepts "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    reserved = raw.get("reserved_concurrency")
    namespace = _text(f"{at}.metrics_namespace", raw.get("metrics_namespace", default_namespace))
    if not _NAMESPACE.match(namespace) or namespace.startswith("AWS/"):
        raise ConfigError(
            f"{at}.metrics_namespace={namespace!r} is not allowed: 1-255 letters, digits or "
            "'._/#:-', not starting with 'AWS/'"
        )
    return FunctionSettings(
        architecture=_choice(f"{at}.architecture", raw.get("architecture", "arm64"), Architecture),
        memory_mb=_int(f"{at}.memory_mb", raw.get("memory_mb", 1024), 128, 10240),
        timeout_seconds=_int(f"{at}.timeout_seconds", raw.get("timeout_seconds", 30), 1, 900),
        reserved_concurrency=(
            None if reserved is None else _int(f"{at}.reserved_concurrency", reserved, 1, None)
        ),
        log_retention_days=retention,
        tracing=_bool(f"{at}.tracing", raw.get("tracing", True)),
        max_batch_size=_int(
            f"{at}.max_batch_size", raw.get("max_batch_size", 1000), 1, MAX_BATCH_SIZE_LIMIT
        ),
        metrics_namespace=namespace,
    )


def _provisioned_concurrency(at: str, raw: Mapping[str, Any]) -> ProvisionedConcurrencySettings:
    _only(at, raw, ("total", "autoscaling"))
    total = _int(f"{at}.total", raw.get("total", 0), 0, None)
    scaling_raw = raw.get("autoscaling")
    if scaling_raw is None:
        return ProvisionedConcurrencySettings(total=total, autoscaling=None)
    scaling = _mapping(f"{at}.autoscaling", scaling_raw)
    _only(f"{at}.autoscaling", scaling, ("max_total", "target_utilization"))
    if total == 0:
        raise ConfigError(
            f"{at}.autoscaling={dict(scaling)!r} is not allowed with {at}.total=0: autoscaling "
            "scales provisioned concurrency, so set a total of at least 1 or autoscaling to null"
        )
    max_total = _int(f"{at}.autoscaling.max_total", scaling.get("max_total"), total, None)
    target = _float(f"{at}.autoscaling.target_utilization", scaling.get("target_utilization", 0.7))
    if not 0.1 <= target <= 0.9:
        raise ConfigError(
            f"{at}.autoscaling.target_utilization={target} is not allowed: use 0.1 to 0.9"
        )
    return ProvisionedConcurrencySettings(total, AutoscalingSettings(max_total, target))


def _warmer(at: str, raw: Mapping[str, Any], pc: ProvisionedConcurrencySettings) -> WarmerSettings:
    _only(at, raw, ("enabled", "rate_minutes"))
    enabled_raw = raw.get("enabled", "auto")
    # "auto": provisioned concurrency already keeps initialised environments, so pinging
    # them would only cost invocations; without it the pings are the only warm-up.
    enabled = (
        pc.total == 0 if enabled_raw == "auto" else _bool(f"{at}.enabled", enabled_raw, "auto")
    )
    rate = _int(f"{at}.rate_minutes", raw.get("rate_minutes", 5), 1, 60)
    return WarmerSettings(enabled=enabled, rate_minutes=rate)


ROLLOUT_KEYS = (
    "mode", "model_version", "stable_version", "canary_weight", "stable_model_version",
    "deployment",
)  # fmt: skip


def _rollout(at: str, raw: Mapping[str, Any], context: Mapping[str, Any]) -> Rollout:
    _only(at, raw, ROLLOUT_KEYS)
    mode = _choice(f"{at}.mode", raw.get("mode", "manual"), RolloutMode)

    # A command-line value replaces the committed one; the error names where it came from.
    def pick(key: str) -> tuple[str, Any]:
        if key in context:
            return key, context[key]
        return f"{at}.{key}", raw.get(key)

    version_key, version_raw = pick("model_version")
    if version_raw is None:
        raise ConfigError(f"{version_key} is not set: name a version under model_artifacts/")
    model_version = _text(version_key, version_raw)
    if not _MODEL_VERSION.match(model_version):
        raise ConfigError(
            f"{version_key}={model_version!r} is not allowed: 'v' and a number, e.g. v2"
        )

    stable_key, stable_raw = pick("stable_version")
    stable = None if _is_unset(stable_raw) else _int(stable_key, stable_raw, 1, None)

    weight_key, weight_raw = pick("canary_weight")
    weight = 0.0 if _is_unset(weight_raw) else _float(weight_key, weight_raw)
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
    if not _is_unset(stable_model_raw):
        stable_model = _text(f"{at}.stable_model_version", stable_model_raw)
        if not _MODEL_VERSION.match(stable_model):
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
            if _is_unset(deployment_raw)
            else _choice(f"{at}.deployment", deployment_raw, TrafficShift)
        )
    elif not _is_unset(deployment_raw):
        raise ConfigError(
            f"{at}.deployment={deployment_raw!r} is not allowed with {at}.mode='manual': "
            "it selects how CodeDeploy shifts traffic in mode 'automated'; set it to null "
            "or set the mode to 'automated'"
        )
    return Rollout(
        mode=mode,
        model_version=model_version,
        stable_version=stable,
        canary_weight=weight,
        stable_model_version=stable_model,
        traffic_shift=traffic_shift,
    )


def _check_concurrency(
    at: str, function: FunctionSettings, pc: ProvisionedConcurrencySettings, rollout: Rollout
) -> None:
    if rollout.is_canary and pc.total == 1:
        raise ConfigError(
            f"{at}.provisioned_concurrency.total=1 cannot keep both sides of a canary warm: "
            "each version that takes traffic gets at least 1, so use 0 or at least 2"
        )
    reserved = function.reserved_concurrency
    if reserved is None:
        return
    # Lambda refuses provisioned concurrency beyond the function's reserved concurrency,
    # summed over all versions: check what can be allocated at the same time.
    if pc.autoscaling is not None:
        ceiling_key, ceiling = (
            f"{at}.provisioned_concurrency.autoscaling.max_total",
            pc.autoscaling.max_total,
        )
    else:
        ceiling_key, ceiling = f"{at}.provisioned_concurrency.total", pc.total
    if rollout.mode is RolloutMode.AUTOMATED:
        # During a CodeDeploy shift the new version holds the full allocation while the old
        # one keeps its own (see AutomatedRollout).
        needed = 2 * ceiling
        why = (
            f"{at}.rollout.mode='automated': during a CodeDeploy shift the old and the new "
            f"version each hold up to {ceiling_key}={ceiling}, 2 x {ceiling} = {needed}"
        )
    else:
        # Autoscaling may take each side to its own rounded-up maximum; their sum can be
        # max_total + 1. Without it, the two shares add up to the total.
        share = split_provisioned_concurrency(pc, rollout)
        needed = (
            share.candidate_max + share.stable_max
            if pc.autoscaling is not None
            else share.candidate + share.stable
        )
        why = (
            f"{ceiling_key}={ceiling}"
            if pc.autoscaling is None or share.candidate_max == 0 or share.stable_max == 0
            else f"canary_weight={rollout.canary_weight:g} with {ceiling_key}={ceiling}: the "
            f"candidate may hold up to {share.candidate_max} and the stable version up to "
            f"{share.stable_max}, {share.candidate_max} + {share.stable_max} = {needed}"
        )
    if needed > reserved:
        raise ConfigError(
            f"{at}.function.reserved_concurrency={reserved} is below the provisioned "
            f"concurrency that can be allocated at once ({why}): allowed is at least "
            f"{needed}, or null (no reservation)"
        )


def load_model_artifact(
    artifacts_root: Path, model_name: str, model_version: str, runtime: ModelRuntime
) -> ModelArtifact:
    directory = artifacts_root / model_name / model_version
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        available = sorted(
            p.parent.name for p in (artifacts_root / model_name).glob("v*/manifest.json")
        )
        raise ConfigError(
            f"model_version={model_version!r} has no artifact: {manifest_path} does not exist; "
            f"available versions of {model_name!r}: {', '.join(available) or 'none'}"
        )
    manifest = json.loads(manifest_path.read_bytes())
    if (manifest.get("model_name"), manifest.get("model_version")) != (model_name, model_version):
        raise ConfigError(
            f"{manifest_path} describes {manifest.get('model_name')!r} "
            f"{manifest.get('model_version')!r}, not {model_name!r} {model_version!r}"
        )
    artifacts: Mapping[str, Any] = manifest.get("artifacts", {})
    if runtime.value not in artifacts:
        raise ConfigError(
            f"runtime={runtime.value!r} is not available for {model_name} {model_version}: its "
            f"manifest has artifacts for {', '.join(sorted(artifacts)) or 'no runtime'}; "
            "build the artifact or choose one of those runtimes"
        )
    artifact = artifacts[runtime.value]
    sha256 = str(artifact.get("sha256", ""))
    if not _SHA256.match(sha256):
        raise ConfigError(
            f"{manifest_path}: artifacts.{runtime.value}.sha256={sha256!r} is not a SHA-256"
        )
    files = sorted({str(a["file"]) for a in artifacts.values()})
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        raise ConfigError(
            f"{directory}: artifact file(s) {', '.join(missing)} listed in the manifest are missing"
        )
    _check_checksums(manifest_path, artifacts)
    return ModelArtifact(
        model_name=model_name,
        model_version=model_version,
        runtime=runtime,
        file=str(artifact["file"]),
        sha256=sha256,
        # Older manifests carry no size: the file's own, which _check_checksums just read.
        size_bytes=int(
            artifact.get("size_bytes") or (directory / str(artifact["file"])).stat().st_size
        ),
        directory=directory,
        upload_files=(*files, "manifest.json"),
        content_id=content_id(manifest),
    )


CONTENT_ID_LENGTH = 16


def content_id(manifest: Mapping[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of the manifest, in canonical JSON.

    The manifest lists every uploaded artifact's SHA-256 (``_check_checksums`` holds the
    files to it), so any changed byte of any artifact changes the id, and the same
    artifacts always give the same id. Canonical JSON (sorted keys, no whitespace) keeps
    the id independent of formatting and line endings, so every checkout synthesizes the
    same key.
    """
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:CONTENT_ID_LENGTH]


def _check_checksums(manifest_path: Path, artifacts: Mapping[str, Any]) -> None:
    """Every artifact file must hold the bytes its manifest names.

    The upload's key is derived from the manifest alone: an artifact changed without its
    manifest would overwrite the bytes that deployed versions pin, and the new version
    would answer 503 (checksum mismatch) at its first cold start. Refuse it at synth.
    """
    for runtime_name, entry in sorted(artifacts.items()):
        expected = str(entry.get("sha256", ""))
        path = manifest_path.parent / str(entry["file"])
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise ConfigError(
                f"{path}: SHA-256 {digest.hexdigest()} does not match "
                f"artifacts.{runtime_name}.sha256={expected!r} in {manifest_path}: the file "
                "changed without its manifest; restore it (git checkout) or retrain the "
                "version (python -m training.train --version <version> --force)"
            )


# ---------------------------------------------------------------------------- scalars


def _is_unset(value: Any) -> bool:
    # On the command line there is no null; "" or "none" clears a committed value.
    return value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "none", "null")
    )


def _only(at: str, raw: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{at}.{k}' for k in unknown)}: allowed under {at} are "
            f"{', '.join(allowed)}"
        )


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}={value!r} is not allowed: expected an object of settings")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}={value!r} is not allowed: expected a non-empty string")
    return value.strip()


def _int(key: str, value: Any, minimum: int, maximum: int | None) -> int:
    allowed = f"an integer from {minimum}" + (f" to {maximum}" if maximum is not None else " up")
    if isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        number = int(value)
    else:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")
    return number


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}={value!r} is not allowed: expected a number")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not allowed: expected a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}={value!r} is not allowed: expected a finite number")
    return number


def _bool(key: str, value: Any, *extra: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    allowed = ", ".join(("true", "false", *(repr(e) for e in extra)))
    raise ConfigError(f"{key}={value!r} is not allowed: use {allowed}")


def _choice(key: str, value: Any, enum: type[_Choice]) -> _Choice:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {allowed}") from None


def _optional_pattern(key: str, value: Any, pattern: re.Pattern[str], what: str) -> str | None:
    if _is_unset(value):
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(f"{key}={value!r} is not allowed: expected {what} or null")
    return value

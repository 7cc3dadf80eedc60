"""The deployment configuration's types: what ``stacks.config`` parses the context into.

Frozen, typed values; constructs take them (or their fields) as keyword arguments and
never read context themselves. cdk.json keys keep their public names (``stable_version``);
code names say what a value is (``stable_lambda_version``: a Lambda version number, next
to ``stable_model_version``: a model version such as v1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from serving.runtimes import ModelRuntime

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACTS_ROOT = REPO_ROOT / "model_artifacts"
DEFAULT_ENVIRONMENT = "dev"
ALIAS_NAME = "production"


@dataclass(frozen=True)
class AnswerMetric:
    """The handler's EMF metric summarizing a task's answers (inference/answers.py)."""

    name: str
    # What a dashboard widget and `rollout compare` call its average.
    title: str


ANSWER_METRIC = {
    "binary": AnswerMetric("PredictionProbability", "mean predicted probability"),
    "multiclass": AnswerMetric("PredictionConfidence", "mean top-class probability"),
    "regression": AnswerMetric("PredictionValue", "mean predicted value"),
}


class ConfigError(ValueError):
    """A context value the app cannot deploy; the message names key, value and what is allowed."""


class Architecture(StrEnum):
    ARM64 = "arm64"
    X86_64 = "x86_64"


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
    # Rows of one request that may ask for explanations (MAX_EXPLAIN_ROWS).
    max_explain_rows: int
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


# Names reserved for documentation and testing (RFC 2606, RFC 6761): mail to them is never
# delivered, so an alarm subscription on one reaches no one.
RESERVED_MAIL_DOMAINS = ("example.com", "example.net", "example.org", "example", "test",
                         "invalid", "localhost")  # fmt: skip


def is_reserved_address(email: str) -> bool:
    """Whether ``email``'s domain is (under) a reserved name: a placeholder, not a person."""
    domain = email.rsplit("@", 1)[-1].lower().rstrip(".")
    return any(domain == name or domain.endswith(f".{name}") for name in RESERVED_MAIL_DOMAINS)


@dataclass(frozen=True)
class AlarmSettings:
    """Where alarms notify and when they fire; per environment in cdk.json."""

    # The alarm topic's e-mail subscriber; a termination-protected environment needs one.
    email: str | None
    latency_p99_ms: int
    # The latency alarm fires when `latency_breaching_minutes` of the last
    # `latency_evaluation_minutes` one-minute periods are above the threshold.
    latency_evaluation_minutes: int
    latency_breaching_minutes: int
    # More than `errors_threshold` errors in `errors_period_minutes`.
    errors_threshold: int
    errors_period_minutes: int
    # More than `throttles_threshold` throttled invocations in a minute.
    throttles_threshold: int

    @property
    def email_is_placeholder(self) -> bool:
        """An address on a reserved domain: synth warns that the alarms reach no one."""
        return self.email is not None and is_reserved_address(self.email)


@dataclass(frozen=True)
class CaptureSettings:
    """Data capture: sampled prediction records delivered to the capture bucket.

    The records hold customer data (the features of each captured request).
    """

    enabled: bool
    # Share of requests captured, in [0, 1]; 0 writes nothing.
    sample_rate: float
    # Rows captured from one batch at most (spread evenly over the batch).
    max_rows_per_request: int
    # Captured objects expire after this many days.
    retention_days: int

    @property
    def effective_rate(self) -> float:
        return self.sample_rate if self.enabled else 0.0


@dataclass(frozen=True)
class EncryptionSettings:
    """Who holds the keys to captured customer data (cdk.json ``encryption``).

    Captured rows are written twice: as log lines to the inference function's log group
    (kept for ``function.log_retention_days``) and, by the delivery stream, as objects to
    the capture bucket (kept for ``capture.retention_days``).
    """

    # True: customer-managed KMS keys (rotated, retained) encrypt the capture bucket, each
    # inference log group and the delivery stream; False: S3-managed keys for the bucket,
    # AWS-owned keys for the log group and the stream.
    customer_managed_key: bool = False


@dataclass(frozen=True)
class DriftSettings:
    """The scheduled drift monitor: PSI of captured traffic against the training reference."""

    schedule_minutes: int
    window_minutes: int
    psi_watch: float
    psi_alarm: float
    # Distinct requests a window needs for a verdict (serving.drift.MIN_REQUESTS_FLOOR up).
    min_requests: int


# Step Functions' limit on a state's input or output, which bounds one batch of rows and
# the answer the function returns for it (Step Functions quotas, "Maximum input or output
# size for a task, state, or execution": 256 KiB).
STATE_PAYLOAD_LIMIT_BYTES = 256 * 1024
# What one scored row adds to a batch's answer at most, with its key or position, for a
# binary, regression or few-class model ({"position":12345678,"prediction":0,
# "probability":0.12345678901234567} is 67 bytes), and the answer's envelope (the
# invocation's metadata that the task state receives with the payload).
ANSWER_ROW_BYTES = 128
ANSWER_ENVELOPE_BYTES = 4096
MAX_ROWS_PER_INVOCATION = (STATE_PAYLOAD_LIMIT_BYTES - ANSWER_ENVELOPE_BYTES) // ANSWER_ROW_BYTES
# Each batch runs in an Express child workflow, which Step Functions ends after 5 minutes.
EXPRESS_CHILD_LIMIT_SECONDS = 300


@dataclass(frozen=True)
class BatchScoringSettings:
    """The batch-scoring state machine (a Distributed Map over a table in S3), opt-in."""

    enabled: bool = False
    # Child workflows (batches) that run at once: Distributed Map allows up to 10,000.
    max_concurrency: int = 100
    # Rows per invocation of the function (the ItemBatcher's MaxItemsPerBatch).
    rows_per_invocation: int = 500
    # Share of rows (items) that may fail before the run fails, 0 to 100.
    tolerated_failure_percentage: int = 0
    # The buckets runs may read their input from and write their results to: the state
    # machine's role may read and write nothing else.
    input_buckets: tuple[str, ...] = ()
    output_buckets: tuple[str, ...] = ()


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
    # The golden set (golden.json) the traffic gate replays, when the version has one.
    golden_file: str | None = None
    golden_sha256: str | None = None
    # The manifest's task (binary, multiclass, regression): what the answers carry.
    task: str = "binary"

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
    # cdk.json "stable_version": the Lambda version number the alias keeps as stable.
    stable_lambda_version: int | None
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
        return self.stable_lambda_version is not None and self.canary_weight > 0


@dataclass(frozen=True)
class ProvisionedConcurrencyShare:
    """Provisioned concurrency per side of the alias; 0 means none on that version."""

    candidate: int
    stable: int
    candidate_max: int
    stable_max: int


@dataclass(frozen=True)
class QualityGateSettings:
    """How much worse than the stable model a candidate may score on its golden set.

    Compared on the same rows (each model's golden set); each bound is the largest change
    allowed in the worse direction. The defaults sit above the noise of 1,000 rows (the
    standard error of a ROC AUC near 0.8 is about 0.015 there): two honest retrains of
    the same model pass both ways, a model that learned nothing fails by far.
    """

    max_log_loss_increase: float = 0.03
    max_auc_decrease: float = 0.02
    max_brier_increase: float = 0.01
    # Regression models: how much higher the candidate's RMSE may be, as a fraction of the
    # stable model's (RMSE is in the target's unit, so the bound is relative).
    max_rmse_increase_fraction: float = 0.02
    # A golden set without labels (a model packaged without labelled data) lets the gate
    # check identity only: refused unless this acknowledges that quality goes unchecked.
    allow_unlabelled_golden: bool = False


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    account: str | None
    region: str | None
    model: ModelArtifact
    function: FunctionSettings
    provisioned_concurrency: ProvisionedConcurrencySettings
    # Provisioned concurrency per side of the alias after this deploy (stacks.capacity).
    pc_share: ProvisionedConcurrencyShare
    warmer: WarmerSettings
    endpoint_auth: EndpointAuth
    alarms: AlarmSettings
    capture: CaptureSettings
    # None: no monitor (it needs capture, and can be switched off on its own).
    drift: DriftSettings | None
    rollout: Rollout
    # CloudFormation refuses to delete a protected stack (both of the environment's stacks).
    termination_protection: bool
    quality_gate: QualityGateSettings = QualityGateSettings()
    # The environment's (not per model): the capture bucket is shared.
    encryption: EncryptionSettings = EncryptionSettings()
    batch_scoring: BatchScoringSettings = BatchScoringSettings()
    # The stable side's model version (rollout.stable_model_version), when its artifact is
    # here: the traffic gate also scores both versions on its golden set.
    stable_model: ModelArtifact | None = None
    # The environment's further models (cdk.json "models"), each a whole configuration of
    # its own: function, alias, capacity, warmer, alarms, dashboard, rollout.
    additional_models: tuple[EnvironmentConfig, ...] = ()
    # False for a model of "models": its stack and rollout block are named after it.
    first_model: bool = True

    @property
    def models(self) -> tuple[EnvironmentConfig, ...]:
        """Every model this environment deploys, its first (``model_name``) first."""
        return (self, *self.additional_models)

    def model_named(self, name: str | None) -> EnvironmentConfig:
        """The configuration of model ``name`` (None: the environment's first model)."""
        if name is None:
            return self
        for config in self.models:
            if config.model.model_name == name:
                return config
        raise ConfigError(
            f"model {name!r} is not a model of environment {self.name} (it has: "
            f"{', '.join(m.model.model_name for m in self.models)})"
        )


STACK_PREFIX = "sklearn-serving"


def inference_stack_name(environment: str, model_name: str | None = None) -> str:
    """``model_name`` None: the environment's first model's stack."""
    base = f"{STACK_PREFIX}-{environment}-inference"
    return base if model_name is None else f"{base}-{model_name}"


def stack_name_of(config: EnvironmentConfig) -> str:
    """The inference stack of one model's configuration."""
    return inference_stack_name(
        config.name, None if config.first_model else config.model.model_name
    )

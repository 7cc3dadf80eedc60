"""Traffic gate: a new Lambda version answers the golden set before it takes any traffic.

The candidate version is invoked by its qualified ARN (the real image, runtime and
artifact) with the golden rows of its model version, in batches, and passes when:

* identity: every probability is within ``IDENTITY_BOUND`` of the one recorded in
  ``golden.json`` for the deployed runtime and every label is the recorded one: the version
  runs the artifact that was tested;
* quality: its log loss, ROC AUC and Brier score are no worse than the stable version's
  beyond the environment's tolerances, both scored on the same rows: the candidate's
  golden set and the stable model's (both versions are invoked on both). The share of
  rows whose label flips between the two is reported. The stable model's golden set is
  what catches a candidate trained on bad labels: its own golden set carries the same
  bad labels, on which every model looks alike.

A refusal names the metric, the value and the tolerance. Two ways in, one check:

* CloudFormation custom resource (manual rollouts; ordered after the version is published
  and before the alias moves). Properties: ``FunctionArn`` (the candidate, qualified),
  ``StableFunctionArn`` (qualified; optional: without it only identity is checked),
  ``GoldenBucket``, ``GoldenKey``, ``GoldenSha256`` (the candidate model's golden.json),
  ``StableGoldenKey``, ``StableGoldenSha256`` (the stable model's; optional, same bucket),
  ``Runtime``, ``MaxLogLossIncrease``,
  ``MaxAucDecrease``, ``MaxBrierIncrease``, optional ``BatchSize``. FAILED fails the deploy
  before the alias update; Delete always succeeds.
* CodeDeploy ``BeforeAllowTraffic`` hook (automated rollouts). The versions come from the
  deployment's AppSpec (``TargetVersion`` is the candidate, ``CurrentVersion`` the stable);
  the rest from the environment: ``GOLDEN_BUCKET``, ``GOLDEN_KEY``, ``GOLDEN_SHA256``,
  ``STABLE_GOLDEN_KEY``, ``STABLE_GOLDEN_SHA256`` (optional), ``MODEL_RUNTIME``,
  ``MAX_LOG_LOSS_INCREASE``, ``MAX_AUC_DECREASE``, ``MAX_BRIER_INCREASE``, optional
  ``BATCH_SIZE``. It reports with
  ``PutLifecycleEventHookExecutionStatus``; Failed stops the shift before any traffic moves.

The checks are plain functions of lists (``evaluate``): ``python -m tools.rollout start``
runs the same ones offline against the local artifacts. Only the standard library and the
boto3 that the Lambda Python runtime ships are used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IDENTITY_BOUND = 1e-9
DEFAULT_BATCH_SIZE = 200
LOG_LOSS_EPS = 1e-15
GOLDEN_FORMAT = "golden-set/1"
# The reason CloudFormation shows is cut at a few thousand characters; keep it readable.
REASON_MAX_CHARS = 1000


class GateError(Exception):
    """The gate could not run (bad golden set, failed invocation); the message says why."""


# ---------------------------------------------------------------------------- metrics


def log_loss(y: Sequence[int], p: Sequence[float]) -> float:
    total = 0.0
    for label, probability in zip(y, p, strict=True):
        q = min(max(probability, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS)
        total -= math.log(q) if label == 1 else math.log(1 - q)
    return total / len(y)


def brier(y: Sequence[int], p: Sequence[float]) -> float:
    return sum((probability - label) ** 2 for label, probability in zip(y, p, strict=True)) / len(y)


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """Mann-Whitney with average ranks for ties; NaN when only one class is present."""
    positives = sum(1 for label in y if label == 1)
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = sorted(range(len(p)), key=lambda i: p[i])
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and p[order[end + 1]] == p[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1
        rank_sum += average_rank * sum(1 for i in order[start : end + 1] if y[i] == 1)
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def quality(y: Sequence[int], p: Sequence[float]) -> dict[str, float]:
    return {"log_loss": log_loss(y, p), "roc_auc": roc_auc(y, p), "brier_score": brier(y, p)}


# ---------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Tolerances:
    max_log_loss_increase: float
    max_auc_decrease: float
    max_brier_increase: float

    @classmethod
    def parse(cls, raw: Mapping[str, Any], names: Mapping[str, str]) -> Tolerances:
        """From properties or the environment: ``names`` maps each field to its key there."""
        values = {}
        for attribute, key in names.items():
            text = raw.get(key)
            try:
                value = float(text)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise GateError(f"{key}={text!r} is not a number") from None
            if not (math.isfinite(value) and value >= 0):
                raise GateError(f"{key}={text!r} is not allowed: a finite number >= 0")
            values[attribute] = value
        return cls(**values)


@dataclass(frozen=True)
class Answers:
    probabilities: list[float]
    labels: list[int]


@dataclass(frozen=True)
class Scored:
    """One golden set's rows, answered by both sides."""

    name: str  # "the candidate's golden set", "the stable model's golden set"
    labels: list[int] | None  # None: packaged without labels, only the flip rate is known
    candidate: Answers
    stable: Answers


@dataclass(frozen=True)
class Comparison:
    name: str
    rows: int
    label_flip_rate: float
    candidate: dict[str, float] | None
    stable: dict[str, float] | None


@dataclass
class Verdict:
    rows: int
    max_abs_diff: float
    label_mismatches: int
    comparisons: list[Comparison] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.refusals

    def lines(self) -> list[str]:
        lines = [
            f"identity on {self.rows} golden rows: max |dp| {self.max_abs_diff:.3g} "
            f"(bound {IDENTITY_BOUND:g}), {self.label_mismatches} labels differ"
        ]
        for comparison in self.comparisons:
            lines.append(f"on {comparison.name} ({comparison.rows} rows):")
            if comparison.candidate is not None and comparison.stable is not None:
                for metric in ("log_loss", "roc_auc", "brier_score"):
                    lines.append(
                        f"  {metric}: candidate {comparison.candidate[metric]:.6f}, "
                        f"stable {comparison.stable[metric]:.6f}"
                    )
            lines.append(
                f"  label flip rate against the stable model: {comparison.label_flip_rate:.2%}"
            )
        lines += [f"refused: {reason}" for reason in self.refusals]
        return lines

    def reason(self) -> str:
        text = "; ".join(self.refusals) if self.refusals else "; ".join(self.lines())
        return text[:REASON_MAX_CHARS]


_CHANGES = (
    ("log loss", "log_loss", 1, "max_log_loss_increase"),
    ("ROC AUC", "roc_auc", -1, "max_auc_decrease"),
    ("Brier score", "brier_score", 1, "max_brier_increase"),
)


def evaluate(
    golden: Mapping[str, Any],
    runtime: str,
    candidate: Answers,
    scored: Sequence[Scored],
    tolerances: Tolerances,
) -> Verdict:
    """Identity of ``candidate`` (the answers on ``golden``'s rows) against the answers
    recorded for ``runtime``; quality of the candidate against the stable side on each of
    ``scored``. The stable model's golden set belongs there: the candidate's own labels
    come from the same pipeline as the candidate, and cannot vouch for it alone."""
    recorded = recorded_answers(golden, runtime)
    rows = len(recorded.probabilities)
    if len(candidate.probabilities) != rows or len(candidate.labels) != rows:
        raise GateError(f"the candidate answered {len(candidate.probabilities)} of {rows} rows")
    differences = [
        abs(a - b) for a, b in zip(candidate.probabilities, recorded.probabilities, strict=True)
    ]
    mismatches = sum(a != b for a, b in zip(candidate.labels, recorded.labels, strict=True))
    verdict = Verdict(rows, max(differences), mismatches)
    if verdict.max_abs_diff > IDENTITY_BOUND or mismatches:
        verdict.refusals.append(
            f"identity: max |dp| {verdict.max_abs_diff:.3g} against golden.json's {runtime} "
            f"answers (tolerance {IDENTITY_BOUND:g}), {mismatches} of {rows} labels differ: "
            "the version does not run the artifact that was tested"
        )
    for rows_scored in scored:
        verdict.comparisons.append(_compare(rows_scored, tolerances, verdict.refusals))
    return verdict


def _compare(scored: Scored, tolerances: Tolerances, refusals: list[str]) -> Comparison:
    rows = len(scored.candidate.labels)
    if len(scored.stable.labels) != rows or (
        scored.labels is not None and len(scored.labels) != rows
    ):
        raise GateError(f"{scored.name}: the two sides answered different numbers of rows")
    flips = sum(a != b for a, b in zip(scored.candidate.labels, scored.stable.labels, strict=True))
    if scored.labels is None:
        return Comparison(scored.name, rows, flips / rows, None, None)
    candidate = quality(scored.labels, scored.candidate.probabilities)
    stable = quality(scored.labels, scored.stable.probabilities)
    for title, metric, worse, key in _CHANGES:
        tolerance = getattr(tolerances, key)
        value, reference = candidate[metric], stable[metric]
        change = (value - reference) * worse
        if math.isnan(change) or change > tolerance:
            direction = "up" if worse > 0 else "down"
            refusals.append(
                f"quality: {title} {value:.6f} against the stable model's {reference:.6f} "
                f"on {scored.name} ({rows} rows), {direction} by {change:.6f} (tolerance "
                f"{key}={tolerance:g})"
            )
    return Comparison(scored.name, rows, flips / rows, candidate, stable)


def recorded_answers(golden: Mapping[str, Any], runtime: str) -> Answers:
    if golden.get("format") != GOLDEN_FORMAT:
        raise GateError(f"golden set format is {golden.get('format')!r}, expected {GOLDEN_FORMAT}")
    predictions = golden.get("predictions", {})
    if runtime not in predictions:
        raise GateError(
            f"the golden set records no answers for runtime {runtime!r}: it has "
            f"{', '.join(sorted(predictions)) or 'none'}"
        )
    entry = predictions[runtime]
    return Answers([float(p) for p in entry["probabilities"]], [int(v) for v in entry["labels"]])


def instances(golden: Mapping[str, Any]) -> list[dict[str, float | int]]:
    """The golden rows as request instances, integers kept as integers."""
    names = golden["feature_names"]
    return [
        {
            name: int(value) if float(value).is_integer() else float(value)
            for name, value in zip(names, row, strict=True)
        }
        for row in golden["features"]
    ]


# ---------------------------------------------------------------------------- AWS calls


def read_golden(s3: Any, bucket: str, key: str, sha256: str) -> dict[str, Any]:
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise GateError(
            f"s3://{bucket}/{key} has SHA-256 {digest}, the manifest pins {sha256}: "
            "the golden set changed after packaging"
        )
    golden: dict[str, Any] = json.loads(data)
    return golden


def invoke(
    lambda_client: Any, function: str, rows: Sequence[Mapping[str, Any]], batch_size: int
) -> Answers:
    """Every row through ``function`` (a qualified ARN), ``batch_size`` rows per request."""
    answers = Answers([], [])
    for start in range(0, len(rows), batch_size):
        batch = list(rows[start : start + batch_size])
        response = lambda_client.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps({"instances": batch}).encode(),
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise GateError(
                f"{function} failed on rows {start}-{start + len(batch) - 1}: "
                f"{response['FunctionError']}: {payload[:300]!r}"
            )
        body = json.loads(payload)
        predictions = body.get("predictions") if isinstance(body, dict) else None
        if body.get("statusCode") != 200 or not isinstance(predictions, list):
            raise GateError(
                f"{function} answered status {body.get('statusCode')!r} on rows "
                f"{start}-{start + len(batch) - 1}: {json.dumps(body)[:300]}"
            )
        if len(predictions) != len(batch):
            raise GateError(f"{function} answered {len(predictions)} of {len(batch)} rows")
        answers.probabilities.extend(float(p["probability"]) for p in predictions)
        answers.labels.extend(int(p["prediction"]) for p in predictions)
    return answers


@dataclass(frozen=True)
class GoldenObject:
    bucket: str
    key: str
    sha256: str


@dataclass(frozen=True)
class GateSettings:
    candidate_function: str
    stable_function: str | None
    golden: GoldenObject
    # The stable model's golden set: quality is also judged on labels the candidate's
    # pipeline did not produce.
    stable_golden: GoldenObject | None
    runtime: str
    tolerances: Tolerances
    batch_size: int = DEFAULT_BATCH_SIZE


CANDIDATE_ROWS = "the candidate's golden set"
STABLE_ROWS = "the stable model's golden set"


def run_gate(settings: GateSettings, *, lambda_client: Any, s3: Any) -> Verdict:
    def read(where: GoldenObject) -> dict[str, Any]:
        return read_golden(s3, where.bucket, where.key, where.sha256)

    def ask(function: str, rows: Sequence[Mapping[str, Any]]) -> Answers:
        return invoke(lambda_client, function, rows, settings.batch_size)

    golden = read(settings.golden)
    rows = instances(golden)
    candidate = ask(settings.candidate_function, rows)
    scored = []
    if settings.stable_function:
        stable = settings.stable_function
        scored.append(Scored(CANDIDATE_ROWS, golden.get("labels"), candidate, ask(stable, rows)))
        if settings.stable_golden is not None:
            other = read(settings.stable_golden)
            other_rows = instances(other)
            scored.append(
                Scored(
                    STABLE_ROWS,
                    other.get("labels"),
                    ask(settings.candidate_function, other_rows),
                    ask(stable, other_rows),
                )
            )
    return evaluate(golden, settings.runtime, candidate, scored, settings.tolerances)


# ---------------------------------------------------------------------------- custom resource

_PROPERTY_TOLERANCES = {
    "max_log_loss_increase": "MaxLogLossIncrease",
    "max_auc_decrease": "MaxAucDecrease",
    "max_brier_increase": "MaxBrierIncrease",
}
_ENV_TOLERANCES = {
    "max_log_loss_increase": "MAX_LOG_LOSS_INCREASE",
    "max_auc_decrease": "MAX_AUC_DECREASE",
    "max_brier_increase": "MAX_BRIER_INCREASE",
}


def _required(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise GateError(f"{key} is missing")
    return value


def _batch_size(text: Any) -> int:
    if text is None:
        return DEFAULT_BATCH_SIZE
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise GateError(f"batch size {text!r} is not an integer") from None
    if value < 1:
        raise GateError(f"batch size {value} is not allowed: at least 1")
    return value


def _stable_golden(
    raw: Mapping[str, Any], bucket: str, key: str, sha256: str
) -> GoldenObject | None:
    if not raw.get(key):
        return None
    return GoldenObject(_required(raw, bucket), _required(raw, key), _required(raw, sha256))


def settings_from_properties(properties: Mapping[str, Any]) -> GateSettings:
    return GateSettings(
        candidate_function=_required(properties, "FunctionArn"),
        stable_function=properties.get("StableFunctionArn") or None,
        golden=GoldenObject(
            _required(properties, "GoldenBucket"),
            _required(properties, "GoldenKey"),
            _required(properties, "GoldenSha256"),
        ),
        stable_golden=_stable_golden(
            properties, "GoldenBucket", "StableGoldenKey", "StableGoldenSha256"
        ),
        runtime=_required(properties, "Runtime"),
        tolerances=Tolerances.parse(properties, _PROPERTY_TOLERANCES),
        batch_size=_batch_size(properties.get("BatchSize")),
    )


def on_custom_resource(
    event: Mapping[str, Any], *, lambda_client: Any, s3: Any
) -> tuple[str, str, str]:
    """(status, reason, physical id) for a CloudFormation request."""
    properties = event.get("ResourceProperties", {})
    physical_id = str(properties.get("FunctionArn", "traffic-gate"))
    if event.get("RequestType") == "Delete":
        return "SUCCESS", "nothing to undo", event.get("PhysicalResourceId", physical_id)
    try:
        verdict = run_gate(settings_from_properties(properties), lambda_client=lambda_client, s3=s3)
    except GateError as error:
        return "FAILED", f"traffic gate could not run: {error}"[:REASON_MAX_CHARS], physical_id
    for line in verdict.lines():
        print(line)
    status = "SUCCESS" if verdict.passed else "FAILED"
    return status, verdict.reason(), physical_id


def respond(event: Mapping[str, Any], status: str, reason: str, physical_id: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the pre-signed https URL CloudFormation gave
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


# ---------------------------------------------------------------------------- CodeDeploy hook


def appspec_versions(deployment: Mapping[str, Any]) -> tuple[str, str, str]:
    """(function name, current version, target version) from a Lambda deployment."""
    revision = deployment["deploymentInfo"]["revision"]
    content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
    if not content:
        raise GateError("the deployment has no AppSpec content")
    spec = json.loads(content)
    for resource in spec.get("Resources", []):
        for value in resource.values():
            props = value.get("Properties", {})
            if value.get("Type") == "AWS::Lambda::Function" and props.get("TargetVersion"):
                return str(props["Name"]), str(props["CurrentVersion"]), str(props["TargetVersion"])
    raise GateError("the deployment's AppSpec names no Lambda function with a TargetVersion")


def qualified(function: str, version: str) -> str:
    return f"{function}:{version}"


def on_hook(
    event: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    lambda_client: Any,
    s3: Any,
    codedeploy: Any,
) -> str:
    """Check the deployment's target version and report; returns the status sent."""
    deployment_id = event["DeploymentId"]
    status = "Failed"
    try:
        deployment = codedeploy.get_deployment(deploymentId=deployment_id)
        function, current, target = appspec_versions(deployment)
        settings = GateSettings(
            candidate_function=qualified(function, target),
            stable_function=qualified(function, current) if current != target else None,
            golden=GoldenObject(
                _required(env, "GOLDEN_BUCKET"),
                _required(env, "GOLDEN_KEY"),
                _required(env, "GOLDEN_SHA256"),
            ),
            stable_golden=_stable_golden(
                env, "GOLDEN_BUCKET", "STABLE_GOLDEN_KEY", "STABLE_GOLDEN_SHA256"
            ),
            runtime=_required(env, "MODEL_RUNTIME"),
            tolerances=Tolerances.parse(env, _ENV_TOLERANCES),
            batch_size=_batch_size(env.get("BATCH_SIZE")),
        )
        verdict = run_gate(settings, lambda_client=lambda_client, s3=s3)
        for line in verdict.lines():
            print(line)
        status = "Succeeded" if verdict.passed else "Failed"
    except Exception as error:  # any failure must reach CodeDeploy, or the shift waits for it
        print(f"traffic gate could not run: {type(error).__name__}: {error}")
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id,
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return status


def handler(event: Mapping[str, Any], context: Any) -> None:
    import boto3  # the runtime's boto3; imported here so tests of the logic need none

    lambda_client, s3 = boto3.client("lambda"), boto3.client("s3")
    if "LifecycleEventHookExecutionId" in event:
        on_hook(
            event,
            os.environ,
            lambda_client=lambda_client,
            s3=s3,
            codedeploy=boto3.client("codedeploy"),
        )
        return
    try:
        status, reason, physical_id = on_custom_resource(event, lambda_client=lambda_client, s3=s3)
    except Exception as error:  # every failure must reach CloudFormation, or it waits an hour
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:REASON_MAX_CHARS]
        physical_id = str(event.get("ResourceProperties", {}).get("FunctionArn", "traffic-gate"))
        print(reason)
    respond(event, status, reason, physical_id)

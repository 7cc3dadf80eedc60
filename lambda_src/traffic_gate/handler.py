"""Traffic gate: a new Lambda version answers the golden set before it takes any traffic.

The candidate version is invoked by its qualified ARN (the real image, runtime and
artifact) with the golden rows of its model version, in batches, and passes when:

* identity: every answer is within ``IDENTITY_BOUND`` of the one recorded in
  ``golden.json`` for the deployed runtime (binary: the probability; multiclass: every
  cell of the probability row; regression: the value) and every label is the recorded
  one: the version runs the artifact that was tested;
* quality: no worse than the stable version's beyond the environment's tolerances, both
  scored on the same rows: the candidate's golden set and the stable model's (both
  versions are invoked on both). Binary: log loss, ROC AUC and Brier score; multiclass:
  log loss and one-vs-rest ROC AUC; regression: RMSE, relative to the stable model's.
  The share of rows whose label flips between the two is reported. The stable model's
  golden set is what catches a candidate trained on bad labels: its own golden set
  carries the same bad labels, on which every model looks alike. Models of different
  tasks or classes are not compared: the gate refuses and says so.

A refusal names the metric, the value and the tolerance. Two ways in, one check:

* CloudFormation custom resource (manual rollouts; ordered after the version is published
  and before the alias moves). Properties: ``FunctionArn`` (the candidate, qualified),
  ``StableFunctionArn`` (qualified; optional: without it only identity is checked),
  ``GoldenBucket``, ``GoldenKey``, ``GoldenSha256`` (the candidate model's golden.json),
  ``StableGoldenKey``, ``StableGoldenSha256`` (the stable model's; optional, same bucket),
  ``Runtime``, ``MaxLogLossIncrease``,
  ``MaxAucDecrease``, ``MaxBrierIncrease``, optional ``MaxRmseIncreaseFraction`` and
  ``BatchSize``; ``CandidateWeight`` (the candidate's share of traffic after this deploy),
  ``FunctionName`` (unqualified) and ``AliasName``. FAILED fails the deploy before the
  alias update; Delete always succeeds. The check runs only when the candidate's traffic
  grows (``not_needed``): SUCCESS at once, with the reason, for ``CandidateWeight`` 0 (a
  roll back; no AWS call) and when ``GetAlias`` shows the alias already routes the
  candidate (a ramp, a promote, an update-rollback). Properties without
  ``CandidateWeight`` (an earlier release's template) are always checked.
* CodeDeploy ``BeforeAllowTraffic`` hook (automated rollouts). The versions come from the
  deployment's AppSpec (``TargetVersion`` is the candidate, ``CurrentVersion`` the stable):
  ``GetDeployment``'s revision, or ``GetApplicationRevision``'s when GetDeployment's answer
  leaves the content out (the API does not promise it);
  the rest from the environment: ``GOLDEN_BUCKET``, ``GOLDEN_KEY``, ``GOLDEN_SHA256``,
  ``STABLE_GOLDEN_KEY``, ``STABLE_GOLDEN_SHA256`` (optional), ``MODEL_RUNTIME``,
  ``MAX_LOG_LOSS_INCREASE``, ``MAX_AUC_DECREASE``, ``MAX_BRIER_INCREASE``, optional
  ``MAX_RMSE_INCREASE_FRACTION`` and ``BATCH_SIZE``. It reports with
  ``PutLifecycleEventHookExecutionStatus``; Failed stops the shift before any traffic moves.

**Deadline.** The function's timeout is 600 s. Before each invocation batch the gate
reads ``context.get_remaining_time_in_millis()``; with less than ``DEADLINE_MARGIN_MS``
(30 s) left it stops and answers FAILED (custom resource) or Failed (hook) with a message
naming the deadline, so the answer always arrives: past the timeout CloudFormation would
wait for the custom resource's own timeout and CodeDeploy a full hour for the hook.

The checks are plain functions of lists (``evaluate``): ``python -m tools.rollout start``
runs the same ones offline against the local artifacts. Only the standard library and the
boto3 that the Lambda Python runtime ships are used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custom_resource.response import REASON_MAX_CHARS, respond
from serving.tasks import TASKS

IDENTITY_BOUND = 1e-9
DEFAULT_BATCH_SIZE = 200
LOG_LOSS_EPS = 1e-15
GOLDEN_FORMAT = "golden-set/1"
# Time kept to send the answer (CloudFormation's response URL is given 30 s) before the
# function's own timeout: past it, CloudFormation waits for the custom resource's timeout
# and CodeDeploy an hour for the hook.
DEADLINE_MARGIN_MS = 30_000

# Golden sets written before tasks: binary over the classes 0 and 1.
DEFAULT_CLASSES = [0, 1]
# A golden set or stack without the regression tolerance (a stack synthesized before it
# existed) gets the configuration's default.
DEFAULT_MAX_RMSE_INCREASE_FRACTION = 0.02


class GateError(Exception):
    """The gate could not run (bad golden set, failed invocation); the message says why."""


class Deadline:
    """The gate's deadline: ``remaining_ms`` is the Lambda context's
    ``get_remaining_time_in_millis``; without it (offline, tests) there is none."""

    def __init__(
        self, remaining_ms: Callable[[], int] | None, margin_ms: int = DEADLINE_MARGIN_MS
    ) -> None:
        self.remaining_ms = remaining_ms
        self.margin_ms = margin_ms

    def check(self, before: str) -> None:
        """GateError when less than the margin is left before ``before`` starts."""
        if self.remaining_ms is None:
            return
        left = self.remaining_ms()
        if left < self.margin_ms:
            raise GateError(
                f"deadline: {left // 1000} s of the gate's time left before {before}, less "
                f"than the {self.margin_ms // 1000} s kept to send the answer"
            )


NO_DEADLINE = Deadline(None)


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


def multiclass_log_loss(y: Sequence[int], rows: Sequence[Sequence[float]]) -> float:
    """``y``: each row's class index."""
    total = 0.0
    for index, row in zip(y, rows, strict=True):
        total -= math.log(min(max(row[index], LOG_LOSS_EPS), 1 - LOG_LOSS_EPS))
    return total / len(y)


def roc_auc_ovr(y: Sequence[int], rows: Sequence[Sequence[float]]) -> float:
    """Macro one-vs-rest: the unweighted mean of each class's ROC AUC against the rest."""
    classes = len(rows[0])
    return (
        sum(roc_auc([int(i == k) for i in y], [row[k] for row in rows]) for k in range(classes))
        / classes
    )


def accuracy(y: Sequence[int], rows: Sequence[Sequence[float]]) -> float:
    # max() keeps the first of tied columns, as the handler's argmax does.
    picked = [max(range(len(row)), key=row.__getitem__) for row in rows]
    return sum(a == b for a, b in zip(y, picked, strict=True)) / len(y)


def rmse(y: Sequence[float], values: Sequence[float]) -> float:
    return math.sqrt(sum((v - t) ** 2 for t, v in zip(y, values, strict=True)) / len(y))


def mae(y: Sequence[float], values: Sequence[float]) -> float:
    return sum(abs(v - t) for t, v in zip(y, values, strict=True)) / len(y)


def r2(y: Sequence[float], values: Sequence[float]) -> float:
    mean = sum(y) / len(y)
    total = sum((t - mean) ** 2 for t in y)
    if total == 0:
        return math.nan
    return 1 - sum((t - v) ** 2 for t, v in zip(y, values, strict=True)) / total


@dataclass(frozen=True)
class Kind:
    """What a golden set's model is: its task and class labels (None for regression)."""

    task: str
    classes: tuple[Any, ...] | None

    def describe(self) -> str:
        if self.classes is None:
            return f"a {self.task} model"
        return f"a {self.task} model over the classes {json.dumps(list(self.classes))}"


def kind_of(golden: Mapping[str, Any]) -> Kind:
    task = golden.get("task", "binary")
    if task not in TASKS:
        raise GateError(f"golden set task {task!r} is not one of {', '.join(TASKS)}")
    if task == "regression":
        return Kind(task, None)
    classes = golden.get("classes", DEFAULT_CLASSES)
    if not isinstance(classes, list) or len(classes) < 2:
        raise GateError(f"golden set classes {classes!r} are not a list of class labels")
    return Kind(task, tuple(classes))


def same_kind(candidate: Kind, stable: Kind) -> None:
    """A model is compared only with a model of the same task and classes: its figures
    mean something else otherwise (and its answers have another shape)."""
    if candidate != stable:
        raise GateError(
            f"the candidate is {candidate.describe()} but the stable model is "
            f"{stable.describe()}: the gate compares models of one task and one set of "
            "classes; deploy the new model under its own name instead"
        )


def quality(
    y: Sequence[Any], outputs: Sequence[Any], kind: Kind = Kind("binary", (0, 1))
) -> dict[str, float]:
    """The gate's metrics for ``kind`` of ``outputs`` against labels (class labels or
    target values) ``y``."""
    if kind.classes is None:
        truth = [float(v) for v in y]
        return {"rmse": rmse(truth, outputs), "mae": mae(truth, outputs), "r2": r2(truth, outputs)}
    index = class_indices(y, kind.classes)
    if kind.task == "binary":
        return {
            "log_loss": log_loss(index, outputs),
            "roc_auc": roc_auc(index, outputs),
            "brier_score": brier(index, outputs),
        }
    return {
        "log_loss": multiclass_log_loss(index, outputs),
        "roc_auc_ovr": roc_auc_ovr(index, outputs),
        "accuracy": accuracy(index, outputs),
    }


def class_indices(y: Sequence[Any], classes: Sequence[Any]) -> list[int]:
    lookup = {_label_key(c): i for i, c in enumerate(classes)}
    try:
        return [lookup[_label_key(v)] for v in y]
    except KeyError as error:
        raise GateError(
            f"the golden set's label {error.args[0][1]!r} is not one of the classes "
            f"{json.dumps(list(classes))}"
        ) from None


def _label_key(value: Any) -> tuple[str, Any]:
    # The string "1" and the integer 1 are different labels.
    return ("str", value) if isinstance(value, str) else ("num", float(value))


# ---------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Tolerances:
    max_log_loss_increase: float
    max_auc_decrease: float
    max_brier_increase: float
    # Regression: how much higher the candidate's RMSE may be, as a fraction of the
    # stable model's (RMSE has the target's unit, so an absolute bound means nothing).
    max_rmse_increase_fraction: float = DEFAULT_MAX_RMSE_INCREASE_FRACTION

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], names: Mapping[str, str], optional: Sequence[str] = ()
    ) -> Tolerances:
        """From properties or the environment: ``names`` maps each field to its key there;
        the fields in ``optional`` keep their default when their key is absent."""
        values = {}
        for attribute, key in names.items():
            text = raw.get(key)
            if text is None and attribute in optional:
                continue
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
    """A side's answers on golden rows: ``outputs`` as the runtime's ``outputs`` (binary:
    P(classes[1]); multiclass: probability rows in class order; regression: values) and
    the labels it answered (None for regression)."""

    outputs: list[Any]
    labels: list[Any] | None

    @property
    def probabilities(self) -> list[Any]:
        # The binary name the first callers use.
        return self.outputs


@dataclass(frozen=True)
class Scored:
    """One golden set's rows, answered by both sides."""

    name: str  # "the candidate's golden set", "the stable model's golden set"
    labels: list[Any] | None  # None: packaged without labels, only the flip rate is known
    candidate: Answers
    stable: Answers


@dataclass(frozen=True)
class Comparison:
    name: str
    rows: int
    # Classifiers: share of rows whose label differs; regression: None.
    label_flip_rate: float | None
    candidate: dict[str, float] | None
    stable: dict[str, float] | None


@dataclass
class Verdict:
    rows: int
    max_abs_diff: float
    label_mismatches: int
    comparisons: list[Comparison] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    kind: Kind = Kind("binary", (0, 1))

    @property
    def passed(self) -> bool:
        return not self.refusals

    def lines(self) -> list[str]:
        lines = [f"identity on {self.rows} golden rows: {_identity(self)}"]
        for comparison in self.comparisons:
            lines.append(f"on {comparison.name} ({comparison.rows} rows):")
            if comparison.candidate is not None and comparison.stable is not None:
                for metric, value in comparison.candidate.items():
                    lines.append(
                        f"  {metric}: candidate {value:.6f}, stable {comparison.stable[metric]:.6f}"
                    )
            if comparison.label_flip_rate is not None:
                lines.append(
                    f"  label flip rate against the stable model: {comparison.label_flip_rate:.2%}"
                )
        lines += [f"refused: {reason}" for reason in self.refusals]
        return lines

    def reason(self) -> str:
        text = "; ".join(self.refusals) if self.refusals else "; ".join(self.lines())
        return text[:REASON_MAX_CHARS]


def _difference_name(kind: Kind) -> str:
    return "max |d value|" if kind.task == "regression" else "max |dp|"


def _identity(verdict: Verdict) -> str:
    text = f"{_difference_name(verdict.kind)} {verdict.max_abs_diff:.3g} (bound {IDENTITY_BOUND:g})"
    if verdict.kind.task == "regression":
        return text
    return f"{text}, {verdict.label_mismatches} labels differ"


# (title, metric, direction in which it is worse, tolerance) per task.
_CHANGES = {
    "binary": (
        ("log loss", "log_loss", 1, "max_log_loss_increase"),
        ("ROC AUC", "roc_auc", -1, "max_auc_decrease"),
        ("Brier score", "brier_score", 1, "max_brier_increase"),
    ),
    "multiclass": (
        ("log loss", "log_loss", 1, "max_log_loss_increase"),
        ("ROC AUC (one-vs-rest)", "roc_auc_ovr", -1, "max_auc_decrease"),
    ),
    "regression": (),  # RMSE: a relative bound, in _compare
}


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
    kind = kind_of(golden)
    recorded = recorded_answers(golden, runtime)
    rows = len(recorded.outputs)
    if len(candidate.outputs) != rows or (
        candidate.labels is not None and len(candidate.labels) != rows
    ):
        raise GateError(f"the candidate answered {len(candidate.outputs)} of {rows} rows")
    differences = [
        abs(a - b)
        for got, expected in zip(candidate.outputs, recorded.outputs, strict=True)
        for a, b in _cells(got, expected)
    ]
    mismatches = (
        0
        if recorded.labels is None or candidate.labels is None
        else sum(a != b for a, b in zip(candidate.labels, recorded.labels, strict=True))
    )
    verdict = Verdict(rows, max(differences), mismatches, kind=kind)
    if verdict.max_abs_diff > IDENTITY_BOUND or mismatches:
        labels = "" if kind.task == "regression" else f", {mismatches} of {rows} labels differ"
        verdict.refusals.append(
            f"identity: {_difference_name(kind)} {verdict.max_abs_diff:.3g} against "
            f"golden.json's {runtime} answers (tolerance {IDENTITY_BOUND:g}){labels}: "
            "the version does not run the artifact that was tested"
        )
    for rows_scored in scored:
        verdict.comparisons.append(_compare(rows_scored, kind, tolerances, verdict.refusals))
    return verdict


def _cells(got: Any, expected: Any) -> list[tuple[float, float]]:
    """Pairs to compare: one per row (binary, regression), one per cell (multiclass)."""
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            raise GateError(f"a probability row {got!r} does not match the recorded {expected!r}")
        return list(zip(got, expected, strict=True))
    return [(got, expected)]


def _compare(scored: Scored, kind: Kind, tolerances: Tolerances, refusals: list[str]) -> Comparison:
    rows = len(scored.candidate.outputs)
    if len(scored.stable.outputs) != rows or (
        scored.labels is not None and len(scored.labels) != rows
    ):
        raise GateError(f"{scored.name}: the two sides answered different numbers of rows")
    flip_rate = None
    if scored.candidate.labels is not None and scored.stable.labels is not None:
        pairs = zip(scored.candidate.labels, scored.stable.labels, strict=True)
        flip_rate = sum(a != b for a, b in pairs) / rows
    if scored.labels is None:
        return Comparison(scored.name, rows, flip_rate, None, None)
    candidate = quality(scored.labels, scored.candidate.outputs, kind)
    stable = quality(scored.labels, scored.stable.outputs, kind)
    for title, metric, worse, key in _CHANGES[kind.task]:
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
    if kind.task == "regression":
        value, reference = candidate["rmse"], stable["rmse"]
        fraction = tolerances.max_rmse_increase_fraction
        if value > reference * (1 + fraction):
            increase = (
                f"up by {(value - reference) / reference:.2%}" if reference > 0 else "up from 0"
            )
            refusals.append(
                f"quality: RMSE {value:.6g} against the stable model's {reference:.6g} on "
                f"{scored.name} ({rows} rows), {increase} (tolerance "
                f"max_rmse_increase_fraction={fraction:g})"
            )
    return Comparison(scored.name, rows, flip_rate, candidate, stable)


def recorded_answers(golden: Mapping[str, Any], runtime: str) -> Answers:
    if golden.get("format") != GOLDEN_FORMAT:
        raise GateError(f"golden set format is {golden.get('format')!r}, expected {GOLDEN_FORMAT}")
    kind = kind_of(golden)
    predictions = golden.get("predictions", {})
    if runtime not in predictions:
        raise GateError(
            f"the golden set records no answers for runtime {runtime!r}: it has "
            f"{', '.join(sorted(predictions)) or 'none'}"
        )
    entry = predictions[runtime]
    if kind.task == "regression":
        return Answers([float(v) for v in entry["values"]], None)
    if kind.task == "multiclass":
        return Answers([[float(p) for p in row] for row in entry["probabilities"]], entry["labels"])
    return Answers([float(p) for p in entry["probabilities"]], list(entry["labels"]))


def instances(golden: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The golden rows as request instances: integers kept as integers, categorical codes
    (positions in the feature's values) turned back into the values callers send."""
    names = golden["feature_names"]
    categories = golden.get("categories") or {}

    def value(name: str, code: float) -> Any:
        if name in categories:
            return categories[name][int(code)]
        return int(code) if float(code).is_integer() else float(code)

    return [
        {name: value(name, code) for name, code in zip(names, row, strict=True)}
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
    lambda_client: Any,
    function: str,
    rows: Sequence[Mapping[str, Any]],
    batch_size: int,
    kind: Kind = Kind("binary", (0, 1)),
    deadline: Deadline = NO_DEADLINE,
) -> Answers:
    """Every row through ``function`` (a qualified ARN), ``batch_size`` rows per request;
    the answers read as ``kind``'s (a model of another task answers other fields). Each
    batch starts only while ``deadline`` leaves time to answer."""
    answers = Answers([], None if kind.task == "regression" else [])
    for start in range(0, len(rows), batch_size):
        batch = list(rows[start : start + batch_size])
        where = f"{function} rows {start}-{start + len(batch) - 1}"
        deadline.check(where)
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
        for answer in predictions:
            output, label = _read_answer(answer, kind, where)
            answers.outputs.append(output)
            if answers.labels is not None:
                answers.labels.append(label)
    return answers


def _read_answer(answer: Any, kind: Kind, where: str) -> tuple[Any, Any]:
    """(output, label) of one answer, or GateError naming what the answer lacks."""
    try:
        if kind.task == "regression":
            return float(answer["prediction"]), None
        if kind.task == "binary":
            return float(answer["probability"]), answer["prediction"]
        probabilities = answer["probabilities"]
        assert kind.classes is not None
        keys = [str(c) for c in kind.classes]
        if list(probabilities) != keys:
            raise KeyError("probabilities")
        return [float(probabilities[k]) for k in keys], answer["prediction"]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise GateError(
            f"{where}: the answer {json.dumps(answer)[:200]} is not one of {kind.describe()}"
            " (is the version serving a model of another task or classes?)"
        ) from None


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


def run_gate(
    settings: GateSettings, *, lambda_client: Any, s3: Any, deadline: Deadline = NO_DEADLINE
) -> Verdict:
    def read(where: GoldenObject) -> dict[str, Any]:
        return read_golden(s3, where.bucket, where.key, where.sha256)

    golden = read(settings.golden)
    kind = kind_of(golden)

    def ask(function: str, rows: Sequence[Mapping[str, Any]]) -> Answers:
        return invoke(lambda_client, function, rows, settings.batch_size, kind, deadline)

    rows = instances(golden)
    candidate = ask(settings.candidate_function, rows)
    scored = []
    if settings.stable_function:
        stable = settings.stable_function
        other = read(settings.stable_golden) if settings.stable_golden is not None else None
        if other is not None:
            # Before any invocation of the stable side: its answers would not parse.
            same_kind(kind, kind_of(other))
        scored.append(Scored(CANDIDATE_ROWS, golden.get("labels"), candidate, ask(stable, rows)))
        if other is not None:
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
    "max_rmse_increase_fraction": "MaxRmseIncreaseFraction",
}
_ENV_TOLERANCES = {
    "max_log_loss_increase": "MAX_LOG_LOSS_INCREASE",
    "max_auc_decrease": "MAX_AUC_DECREASE",
    "max_brier_increase": "MAX_BRIER_INCREASE",
    "max_rmse_increase_fraction": "MAX_RMSE_INCREASE_FRACTION",
}
# Stacks synthesized before the regression tolerance existed do not pass it.
_OPTIONAL_TOLERANCES = ("max_rmse_increase_fraction",)


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
        tolerances=Tolerances.parse(properties, _PROPERTY_TOLERANCES, _OPTIONAL_TOLERANCES),
        batch_size=_batch_size(properties.get("BatchSize")),
    )


def _candidate_weight(text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 <= value <= 1:
        raise GateError(f"CandidateWeight={text!r} is not allowed: a number from 0 to 1")
    return value


def not_needed(properties: Mapping[str, Any], *, lambda_client: Any) -> str | None:
    """Why the gate need not check the candidate, or None when it must.

    The gate stands between a version and traffic it does not have yet. It does not run
    when the candidate takes no traffic after this deploy (``CandidateWeight`` 0: a roll
    back, which must not wait for the version it rolls back), nor when ``GetAlias`` shows
    that the alias already routes the candidate (a ramp, a promote, an update-rollback
    re-sending the previous template's properties): it passed before it took traffic.
    A missing alias (the first deploy) routes nothing. Properties of a template of an
    earlier release carry no ``CandidateWeight``: the gate runs, as it did then."""
    if properties.get("CandidateWeight") is None:
        return None
    candidate = _required(properties, "FunctionArn")
    if _candidate_weight(properties["CandidateWeight"]) == 0:
        return f"not checked: {candidate} takes no traffic after this deploy (CandidateWeight 0)"
    function, alias = properties.get("FunctionName"), properties.get("AliasName")
    if not function or not alias:
        return None
    version = candidate.rsplit(":", 1)[-1]
    try:
        current = lambda_client.get_alias(FunctionName=function, Name=alias)
    except lambda_client.exceptions.ResourceNotFoundException:
        return None  # the first deploy: no alias, nothing routed yet
    except lambda_client.exceptions.ClientError as error:
        # Not knowing what the alias routes is no reason to skip the check: it runs.
        print(f"GetAlias {function}:{alias} failed, so the gate checks {candidate}: {error}")
        return None
    weights = (current.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if current.get("FunctionVersion") == version or weights.get(version, 0) > 0:
        return (
            f"not checked: alias {alias} already routes version {version}, so it passed the "
            "gate before it took traffic"
        )
    return None


def on_custom_resource(
    event: Mapping[str, Any], *, lambda_client: Any, s3: Any, deadline: Deadline = NO_DEADLINE
) -> tuple[str, str, str]:
    """(status, reason, physical id) for a CloudFormation request."""
    properties = event.get("ResourceProperties", {})
    physical_id = str(properties.get("FunctionArn", "traffic-gate"))
    if event.get("RequestType") == "Delete":
        return "SUCCESS", "nothing to undo", event.get("PhysicalResourceId", physical_id)
    try:
        why_not = not_needed(properties, lambda_client=lambda_client)
        if why_not is not None:
            print(why_not)
            return "SUCCESS", why_not, physical_id
        verdict = run_gate(
            settings_from_properties(properties),
            lambda_client=lambda_client,
            s3=s3,
            deadline=deadline,
        )
    except GateError as error:
        return "FAILED", f"traffic gate could not run: {error}"[:REASON_MAX_CHARS], physical_id
    for line in verdict.lines():
        print(line)
    status = "SUCCESS" if verdict.passed else "FAILED"
    return status, verdict.reason(), physical_id


# ---------------------------------------------------------------------------- CodeDeploy hook


def appspec_content(revision: Mapping[str, Any] | None) -> str | None:
    """The AppSpec text of a RevisionLocation (``AppSpecContent`` or ``String``), if given."""
    if not revision:
        return None
    for member in ("appSpecContent", "string"):
        content = (revision.get(member) or {}).get("content")
        if content:
            return str(content)
    return None


def read_appspec(codedeploy: Any, deployment_id: str) -> str:
    """The deployment's AppSpec. GetDeployment may leave the content out of its answer
    ("Required: No"); the revision it names is then read with GetApplicationRevision."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    content = appspec_content(info.get("revision"))
    if content:
        return content
    application, revision = info.get("applicationName"), info.get("revision")
    if not application or not revision:
        raise GateError(
            f"GetDeployment answered no AppSpec content, application name or revision for "
            f"deployment {deployment_id}"
        )
    answer = codedeploy.get_application_revision(applicationName=application, revision=revision)
    content = appspec_content(answer.get("revision"))
    if not content:
        raise GateError(
            "neither GetDeployment nor GetApplicationRevision answered the AppSpec content of "
            f"deployment {deployment_id} (application {application})"
        )
    return content


def appspec_versions(content: str) -> tuple[str, str, str]:
    """(function name, current version, target version) from a Lambda AppSpec."""
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
    deadline: Deadline = NO_DEADLINE,
) -> str:
    """Check the deployment's target version and report; returns the status sent."""
    deployment_id = event["DeploymentId"]
    status = "Failed"
    try:
        function, current, target = appspec_versions(read_appspec(codedeploy, deployment_id))
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
            tolerances=Tolerances.parse(env, _ENV_TOLERANCES, _OPTIONAL_TOLERANCES),
            batch_size=_batch_size(env.get("BATCH_SIZE")),
        )
        verdict = run_gate(settings, lambda_client=lambda_client, s3=s3, deadline=deadline)
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

    # Every answer must reach CloudFormation or CodeDeploy before the function times out.
    deadline = Deadline(context.get_remaining_time_in_millis)
    lambda_client, s3 = boto3.client("lambda"), boto3.client("s3")
    if "LifecycleEventHookExecutionId" in event:
        on_hook(
            event,
            os.environ,
            lambda_client=lambda_client,
            s3=s3,
            codedeploy=boto3.client("codedeploy"),
            deadline=deadline,
        )
        return
    try:
        status, reason, physical_id = on_custom_resource(
            event, lambda_client=lambda_client, s3=s3, deadline=deadline
        )
    except Exception as error:  # every failure must reach CloudFormation, or it waits an hour
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:REASON_MAX_CHARS]
        physical_id = str(event.get("ResourceProperties", {}).get("FunctionArn", "traffic-gate"))
        print(reason)
    respond(event, status, reason, physical_id)

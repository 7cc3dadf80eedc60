"""The traffic gate's decision, in pure Python: does a candidate pass?

``evaluate`` holds the candidate's answers on its golden set against the answers recorded
for the deployed runtime (identity: the version runs the artifact that was tested), then
scores the candidate and the stable version on each golden set both answered and holds the
difference against the environment's ``Tolerances`` (quality). The ``Verdict`` lists the
figures and names each refusal's metric, value and tolerance. The deployed gate
(lambda_src/traffic_gate) and ``python -m tools.rollout start`` (offline, on the local
artifacts) decide with this one module; only where the answers come from differs.
Standard library only: the deployed gate runs on Lambda's Python runtime, which has no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving import golden_metrics
from serving.golden_sets import (
    BINARY,
    Answers,
    GateError,
    Kind,
    class_indices,
    kind_of,
    recorded_answers,
)

# Identity: |candidate - recorded| <= IDENTITY_BOUND * max(1, |recorded|) for every answer.
# Relative above 1: a float64 has 52 bits of mantissa, so one step (ulp) at 8.4e6 is already
# 1.9e-9 and an absolute 1e-9 would refuse a regressor whose runtime rounds one step apart.
# Absolute below 1 (probabilities, small values): a relative bound there would demand
# ever more digits of a value near 0. Two runs of the same artifact differ by a few ulps
# (2.2e-16 relative each); any other model differs by far more than 1e-9.
IDENTITY_BOUND = 1e-9
# The configuration key that lets a golden set without labels through (quality unchecked).
ALLOW_UNLABELLED_KEY = "quality_gate.allow_unlabelled_golden"
# A golden set or stack without the regression tolerance (a stack synthesized before it
# existed) gets the configuration's default.
DEFAULT_MAX_RMSE_INCREASE_FRACTION = 0.02
# Rows of a golden set that neither version trained on, needed to compare on it: the log
# loss of two honest retrains differs per row with a standard deviation of about 0.24
# (churn, measured), so on 200 rows the mean difference has a standard error of 0.017,
# below the 0.03 default tolerance; and a ROC AUC needs each class (10 rows of it).
MIN_FRESH_ROWS = 200
MIN_FRESH_PER_CLASS = 10
# The golden sets a candidate is scored on against the stable version.
CANDIDATE_ROWS = "the candidate's golden set"
STABLE_ROWS = "the stable model's golden set"


@dataclass(frozen=True)
class Tolerances:
    """How much worse than the stable version the candidate may score."""

    max_log_loss_increase: float
    max_auc_decrease: float
    max_brier_increase: float
    # Regression: how much higher the candidate's RMSE may be, as a fraction of the
    # stable model's (RMSE has the target's unit, so an absolute bound means nothing).
    max_rmse_increase_fraction: float = DEFAULT_MAX_RMSE_INCREASE_FRACTION


@dataclass(frozen=True)
class Scored:
    """One golden set's rows, answered by both sides."""

    name: str  # "the candidate's golden set", "the stable model's golden set"
    labels: list[Any] | None  # None: packaged without labels, only the flip rate is known
    candidate: Answers
    stable: Answers
    # Per row: whether the version that did not sample these rows may have trained on
    # them (its training_rows filter); None: it records none, every row is compared.
    seen: Sequence[bool] | None = None


@dataclass(frozen=True)
class Comparison:
    name: str
    rows: int
    # Classifiers: share of rows whose label differs; regression: None.
    label_flip_rate: float | None
    candidate: dict[str, float] | None
    stable: dict[str, float] | None
    # Which rows the figures are on, or why there are none.
    note: str | None = None


@dataclass
class Verdict:
    rows: int
    max_abs_diff: float
    label_mismatches: int
    comparisons: list[Comparison] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    kind: Kind = BINARY
    # The golden sets compared without labels: their quality was not checked.
    unchecked: list[str] = field(default_factory=list)

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
            if comparison.note is not None:
                lines.append(f"  {comparison.note}")
            if comparison.label_flip_rate is not None:
                lines.append(
                    f"  label flip rate against the stable model: {comparison.label_flip_rate:.2%}"
                )
        lines += [f"refused: {reason}" for reason in self.refusals]
        return lines

    def reason(self) -> str:
        """The refusals on one line; when it passed, the report on one line."""
        return "; ".join(self.refusals) if self.refusals else "; ".join(self.lines())


def _difference_name(kind: Kind) -> str:
    return "max |d value| / max(1, |value|)" if kind.task == "regression" else "max |dp|"


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
    *,
    allow_unlabelled: bool = False,
) -> Verdict:
    """Identity of ``candidate`` (the answers on ``golden``'s rows) against the answers
    recorded for ``runtime``; quality of the candidate against the stable side on each of
    ``scored``. The stable model's golden set belongs there: the candidate's own labels
    come from the same pipeline as the candidate, and cannot vouch for it alone.

    A NaN or infinity anywhere in an answer is refused, naming the side and the row. A
    golden set without labels compares nothing ("quality not checked"); it is refused
    unless ``allow_unlabelled`` (``quality_gate.allow_unlabelled_golden``)."""
    kind = kind_of(golden)
    recorded = recorded_answers(golden, runtime)
    rows = len(recorded.outputs)
    if len(candidate.outputs) != rows or (
        candidate.labels is not None and len(candidate.labels) != rows
    ):
        raise GateError(f"the candidate answered {len(candidate.outputs)} of {rows} rows")
    refusals: list[str] = []
    _refuse_not_finite("the candidate", "its golden set", candidate.outputs, refusals)
    differences = [
        abs(a - b) / max(1.0, abs(b))
        for got, expected in zip(candidate.outputs, recorded.outputs, strict=True)
        for a, b in _cells(got, expected)
    ]
    # max() skips a NaN after the first element: a NaN is reported as such, never as 0.
    largest = math.nan if any(math.isnan(d) for d in differences) else max(differences)
    mismatches = (
        0
        if recorded.labels is None or candidate.labels is None
        else sum(a != b for a, b in zip(candidate.labels, recorded.labels, strict=True))
    )
    verdict = Verdict(rows, largest, mismatches, refusals=refusals, kind=kind)
    if not largest <= IDENTITY_BOUND or mismatches:
        labels = "" if kind.task == "regression" else f", {mismatches} of {rows} labels differ"
        verdict.refusals.append(
            f"identity: {_difference_name(kind)} {largest:.3g} against "
            f"golden.json's {runtime} answers (tolerance {IDENTITY_BOUND:g}){labels}: "
            "the version does not run the artifact that was tested"
        )
    for rows_scored in scored:
        if rows_scored.candidate.outputs is not candidate.outputs:
            # The same answers as identity's are refused there already.
            _refuse_not_finite(
                "the candidate", rows_scored.name, rows_scored.candidate.outputs, refusals
            )
        verdict.comparisons.append(_compare(rows_scored, kind, tolerances, verdict.refusals))
        if rows_scored.labels is None:
            verdict.unchecked.append(rows_scored.name)
    if verdict.unchecked and not allow_unlabelled:
        verdict.refusals.append(
            f"quality not checked: {' and '.join(verdict.unchecked)} "
            f"{'has' if len(verdict.unchecked) == 1 else 'have'} no labels (packaged "
            "without labelled data), so nothing shows the candidate predicts as well as the "
            f"stable model; package it with labelled data, or set {ALLOW_UNLABELLED_KEY}: "
            "true to deploy it with quality unchecked"
        )
    return verdict


def _refuse_not_finite(side: str, where: str, outputs: Sequence[Any], refusals: list[str]) -> None:
    """A refusal naming the first row (and the count) of answers that are not finite."""
    bad = [
        index
        for index, output in enumerate(outputs)
        if not all(math.isfinite(v) for v in (output if isinstance(output, list) else [output]))
    ]
    if bad:
        refusals.append(
            f"answers: {side} answered a value that is not a finite number on {where} at row "
            f"{bad[0]} ({len(bad)} of {len(outputs)} rows, e.g. {outputs[bad[0]]!r})"
        )


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
    _refuse_not_finite("the stable version", scored.name, scored.stable.outputs, refusals)
    flip_rate = None
    if scored.candidate.labels is not None and scored.stable.labels is not None:
        pairs = zip(scored.candidate.labels, scored.stable.labels, strict=True)
        flip_rate = sum(a != b for a, b in pairs) / rows
    if scored.labels is None:
        note = "quality not checked: the golden set has no labels"
        return Comparison(scored.name, rows, flip_rate, None, None, note)
    # As before fingerprints: rows the other version trained on flatter it.
    note = "compared on every row (no fingerprint: cannot tell which rows the other trained on)"
    if scored.seen is not None:
        fresh = [i for i, seen in enumerate(scored.seen) if not seen]
        left_out = rows - len(fresh)
        note = f"compared on the {len(fresh)} rows neither version trained on ({left_out} left out)"
        too_few = _too_few(kind, [scored.labels[i] for i in fresh])
        if too_few is not None:
            note = (
                f"not compared: {len(fresh)} of {rows} rows neither version trained on; {too_few}"
            )
            return Comparison(scored.name, rows, flip_rate, None, None, note)
        scored = Scored(
            scored.name,
            [scored.labels[i] for i in fresh],
            _rows_of(scored.candidate, fresh),
            _rows_of(scored.stable, fresh),
        )
        rows = len(fresh)
    truth = scored.labels or []
    candidate = quality(truth, scored.candidate.outputs, kind)
    stable = quality(truth, scored.stable.outputs, kind)
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
    return Comparison(scored.name, rows, flip_rate, candidate, stable, note)


def _rows_of(answers: Answers, picked: Sequence[int]) -> Answers:
    labels = None if answers.labels is None else [answers.labels[i] for i in picked]
    return Answers([answers.outputs[i] for i in picked], labels)


def _too_few(kind: Kind, labels: Sequence[Any]) -> str | None:
    """Why the rows left are too few to compare on, or None."""
    if len(labels) < MIN_FRESH_ROWS:
        return f"the comparison needs {MIN_FRESH_ROWS}"
    if kind.classes is not None:
        counts = [0] * len(kind.classes)
        for index in class_indices(labels, kind.classes):
            counts[index] += 1
        if min(counts) < MIN_FRESH_PER_CLASS:
            return f"the comparison needs {MIN_FRESH_PER_CLASS} of each class, has {counts}"
    return None


def quality(y: Sequence[Any], outputs: Sequence[Any], kind: Kind = BINARY) -> dict[str, float]:
    """The gate's metrics for ``kind`` of ``outputs`` against labels (class labels or
    target values) ``y``."""
    classes = kind.classes
    truth = [float(v) for v in y] if classes is None else class_indices(y, classes)
    return {
        name: metric(truth, outputs) for name, metric in golden_metrics.BY_TASK[kind.task].items()
    }

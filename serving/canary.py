"""Canary analysis of predictions: does the candidate answer like the stable version?

Weighted routing sends each request to a side at random, so both sides see the same
input distribution and a difference in what they predict is the models'. ``analyse``
takes each side's predicted probabilities (from the prediction logs) and request counts
(from the metrics) and returns a ``CanaryReport`` whose verdict is one of:

- ``too few requests to judge``: a side has fewer than ``min_samples`` predictions;
- ``roll back``: the PSI between the sides exceeds ``psi_block``, or the positive rate
  moved by more than ``max_rate_shift`` and the two-proportion test is significant at
  ``alpha``;
- ``hold``: the PSI is in the watch band [``psi_watch``, ``psi_block``], or the positive
  rate moved significantly but within ``max_rate_shift``, or moved by more than it
  without significance yet;
- ``promote``: none of the above.

Pure: no AWS calls; ``tools.rollout compare`` fetches the samples and calls this.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from serving import histograms, stats

CanaryVerdict = Literal["promote", "hold", "roll back", "too few requests to judge"]


@dataclass(frozen=True)
class Thresholds:
    min_samples: int = 200
    psi_watch: float = histograms.PSI_WATCH
    psi_block: float = histograms.PSI_ALARM
    alpha: float = 0.01
    max_rate_shift: float = 0.05
    decision_threshold: float = 0.5
    bins: int = histograms.DEFAULT_BINS

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be a positive integer, got {self.min_samples}")
        try:
            histograms.check_thresholds(self.psi_watch, self.psi_block)
        except ValueError:
            raise ValueError(
                "PSI thresholds must satisfy 0 < psi_watch <= psi_block, got "
                f"psi_watch={self.psi_watch}, psi_block={self.psi_block}"
            ) from None
        for name in ("alpha", "max_rate_shift", "decision_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if self.bins < 1:
            raise ValueError(f"bins must be a positive integer, got {self.bins}")


@dataclass(frozen=True)
class SideSummary:
    name: str
    requests: int
    predictions: int
    mean: float | None
    p5: float | None
    p50: float | None
    p95: float | None
    positives: int
    positive_rate: float | None
    positive_rate_low: float
    positive_rate_high: float


@dataclass(frozen=True)
class CanaryReport:
    stable: SideSummary
    candidate: SideSummary
    verdict: CanaryVerdict
    reasons: tuple[str, ...]
    thresholds: Thresholds
    rate_test: stats.ProportionTest | None = None
    psi: float | None = None
    psi_band: histograms.Verdict | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "stable": asdict(self.stable),
            "candidate": asdict(self.candidate),
            "rate_test": asdict(self.rate_test) if self.rate_test else None,
            "psi": self.psi,
            "thresholds": asdict(self.thresholds),
        }

    def render(self) -> str:
        header = (
            f"{'side':<10} {'requests':>8} {'predictions':>11} {'mean':>6} {'p5':>6} "
            f"{'p50':>6} {'p95':>6}  positive rate [95 % interval]"
        )
        lines = [header]
        for side in (self.stable, self.candidate):
            lines.append(
                f"{side.name:<10} {side.requests:>8} {side.predictions:>11} "
                f"{_f(side.mean):>6} {_f(side.p5):>6} {_f(side.p50):>6} {_f(side.p95):>6}  "
                f"{_f(side.positive_rate)} [{_f(side.positive_rate_low)}, "
                f"{_f(side.positive_rate_high)}]"
            )
        if self.rate_test:
            lines.append(
                f"positive rate, candidate - stable: {self.rate_test.difference:+.3f} "
                f"(z = {self.rate_test.z:.2f}, p = {_p(self.rate_test.p_value)})"
            )
        if self.psi is not None:
            t = self.thresholds
            lines.append(
                f"PSI of the candidate's predictions in the stable side's bins: {self.psi:.3f} "
                f"(fine below {t.psi_watch:g}, watch to {t.psi_block:g}, block above)"
            )
        lines.append(f"verdict: {self.verdict}")
        lines.extend(f"  - {reason}" for reason in self.reasons)
        return "\n".join(lines)


def summarize(
    name: str,
    probabilities: Sequence[float],
    *,
    requests: int | None = None,
    decision_threshold: float = 0.5,
) -> SideSummary:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"{name}: predictions must be a list of probabilities in [0, 1]")
    count = int(p.size)
    if requests is not None and requests < 0:
        raise ValueError(f"{name}: request count must be >= 0, got {requests}")
    positives = int(np.sum(p >= decision_threshold))
    low, high = stats.wilson_interval(positives, count)
    if count == 0:
        return SideSummary(name, requests or 0, 0, None, None, None, None, 0, None, low, high)
    q = stats.percentiles(p, (5, 50, 95))
    return SideSummary(
        name,
        requests if requests is not None else count,
        count,
        float(p.mean()),
        q[5],
        q[50],
        q[95],
        positives,
        positives / count,
        low,
        high,
    )


def analyse(
    stable_probabilities: Sequence[float],
    candidate_probabilities: Sequence[float],
    *,
    stable_requests: int | None = None,
    candidate_requests: int | None = None,
    thresholds: Thresholds | None = None,
) -> CanaryReport:
    t = thresholds or Thresholds()
    stable = summarize(
        "stable",
        stable_probabilities,
        requests=stable_requests,
        decision_threshold=t.decision_threshold,
    )
    candidate = summarize(
        "candidate",
        candidate_probabilities,
        requests=candidate_requests,
        decision_threshold=t.decision_threshold,
    )
    short = [
        f"{side.name} has {side.predictions} predictions, at least {t.min_samples} needed"
        for side in (stable, candidate)
        if side.predictions < t.min_samples
    ]
    if short:
        return CanaryReport(stable, candidate, "too few requests to judge", tuple(short), t)

    rate = stats.two_proportion_test(
        stable.positives, stable.predictions, candidate.positives, candidate.predictions
    )
    histogram = histograms.numeric_histogram(stable_probabilities, t.bins)
    psi = histogram.psi(candidate_probabilities)
    band = histograms.psi_verdict(psi, watch=t.psi_watch, alarm=t.psi_block)

    block: list[str] = []
    watch: list[str] = []
    fine: list[str] = []
    psi_text = f"PSI {psi:.3f} between the sides' predictions"
    if band == "drift":
        block.append(f"{psi_text} is above {t.psi_block:g}")
    elif band == "watch":
        watch.append(f"{psi_text} is in the watch band [{t.psi_watch:g}, {t.psi_block:g}]")
    else:
        fine.append(f"{psi_text} is below {t.psi_watch:g}")

    shift = rate.difference
    significant = rate.p_value < t.alpha
    rate_text = (
        f"positive rate {stable.positive_rate:.3f} -> {candidate.positive_rate:.3f} "
        f"({shift:+.3f}, p = {_p(rate.p_value)})"
    )
    if significant and abs(shift) > t.max_rate_shift:
        block.append(
            f"{rate_text} moved by more than {t.max_rate_shift:g}, significant at {t.alpha:g}"
        )
    elif significant:
        watch.append(f"{rate_text} moved significantly at {t.alpha:g}, within {t.max_rate_shift:g}")
    elif abs(shift) > t.max_rate_shift:
        watch.append(
            f"{rate_text} moved by more than {t.max_rate_shift:g}, not yet significant "
            f"at {t.alpha:g}: wait for more requests"
        )
    else:
        fine.append(f"{rate_text}: no significant change at {t.alpha:g}")

    sample = (
        f"based on {stable.predictions} stable and {candidate.predictions} candidate predictions"
    )
    verdict: CanaryVerdict
    if block:
        verdict, reasons = "roll back", [*block, *watch]
    elif watch:
        verdict, reasons = "hold", watch
    else:
        verdict, reasons = "promote", fine
    return CanaryReport(
        stable, candidate, verdict, (*reasons, sample), t, rate_test=rate, psi=psi, psi_band=band
    )


def shift_report(
    stable: Sequence[Any], candidate: Sequence[Any], task: str, thresholds: Thresholds
) -> str:
    """The prediction comparison of a multiclass (class labels) or regression (values)
    canary: each side's answers and the PSI between them, judged by the PSI bands."""
    t = thresholds
    lines = []
    for name, values in (("stable", stable), ("candidate", candidate)):
        if task == "multiclass":
            counts = Counter(str(value) for value in values)
            shares = ", ".join(
                f"{label} {count / len(values):.1%}" for label, count in counts.most_common(10)
            )
            lines.append(f"{name:<10} {len(values):>8} predictions  classes: {shares or '-'}")
        else:
            array = np.asarray(values, dtype=np.float64)
            q = stats.percentiles(array, (5, 50, 95)) if array.size else {}
            described = (
                f"mean {array.mean():.6g}, p5 {q[5]:.6g}, p50 {q[50]:.6g}, p95 {q[95]:.6g}"
                if array.size
                else "-"
            )
            lines.append(f"{name:<10} {len(values):>8} predictions  {described}")
    short = [
        f"{name} has {len(values)} predictions, at least {t.min_samples} needed"
        for name, values in (("stable", stable), ("candidate", candidate))
        if len(values) < t.min_samples
    ]
    if short:
        return "\n".join(
            [*lines, "verdict: too few requests to judge", *(f"  - {r}" for r in short)]
        )
    psi = prediction_shift_psi(stable, candidate, task, bins=t.bins)
    band = histograms.psi_verdict(psi, watch=t.psi_watch, alarm=t.psi_block)
    what = "predicted classes" if task == "multiclass" else "predicted values"
    verdict = {"drift": "roll back", "watch": "hold"}.get(band, "promote")
    lines.append(
        f"PSI of the candidate's {what} in the stable side's bins: {psi:.3f} "
        f"(fine below {t.psi_watch:g}, watch to {t.psi_block:g}, block above)"
    )
    lines.append(f"verdict: {verdict}")
    lines.append(f"  - based on {len(stable)} stable and {len(candidate)} candidate predictions")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "< 1e-4"


def prediction_shift_psi(
    stable: Sequence[Any],
    candidate: Sequence[Any],
    task: str,
    *,
    bins: int = histograms.DEFAULT_BINS,
) -> float:
    """PSI of the candidate's predictions in bins taken from the stable side's, per task:
    binary probabilities and regression values in the stable side's quantile bins (as
    ``analyse``); multiclass class labels, one bin per label the stable side answered plus
    one for labels it never did."""
    if not stable or not candidate:
        raise ValueError("both sides need predictions to compare")
    if task == "multiclass":
        labels = sorted({histograms.category_key(v): v for v in stable}.items())
        return histograms.value_histogram(stable, [v for _, v in labels]).psi(candidate)
    if task not in ("binary", "regression"):
        raise ValueError(f"task {task!r} is not one of binary, multiclass, regression")
    return histograms.numeric_histogram(stable, bins).psi(candidate)

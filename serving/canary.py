"""The canary decision rule: does the candidate harm, or only differ from, the stable side?

Weighted routing sends each request to a side at random, so both sides see the same
input distribution and a difference in what they predict is the models'. One rule, used
by the canary evaluator (lambda_src/monitors/canary.py, on every look) and by
``python -m tools.rollout compare`` (live, or ``--export FILE``), over each side's captured
rows grouped by request (``serving.sequential``: the request is the unit):

- ``hold`` with "too few requests": a side has fewer than ``min_requests`` requests;
- ``roll back``: the always-valid harm test (mSPRT) finds a shift of the positive rate
  (binary), the mean prediction (regression) or the class mix (multiclass) at
  ``alpha``, the false-rollback rate over the whole canary however often it looks;
- ``hold`` and page: the PSI of the prediction distribution (requests' summaries) is at
  least ``psi_watch`` and beyond the PSI two samples of one distribution reach with
  probability ``page_alpha`` at these request counts (``sequential.psi_noise``), with at
  least ``psi_min_requests`` per side. PSI measures difference, not harm (a better
  calibrated candidate has a high PSI): it pages a person, it never rolls back;
- ``promote``: none of the above.

Pure: no AWS calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from serving import histograms, sequential
from serving.sequential import HarmTest, RequestSummaries

CanaryVerdict = Literal["promote", "hold", "roll back"]

# The fewest requests a side needs for the harm test: its normal approximation of the
# request summaries' mean holds from a few dozen requests (the simulation's null runs
# start at 50 and keep the false-rollback rate under alpha).
DEFAULT_MIN_REQUESTS = 50
# The fewest requests a side needs before its PSI is published and judged: at 200 and 9
# times as many stable requests, PSI above 0.25 from sampling alone has probability
# under 1e-6, and the noise bound is near the watch level.
DEFAULT_PSI_MIN_REQUESTS = 200


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = DEFAULT_MIN_REQUESTS
    psi_min_requests: int = DEFAULT_PSI_MIN_REQUESTS
    psi_watch: float = histograms.PSI_WATCH
    psi_block: float = histograms.PSI_ALARM
    alpha: float = 0.01  # the false-rollback rate of a whole canary
    page_alpha: float = 0.001  # per look: the chance a healthy PSI is called beyond noise
    decision_threshold: float = 0.5
    bins: int = histograms.DEFAULT_BINS
    tau_sd: float = sequential.TAU_SD

    def __post_init__(self) -> None:
        for name in ("min_requests", "psi_min_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer of at least 2, got {value!r}")
        try:
            histograms.check_thresholds(self.psi_watch, self.psi_block)
        except ValueError:
            raise ValueError(
                "PSI thresholds must satisfy 0 < psi_watch <= psi_block, got "
                f"psi_watch={self.psi_watch}, psi_block={self.psi_block}"
            ) from None
        for name in ("alpha", "page_alpha", "decision_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if not (math.isfinite(self.tau_sd) and self.tau_sd > 0):
            raise ValueError(f"tau_sd must be a positive number, got {self.tau_sd}")
        if self.bins < 2:
            raise ValueError(f"bins must be an integer of at least 2, got {self.bins}")


@dataclass(frozen=True)
class SideSummary:
    name: str
    rows: int
    requests: int
    # The mean request summary per column (each request weighing one).
    means: dict[str, float]


@dataclass(frozen=True)
class CanaryReport:
    task: str
    stable: SideSummary
    candidate: SideSummary
    verdict: CanaryVerdict
    reasons: tuple[str, ...]
    thresholds: Thresholds
    harm: tuple[HarmTest, ...] = ()
    psi: float | None = None
    psi_noise: float | None = None
    page: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def judged(self) -> bool:
        """Both sides have the minimum requests: the harm test ran."""
        return bool(self.harm)

    @property
    def harmful(self) -> bool:
        return any(test.significant for test in self.harm)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "stable": asdict(self.stable),
            "candidate": asdict(self.candidate),
            "harm": [asdict(t) | {"significant": t.significant} for t in self.harm],
            "psi": self.psi,
            "psi_noise": self.psi_noise,
            "page": self.page,
            "notes": list(self.notes),
            "thresholds": asdict(self.thresholds),
        }

    def render(self) -> str:
        columns = list(self.stable.means) or list(self.candidate.means)
        header = f"{'side':<10} {'requests':>8} {'rows':>8}  " + "  ".join(
            f"{c[:16]:>16}" for c in columns
        )
        lines = [header]
        for side in (self.stable, self.candidate):
            cells = "  ".join(f"{_f(side.means.get(c)):>16}" for c in columns)
            lines.append(f"{side.name:<10} {side.requests:>8} {side.rows:>8}  {cells}")
        for test in self.harm:
            lines.append(
                f"{test.column}, candidate - stable: {test.difference:+.4g} "
                f"(se {test.standard_error:.2g}, always-valid p = {_p(test.p_value)}, "
                f"rollback at p <= {test.alpha:g})"
            )
        if self.psi is not None:
            t = self.thresholds
            lines.append(
                f"PSI of the candidate's request summaries in the stable side's bins: "
                f"{self.psi:.3f} (pages from {t.psi_watch:g} when above the noise "
                f"{_f(self.psi_noise)} at these request counts)"
            )
        lines.append(f"verdict: {self.verdict}")
        lines.extend(f"  - {reason}" for reason in self.reasons)
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def side_summary(name: str, summaries: RequestSummaries) -> SideSummary:
    means = (
        {c: float(v) for c, v in zip(summaries.columns, summaries.values.mean(axis=0), strict=True)}
        if summaries.requests
        else {}
    )
    return SideSummary(name, summaries.rows, summaries.requests, means)


def decide(
    stable: RequestSummaries, candidate: RequestSummaries, thresholds: Thresholds | None = None
) -> CanaryReport:
    """The verdict on two sides' request summaries (module docstring)."""
    t = thresholds or Thresholds()
    if stable.task != candidate.task:
        # A model of another task cannot shift "the same way": there is nothing to compare.
        raise ValueError(
            f"the candidate's predictions are {candidate.task}, the stable side's {stable.task}"
        )
    sides = (side_summary("stable", stable), side_summary("candidate", candidate))
    counts = f"{stable.requests} stable and {candidate.requests} candidate requests"
    short = [
        f"{s.name} has {s.requests} requests, at least {t.min_requests} needed"
        for s in sides
        if s.requests < t.min_requests
    ]
    if short:
        return CanaryReport(stable.task, *sides, "hold", (*short, f"based on {counts}"), t)

    harm = tuple(sequential.harm_tests(stable, candidate, alpha=t.alpha, tau_sd=t.tau_sd))
    reasons: list[str] = []
    for test in harm:
        text = (
            f"{test.column} {test.stable_mean:.4g} -> {test.candidate_mean:.4g} "
            f"({test.difference:+.4g}, always-valid p = {_p(test.p_value)})"
        )
        if test.significant:
            reasons.append(f"{text}: a significant shift at {test.alpha:g}")

    psi: float | None = None
    noise: float | None = None
    page = False
    psi_reasons: list[str] = []
    if min(stable.requests, candidate.requests) >= t.psi_min_requests:
        psi = sequential.prediction_psi(stable, candidate, bins=t.bins)
        noise = float(sequential.psi_noise(stable.requests, candidate.requests, t.bins,
                                           t.page_alpha))  # fmt: skip
        page = psi >= t.psi_watch and psi > noise
        band = "above the block level" if psi > t.psi_block else "in the watch band"
        if page:
            psi_reasons.append(
                f"PSI {psi:.3f} between the sides' predictions is {band} (from "
                f"{t.psi_watch:g}) and above its noise {noise:.3f}: page, do not roll back"
            )
    notes = () if psi is not None else (f"PSI is judged from {t.psi_min_requests} requests a side",)

    verdict: CanaryVerdict
    if reasons:
        verdict = "roll back"
        reasons += psi_reasons
    elif page:
        verdict, reasons = "hold", psi_reasons
    else:
        verdict = "promote"
        reasons = [f"no significant shift at {t.alpha:g}"]
    return CanaryReport(
        stable.task, *sides, verdict, (*reasons, f"based on {counts}"), t,
        harm=harm, psi=psi, psi_noise=noise, page=page, notes=notes,
    )  # fmt: skip


def evaluate(
    stable: tuple[Sequence[str], Sequence[Any]],
    candidate: tuple[Sequence[str], Sequence[Any]],
    task: str,
    thresholds: Thresholds | None = None,
) -> CanaryReport:
    """``decide`` on rows: each side's (request ids, predictions), one of each per row."""
    t = thresholds or Thresholds()
    labels = None
    if task == "multiclass":
        labels = sorted({str(p) for p in (*stable[1], *candidate[1])})
    stable_summaries, candidate_summaries = (
        sequential.summarize(ids, predictions, task, decision_threshold=t.decision_threshold,
                             labels=labels)
        for ids, predictions in (stable, candidate)
    )  # fmt: skip
    return decide(stable_summaries, candidate_summaries, t)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "< 1e-4"

"""Drift of captured requests against a reference: PSI, its null spread, and the verdict (pure).

The scheduled monitor and ``python -m tools.drift`` compute the same table: one line per
feature in the reference and one for the prediction (binary: the probability; multiclass:
the predicted class; regression: the value), each with its PSI, a p-value and a verdict.

The unit is the request
    Rows of one request (a batch) are correlated: a customer's 100 rows share a region, a
    plan, a day. Each request therefore weighs 1, shared equally by its rows: the observed
    share of a bin is the mean over requests of the request's share in it. ``min_requests``
    counts distinct requests, and so does the calibration below.

The threshold depends on the sample size
    A PSI of unchanged data is not 0: for ``k`` bins and ``n`` independent draws it is
    about ``(k - 1) / n`` (0.1 at 200 draws over 21 categories, and at 10 draws above
    0.25 99.9 % of the time). So a line's PSI is compared with what the reference itself
    reaches at ``n`` requests, as NannyML sets its thresholds: ``CALIBRATION_DRAWS`` times,
    the reference's bin shares are redrawn (Dirichlet with the reference's row count, for
    the reference is itself a sample), ``n`` values are drawn from them (multinomial), and
    their PSI is taken. The p-value is the share of those draws at or above the observed
    PSI (plus one, so it is never 0). Drawing one value per request is the worst case for
    correlated rows: the request-weighted shares of requests with any number of rows,
    correlated or not, vary no more than one draw per request (the mean of identically
    distributed rows varies no more than one of them), so the test keeps its rate under
    any intra-request correlation and only loses power when rows of a request differ.
    The draws are seeded (``CALIBRATION_SEED``): the monitor and the tool give the same
    p-value for the same data.

The correction for the number of features: Holm
    The alarm pages when at least one feature drifted (``DriftedFeatures >= 1``), so the
    error that matters is the family-wise one, P(any feature flagged | no drift). Holm's
    step-down procedure bounds it by ``alpha`` per run under any dependence between the
    features (correlated features are the rule), and is uniformly more powerful than
    Bonferroni. Benjamini-Hochberg bounds the false discovery rate, which equals the
    family-wise rate only when nothing drifted, and Evidently's share of drifted features
    has no stated rate at all. The prediction line is its own test at ``alpha``.

Missing values and unlisted categories
    Each feature line also says what share of its rows were null (``missing``) and what
    share held a value the reference's categories do not list (``unknown``: an unlisted
    category passed on to the model, or an integer code the reference never saw). Both
    are in the PSI too: nulls in the missing-value bin of a nullable feature's reference,
    unlisted values in the unseen bin. A reference without a missing-value bin (a feature
    that was not nullable when the version was trained) leaves its null rows out of the
    line's PSI and rows; ``missing`` still counts them.

The verdict of a line
    drift: Holm-adjusted p-value <= ``alpha`` and PSI above ``alarm`` (a significant change
    that is also large enough to matter: with many requests, a negligible shift is
    significant but not drift). watch: PSI from ``watch`` with an unadjusted p-value <=
    ``alpha``, not drift. stable: otherwise. None: fewer than ``min_requests`` requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serving import histograms
from serving.distributions import Reference

DEFAULT_MIN_REQUESTS = 200
# The fewest requests the configuration allows. The features' alarm keeps its rate at any
# count, but the prediction-drift alarm compares PredictionPSI with psi_alarm alone: over
# ten deciles, one row per request, P(PSI > 0.25 | no drift) is 1.0 % at 100 requests,
# 0.03 % at 150 and 0 in 20,000 runs at 200 (docs/capture-and-drift.md, "False alarms").
MIN_REQUESTS_FLOOR = 150
DEFAULT_ALPHA = 0.01
CALIBRATION_DRAWS = 20_000
CALIBRATION_SEED = 22
PREDICTION = "prediction"


@dataclass(frozen=True)
class DriftThresholds:
    watch: float = histograms.PSI_WATCH
    alarm: float = histograms.PSI_ALARM
    min_requests: int = DEFAULT_MIN_REQUESTS
    # The false-alarm rate per run: P(any line drift | no drift) <= alpha for the features.
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        histograms.check_thresholds(self.watch, self.alarm)
        if isinstance(self.min_requests, bool) or self.min_requests < 1:
            raise ValueError(f"min_requests must be a positive integer, got {self.min_requests!r}")
        if not (isinstance(self.alpha, float | int) and 0 < self.alpha < 0.5):
            raise ValueError(f"alpha must be a number in (0, 0.5), got {self.alpha!r}")


@dataclass(frozen=True)
class DriftLine:
    name: str  # a feature, or PREDICTION
    rows: int
    requests: int
    psi: float
    # The line's p-value against the reference's own spread at ``requests`` (features:
    # Holm-adjusted over the features); None without rows.
    p_value: float | None
    verdict: histograms.Verdict | None  # None: fewer requests than min_requests
    # Shares of the captured rows that were null, and that held a value the reference's
    # categories do not list (0 for numbers and for the prediction).
    missing: float = 0.0
    unknown: float = 0.0


@dataclass(frozen=True)
class DriftReport:
    lines: tuple[DriftLine, ...]
    thresholds: DriftThresholds

    @property
    def drifted(self) -> list[str]:
        return [line.name for line in self.lines if line.verdict == "drift"]

    @property
    def drifted_features(self) -> int:
        """How many features drifted (the prediction not counted): the alarm's metric."""
        return sum(1 for line in self.lines if line.verdict == "drift" and line.name != PREDICTION)

    @property
    def watched(self) -> list[str]:
        return [line.name for line in self.lines if line.verdict == "watch"]

    @property
    def judged(self) -> bool:
        return all(line.verdict is not None for line in self.lines)

    @property
    def requests(self) -> int:
        return max((line.requests for line in self.lines), default=0)

    def summary(self) -> str:
        t = self.thresholds
        if not self.judged:
            return f"too few requests to judge (at least {t.min_requests} per line)"
        if self.drifted:
            return (
                f"drift (PSI above {t.alarm:g}, p <= {t.alpha:g} after Holm) in "
                f"{', '.join(self.drifted)}"
            )
        if self.watched:
            return f"no drift; watch {', '.join(self.watched)} (PSI from {t.watch:g})"
        return "no drift"

    def render(self) -> str:
        width = max(len(line.name) for line in self.lines)
        out = [f"{'':<{width}}  {'rows':>7}  {'requests':>8}  {'PSI':>6}  {'p':>7}  verdict"]
        for line in self.lines:
            verdict = line.verdict or f"too few requests (< {self.thresholds.min_requests})"
            p = "-" if line.p_value is None else f"{line.p_value:.4f}"
            shares = [
                f"{what} {share:.1%}"
                for what, share in (("null", line.missing), ("unlisted", line.unknown))
                if share
            ]
            out.append(
                f"{line.name:<{width}}  {line.rows:>7}  {line.requests:>8}  {line.psi:>6.3f}  "
                f"{p:>7}  {verdict}" + (f" ({', '.join(shares)} of rows)" if shares else "")
            )
        t = self.thresholds
        out.append(
            f"rule: drift when PSI is above {t.alarm:g} and p <= {t.alpha:g} (p: how often the "
            f"reference itself reaches that PSI at this many requests; features Holm-adjusted); "
            f"watch from PSI {t.watch:g} with unadjusted p <= {t.alpha:g}"
        )
        out.append(f"result: {self.summary()}")
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {
            "lines": [
                {
                    "name": x.name,
                    "rows": x.rows,
                    "requests": x.requests,
                    # No rows, no PSI: null rather than NaN, which JSON does not have.
                    "psi": None if math.isnan(x.psi) else x.psi,
                    "p_value": x.p_value,
                    "verdict": x.verdict,
                    "missing": x.missing,
                    "unknown": x.unknown,
                }
                for x in self.lines
            ],
            "drifted": self.drifted,
            "drifted_features": self.drifted_features,
            "alpha": self.thresholds.alpha,
            "result": self.summary(),
        }


def drift_report(
    reference: Reference,
    features: Sequence[Mapping[str, Any]],
    predictions: Sequence[Any],
    thresholds: DriftThresholds | None = None,
    *,
    feature_requests: Sequence[str],
    prediction_requests: Sequence[str],
) -> DriftReport:
    """``features``: one mapping per captured row (name to value; a categorical feature's
    value as the request sent it; None for null); every reference feature must be present
    (a KeyError names the first missing one). ``predictions``: what the rows predicted, as
    ``reference.task`` bins it (binary: the probability; multiclass: the class label;
    regression: the value). ``feature_requests`` and ``prediction_requests``: the request
    id of each row of ``features`` and of ``predictions``, in order."""
    t = thresholds or DriftThresholds()
    for what, given, ids in (
        ("feature_requests", features, feature_requests),
        ("prediction_requests", predictions, prediction_requests),
    ):
        if len(ids) != len(given):
            raise ValueError(f"{what} has {len(ids)} request ids for {len(given)} rows")
    measured: list[tuple[str, int, int, float, float | None]] = []
    shares: list[tuple[float, float]] = []
    for name, histogram in reference.features.items():
        values = [row[name] for row in features]
        ids = feature_requests
        absent = histograms.missing_mask(values)
        missing = float(absent.mean()) if values else 0.0
        if absent.any() and not histogram.missing:
            # No bin for nulls in this reference: the line's PSI is of the present values.
            values = [v for v, gone in zip(values, absent.tolist(), strict=True) if not gone]
            ids = [i for i, gone in zip(ids, absent.tolist(), strict=True) if not gone]
        shares.append((missing, _unlisted(histogram, values, len(absent))))
        measured.append((name, *_measure(histogram, values, ids)))
    # Holm over the features with rows (a line without rows has no p-value to correct).
    tested = [i for i, line in enumerate(measured) if line[4] is not None]
    raws = [float(measured[i][4] or 0.0) for i in tested]
    adjusted: list[float | None] = [None] * len(measured)
    for i, p in zip(tested, holm(raws).tolist(), strict=True):
        adjusted[i] = p
    lines = [
        replace(_line(name, rows, requests, psi, raw, adj, t), missing=missing, unknown=unknown)
        for (name, rows, requests, psi, raw), adj, (missing, unknown) in zip(
            measured, adjusted, shares, strict=True
        )
    ]
    rows, requests, psi, p = _measure(reference.prediction, predictions, prediction_requests)
    lines.append(_line(PREDICTION, rows, requests, psi, p, p, t))
    return DriftReport(tuple(lines), t)


def request_weighted_shares(
    histogram: histograms.Histogram, values: Sequence[Any], request_ids: Sequence[str]
) -> tuple[NDArray[np.float64], int]:
    """The share of each of ``histogram``'s bins, each request weighing 1 (its rows share
    it equally), and the number of distinct requests."""
    index = histogram.bin_index(values)
    ids = np.asarray([str(i) for i in request_ids])
    _, request, rows_of = np.unique(ids, return_inverse=True, return_counts=True)
    weights = 1.0 / rows_of[request]
    counts = np.bincount(index, weights=weights, minlength=len(histogram.proportions))
    return counts / rows_of.size, int(rows_of.size)


def null_psi(histogram: histograms.Histogram, requests: int) -> NDArray[np.float64]:
    """The sorted PSI of ``CALIBRATION_DRAWS`` samples of ``requests`` values drawn like the
    reference (its bin shares redrawn from a Dirichlet of its row count first)."""
    if requests < 1:
        raise ValueError(f"requests must be a positive integer, got {requests}")
    return _null_psi(histogram.proportions, histogram.count, requests)


@lru_cache(maxsize=256)
def _null_psi(proportions: tuple[float, ...], count: int, requests: int) -> NDArray[np.float64]:
    e = np.asarray(proportions, dtype=np.float64)
    seen = e > 0
    rng = np.random.default_rng(CALIBRATION_SEED)
    shares = np.zeros((CALIBRATION_DRAWS, e.size))
    shares[:, seen] = rng.dirichlet(e[seen] * count, size=CALIBRATION_DRAWS)
    # Dirichlet draws can sum to 1 + 1e-16; multinomial refuses pvals summing above 1.
    shares /= shares.sum(axis=1, keepdims=True)
    drawn = rng.multinomial(requests, shares) / requests
    return np.sort(psi_rows(e, drawn))


def psi_rows(expected: NDArray[np.float64], actual: NDArray[np.float64]) -> NDArray[np.float64]:
    """``serving.histograms.psi`` of each row of ``actual`` against ``expected``."""
    e = np.maximum(expected, histograms.PSI_FLOOR)
    a = np.maximum(actual, histograms.PSI_FLOOR)
    return np.asarray(np.sum((a - e) * np.log(a / e), axis=-1), dtype=np.float64)


def p_values(
    histogram: histograms.Histogram, psi: float | NDArray[np.float64], requests: int
) -> NDArray[np.float64]:
    """How often the reference itself reaches each ``psi`` at ``requests`` requests."""
    null = null_psi(histogram, requests)
    # A relative tolerance: an observed PSI equals a draw of the same counts.
    below = np.searchsorted(null, np.asarray(psi, dtype=np.float64) * (1 - 1e-9), side="left")
    return np.asarray((1 + null.size - below) / (1 + null.size), dtype=np.float64)


def holm(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values over the last axis (one family per row)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] == 0:
        return p.copy()
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p-values must be in [0, 1], got {p[~((p >= 0) & (p <= 1))][:3]}")
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    stepped = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, stepped, axis=-1)
    return adjusted


def verdicts(
    psi: ArrayLike, raw: ArrayLike, adjusted: ArrayLike, t: DriftThresholds
) -> NDArray[np.str_]:
    """Each line's verdict ("drift", "watch" or "stable") by the rule of the docstring."""
    psi_, raw_, adjusted_ = (np.asarray(x, dtype=np.float64) for x in (psi, raw, adjusted))
    drift = (psi_ > t.alarm) & (adjusted_ <= t.alpha)
    watch = ~drift & (psi_ >= t.watch) & (raw_ <= t.alpha)
    return np.where(drift, "drift", np.where(watch, "watch", "stable"))


def _unlisted(histogram: histograms.Histogram, values: Sequence[Any], rows: int) -> float:
    """The share of ``rows`` whose value falls into ``histogram``'s unseen-category bin."""
    if histogram.kind != "categorical" or not values:
        return 0.0
    index = histogram.bin_index(values)
    return float(np.count_nonzero(index == len(histogram.categories))) / rows


def _measure(
    histogram: histograms.Histogram, values: Sequence[Any], request_ids: Sequence[str]
) -> tuple[int, int, float, float | None]:
    """(rows, requests, PSI, p-value) of one line; NaN and None without rows."""
    if not values:
        return 0, 0, math.nan, None
    shares, requests = request_weighted_shares(histogram, values, request_ids)
    value = histograms.psi(histogram.proportions, shares)
    return len(values), requests, value, float(p_values(histogram, value, requests))


def _line(
    name: str,
    rows: int,
    requests: int,
    psi: float,
    raw: float | None,
    adjusted: float | None,
    t: DriftThresholds,
) -> DriftLine:
    if raw is None or adjusted is None or requests < t.min_requests:
        return DriftLine(name, rows, requests, psi, adjusted, None)
    verdict = str(verdicts(psi, raw, adjusted, t).item())
    assert verdict in ("drift", "watch", "stable")
    return DriftLine(name, rows, requests, psi, adjusted, verdict)  # type: ignore[arg-type]

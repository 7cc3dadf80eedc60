"""Requests as the unit, and an always-valid test of harm between two canary sides.

Requests, not rows
    Rows of one request are correlated (one customer's batch, one upstream job), so a
    statistic that counts rows is overconfident: with 100-row requests and an
    intra-request correlation of 0.2, a row-level test sees about 20 times the evidence
    there is. ``summarize`` reduces each request to one vector: its share of rows
    predicted positive at the decision threshold and its mean probability (binary), its
    mean value (regression), or its share of each class (multiclass). Every count and
    every variance below is over these request summaries.

The harm test: a mixture sequential probability ratio test (mSPRT)
    The canary evaluator looks every 5 minutes at everything the canary has served so
    far, and rolls back on the first look that finds harm. A fixed-sample test repeated at
    every look would reject a healthy canary far more often than its alpha (24 looks at
    p < 0.01 reject about 8 % of the time, more with a plug-in variance). We use the
    always-valid p-value of Johari, Pekelis and Walsh ("Always valid inference", 2017)
    for a difference of means under the normal approximation: with ``d`` the difference
    of the sides' mean request summaries and ``V`` its variance (the sum of each side's
    sample variance over its request count), the mixture likelihood ratio against a
    normal prior N(0, tau^2) on the true difference is

        Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

    and ``p = min(1, 1 / Lambda)``. Under no change, ``Lambda`` over the looks is a
    nonnegative martingale (d is a Brownian motion in the information time 1/V), so by
    Ville's inequality P(Lambda ever reaches 1 / alpha) <= alpha, however many looks and
    whenever one stops. The looks must see nested data (each look the whole canary so far),
    which is what the evaluator does. Why the mSPRT and not alpha spending: spending
    needs the number and timing of looks (and the final sample size) fixed in advance,
    and a canary's length, traffic and number of evaluator runs are not; why not Wald's
    SPRT: it needs one alternative effect size, and harm may be any shift.

    ``tau`` is the scale of shifts the test is tuned to, in units of the stable side's
    request-level standard deviation (``TAU_SD``): detection is fastest for shifts near
    it, and the error guarantee does not depend on it. Multiclass tests each class's
    share at alpha / K (Bonferroni over the K classes), so the class mix as a whole keeps
    alpha.

Pure numpy; the statistics take arrays so the simulation (tests/analysis/
test_canary_simulation.py) runs the very same arithmetic over many canaries at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serving import histograms
from serving.insights import RequestAggregates
from serving.tasks import TASKS

# The prior scale of the mixture, in request-level standard deviations of the stable side.
TAU_SD = 0.3


@dataclass(frozen=True)
class RequestSummaries:
    """One side's requests: ``values[i]`` the summary vector of request ``i``.

    ``columns`` names the vector's entries: binary ("positive share", "mean
    probability"), regression ("mean value",), multiclass one per class label.
    """

    task: str
    columns: tuple[str, ...]
    values: NDArray[np.float64]  # (requests, len(columns))
    rows: int

    @property
    def requests(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> NDArray[np.float64]:
        return self.values[:, self.columns.index(name)]


def summarize(
    request_ids: Sequence[str],
    predictions: Sequence[Any],
    task: str,
    *,
    decision_threshold: float = 0.5,
    labels: Sequence[str] | None = None,
) -> RequestSummaries:
    """Each request's summary, from its rows (one request id per prediction).

    Multiclass: one column per label in ``labels`` (default: the labels seen, sorted as
    text), labels compared as text (a request may send 1 or "1").
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if len(request_ids) != len(predictions):
        raise ValueError(
            f"{len(request_ids)} request ids for {len(predictions)} predictions: one per row"
        )
    ids = [str(i) for i in request_ids]
    index: dict[str, int] = {}
    groups = np.array([index.setdefault(i, len(index)) for i in ids], dtype=np.int64)
    sizes = np.bincount(groups, minlength=len(index)).astype(np.float64)
    if task == "multiclass":
        text = [str(p) for p in predictions]
        columns = tuple(sorted(set(text)) if labels is None else (str(x) for x in labels))
        position = {label: k for k, label in enumerate(columns)}
        unknown = sorted(set(text) - set(position))
        if unknown:
            raise ValueError(f"class labels {unknown[:5]} are not among {list(columns)}")
        counts = np.zeros((len(index), len(columns)))
        classes = np.array([position[t] for t in text], dtype=np.int64)
        np.add.at(counts, (groups, classes), 1.0)
        return RequestSummaries(task, columns, counts / sizes[:, None], len(ids))
    values = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if values.size and not np.all(np.isfinite(values)):
        bad = values[~np.isfinite(values)][0]
        raise ValueError(f"prediction {bad} is not a finite number")
    if task == "regression":
        means = np.bincount(groups, values, minlength=len(index)) / np.maximum(sizes, 1)
        return RequestSummaries(task, ("mean value",), means[:, None], len(ids))
    outside = values[(values < 0) | (values > 1)]
    if outside.size:
        raise ValueError(f"probability {outside[0]} is not in [0, 1]")
    positive = np.bincount(groups, (values >= decision_threshold).astype(np.float64), len(index))
    mean = np.bincount(groups, values, minlength=len(index))
    columns = ("positive share", "mean probability")
    stacked = np.column_stack([positive, mean]) / np.maximum(sizes, 1)[:, None]
    return RequestSummaries(task, columns, stacked.reshape(-1, 2), len(ids))


def from_aggregates(
    aggregates: RequestAggregates, labels: Sequence[str] | None = None
) -> RequestSummaries:
    """The same summaries as ``summarize``, from per-request sums that Logs Insights
    computed (``serving.insights.fetch_requests``). Multiclass: one column per label in
    ``labels`` (default: the labels seen, sorted as text)."""
    task = aggregates.task
    requests = list(aggregates.rows)
    sizes = np.array([aggregates.rows[r] for r in requests], dtype=np.float64)
    if task == "multiclass":
        seen = {label for r in requests for label in aggregates.sums[r]}
        columns = tuple(sorted(seen) if labels is None else (str(x) for x in labels))
        unknown = sorted(seen - set(columns))
        if unknown:
            raise ValueError(f"class labels {unknown[:5]} are not among {list(columns)}")
    elif task == "regression":
        columns = ("mean value",)
    elif task == "binary":
        columns = ("positive share", "mean probability")
    else:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    sums = np.array(
        [[aggregates.sums[r].get(c, 0.0) for c in columns] for r in requests], dtype=np.float64
    ).reshape(len(requests), len(columns))
    values = sums / np.maximum(sizes, 1)[:, None]
    return RequestSummaries(task, columns, values, int(sizes.sum()))


def log_mixture_ratio(
    difference: ArrayLike, variance: ArrayLike, tau: ArrayLike
) -> NDArray[np.float64]:
    """log Lambda of the mSPRT (module docstring), elementwise."""
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    return np.asarray(0.5 * np.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2)))


def always_valid_p(difference: ArrayLike, variance: ArrayLike, tau: ArrayLike) -> Any:
    """``min(1, 1 / Lambda)``: reject at alpha when it is <= alpha, at any look."""
    return np.minimum(1.0, np.exp(-log_mixture_ratio(difference, variance, tau)))


@dataclass(frozen=True)
class HarmTest:
    """The mSPRT of one summary column, candidate minus stable."""

    column: str
    stable_mean: float
    candidate_mean: float
    difference: float
    standard_error: float
    p_value: float  # always valid
    alpha: float  # the level this column is tested at (alpha / K for K classes)

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha


def harm_tests(
    stable: RequestSummaries, candidate: RequestSummaries, *, alpha: float, tau_sd: float = TAU_SD
) -> list[HarmTest]:
    """The harm test of each tested column: binary the positive share, regression the mean
    value, multiclass every class's share at alpha / K."""
    if stable.task != candidate.task:
        raise ValueError(f"the stable side is {stable.task}, the candidate {candidate.task}")
    if stable.columns != candidate.columns:
        raise ValueError(f"columns differ: {stable.columns} and {candidate.columns}")
    if min(stable.requests, candidate.requests) < 2:
        raise ValueError("each side needs at least 2 requests for a variance")
    tested = {"binary": ("positive share",), "regression": ("mean value",)}.get(
        stable.task, stable.columns
    )
    level = alpha / len(tested)
    found = []
    for name in tested:
        s, c = stable.column(name), candidate.column(name)
        variance = float(s.var(ddof=1) / s.size + c.var(ddof=1) / c.size)
        spread = float(s.std(ddof=1))
        difference = float(c.mean() - s.mean())
        if variance <= 0 or spread <= 0:
            # Every request answered alike on a side: no noise to test against.
            p = 0.0 if difference != 0 else 1.0
        else:
            p = float(always_valid_p(difference, variance, tau_sd * spread))
        found.append(
            HarmTest(name, float(s.mean()), float(c.mean()), difference,
                     math.sqrt(max(variance, 0.0)), p, level)
        )  # fmt: skip
    return found


def prediction_psi(
    stable: RequestSummaries, candidate: RequestSummaries, *, bins: int = histograms.DEFAULT_BINS
) -> float:
    """PSI of the candidate's request summaries against the stable side's: binary the mean
    probability, regression the mean value (in the stable side's quantile bins),
    multiclass the class mix with each request weighing one."""
    if stable.task == "multiclass":
        return histograms.psi(stable.values.mean(axis=0), candidate.values.mean(axis=0))
    name = "mean probability" if stable.task == "binary" else "mean value"
    return histograms.numeric_histogram(stable.column(name), bins).psi(candidate.column(name))


def psi_noise(
    stable_requests: ArrayLike, candidate_requests: ArrayLike, bins: int, alpha: float
) -> Any:
    """The PSI that two samples of one distribution exceed with probability ``alpha``.

    PSI is close to the chi-square statistic of the two samples' bin counts scaled by
    ``1/n_s + 1/n_c``, with ``bins - 1`` degrees of freedom; the quantile is Wilson and
    Hilferty's. Below it, a PSI is sampling noise at these request counts.
    """
    k = max(bins - 1, 1)
    z = NormalDist().inv_cdf(1 - alpha)
    quantile = k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3
    scale = 1 / np.asarray(stable_requests, dtype=np.float64)
    scale = scale + 1 / np.asarray(candidate_requests, dtype=np.float64)
    return quantile * scale

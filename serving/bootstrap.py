"""Bootstrap intervals of prediction metrics, for one group or two compared: numpy only.

Intervals are percentile intervals from seeded resampling with replacement; two groups
are resampled independently. A resample on which a metric is undefined (ROC AUC of a
one-class resample) is left out and counted.

Rows of one request are correlated (one customer's batch, one caller's burst), so the
outcomes tool resamples requests, not rows: the cluster bootstrap (``cluster_compare``).
A resample draws as many requests as the group has, with replacement, and keeps each
drawn request's rows. A resample is then a count per request, and each metric is computed
from those counts at once for thousands of resamples (``RESAMPLED``: the same figures as
``serving.stats`` at a count of 1 each, tested), which is what makes 5,000 rounds cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serving import stats
from serving.golden_metrics import LOG_LOSS_EPS
from serving.stats import Metric, Pairing, paired

# 5,000 rounds: with a 95 % family split over four metrics (Bonferroni: 98.75 % each), a
# percentile bound is the 0.625 % tail, 31 resamples at 5,000 rounds (6 at 1,000).
DEFAULT_ROUNDS = 5000
DEFAULT_CONFIDENCE = 0.95
# Entries of a (resamples x requests) count matrix built at once: the memory bound.
CELLS = 2_000_000
# ROC AUC from request-by-request pair scores when requests^2 <= this x rows (cheaper
# then than a pass over the rows per resample).
PAIRS_PER_ROW = 16


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float
    rounds: int  # resamples on which the metric was defined

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_json(self) -> dict[str, float | int]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "rounds": self.rounds,
        }


@dataclass(frozen=True)
class Comparison:
    first: Interval
    second: Interval
    difference: Interval  # second minus first


def bootstrap_interval(
    metric: Metric,
    y: ArrayLike,
    p: ArrayLike,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    pairing: Pairing = "binary",
) -> Interval:
    """Percentile bootstrap interval of ``metric(y, p)``; ``pairing`` says what ``y`` and
    ``p`` hold (checked as such): binary labels and probabilities, regression targets and
    values, or true and answered class labels."""
    labels, scores = paired(pairing, y, p)
    _check_bootstrap(rounds, confidence)
    rng = np.random.default_rng(seed)
    values = np.array(
        [_resampled(metric, labels, scores, rng) for _ in range(rounds)], dtype=np.float64
    )
    return _interval(metric(labels, scores), values, confidence)


def bootstrap_compare(
    metrics: Mapping[str, Metric],
    first: tuple[ArrayLike, ArrayLike],
    second: tuple[ArrayLike, ArrayLike],
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    pairing: Pairing = "binary",
) -> dict[str, Comparison]:
    """Each metric for two groups of ``(labels, probabilities)`` (or another ``pairing``,
    as ``bootstrap_interval``) and second minus first.

    The groups are resampled independently; every metric of a round uses that round's
    resamples, so one pass gives each group's interval and the difference's.
    """
    _check_bootstrap(rounds, confidence)
    y1, p1 = paired(pairing, *first)
    y2, p2 = paired(pairing, *second)
    rng = np.random.default_rng(seed)
    names = list(metrics)
    a = np.empty((rounds, len(names)))
    b = np.empty((rounds, len(names)))
    for r in range(rounds):
        i = rng.integers(0, y1.size, y1.size)
        j = rng.integers(0, y2.size, y2.size)
        for k, name in enumerate(names):
            a[r, k] = metrics[name](y1[i], p1[i])
            b[r, k] = metrics[name](y2[j], p2[j])
    out = {}
    for k, name in enumerate(names):
        e1, e2 = metrics[name](y1, p1), metrics[name](y2, p2)
        out[name] = Comparison(
            _interval(e1, a[:, k], confidence),
            _interval(e2, b[:, k], confidence),
            _interval(e2 - e1, b[:, k] - a[:, k], confidence),
        )
    return out


def bootstrap_difference(
    metric: Metric,
    first: tuple[ArrayLike, ArrayLike],
    second: tuple[ArrayLike, ArrayLike],
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Interval of ``metric(second) - metric(first)``."""
    compared = bootstrap_compare(
        {"metric": metric}, first, second, rounds=rounds, seed=seed, confidence=confidence
    )
    return compared["metric"].difference


def _resampled(metric: Metric, y: NDArray[Any], p: NDArray[Any], rng: np.random.Generator) -> float:
    index = rng.integers(0, y.size, y.size)
    return metric(y[index], p[index])


def _interval(estimate: float, values: NDArray[np.float64], confidence: float) -> Interval:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(estimate, math.nan, math.nan, confidence, 0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), confidence, int(finite.size))


def _check_bootstrap(rounds: int, confidence: float) -> None:
    if rounds < 1:
        raise ValueError(f"bootstrap rounds must be a positive integer, got {rounds}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


# ---------------------------------------------------------------- resampling requests


@dataclass(frozen=True)
class Clustered:
    """Labelled rows and the request (cluster) each came from, as indices 0..clusters-1."""

    y: NDArray[Any]
    p: NDArray[Any]
    cluster: NDArray[np.int64]
    clusters: int

    @property
    def sizes(self) -> NDArray[np.float64]:
        return np.bincount(self.cluster, minlength=self.clusters).astype(np.float64)


def clustered(
    y: ArrayLike, p: ArrayLike, requests: ArrayLike, *, pairing: Pairing = "binary"
) -> Clustered:
    """Rows checked as ``pairing`` (``paired``), grouped by their request ids."""
    labels, scores = paired(pairing, y, p)
    ids = np.asarray(requests)
    if ids.shape != labels.shape:
        raise ValueError(f"{ids.size} request ids for {labels.size} rows: one per row")
    _, inverse = np.unique(ids, return_inverse=True)
    cluster = inverse.reshape(-1).astype(np.int64)
    return Clustered(labels, scores, cluster, int(cluster.max()) + 1)


# From a sample, the function of a (resamples x clusters) count matrix giving the metric
# of every resample.
Counted = Callable[[NDArray[np.float64]], NDArray[np.float64]]
Resampled = Callable[[Clustered], Counted]


def _mean_of(rowwise: Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]], *,
             root: bool = False) -> Resampled:  # fmt: skip
    """A metric that is the (root of the) mean of a per-row figure."""

    def prepare(s: Clustered) -> Counted:
        per_row = np.asarray(rowwise(s.y, s.p), dtype=np.float64)
        sums = np.bincount(s.cluster, weights=per_row, minlength=s.clusters)
        sizes = s.sizes

        def values(counts: NDArray[np.float64]) -> NDArray[np.float64]:
            mean = (counts @ sums) / (counts @ sizes)
            return np.sqrt(mean) if root else mean

        return values

    return prepare


def _log_loss_rows(y: NDArray[Any], p: NDArray[Any]) -> NDArray[Any]:
    q = np.clip(p.astype(np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return np.asarray(-(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _calibration_error(s: Clustered) -> Counted:
    bins = stats.ECE_BINS
    index = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], s.p)
    cell = s.cluster * bins + index
    # Per request and bin: the observed minus the predicted sum, which adds up linearly.
    gap = np.bincount(cell, weights=s.y - s.p, minlength=s.clusters * bins)
    gap = gap.reshape(s.clusters, bins)
    sizes = s.sizes

    def values(counts: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(np.abs(counts @ gap).sum(axis=1) / (counts @ sizes))

    return values


def _roc_auc(s: Clustered) -> Counted:
    """Mann-Whitney with ties counting half: for every positive, the weight of negatives
    scored lower plus half the tied, over (positives x negatives), each row weighted by
    its request's count."""
    _, group = np.unique(s.p, return_inverse=True)
    group = group.reshape(-1)
    groups = int(group.max()) + 1
    positive = s.y == 1
    k = s.clusters
    pos_sizes = np.bincount(s.cluster[positive], minlength=k).astype(np.float64)
    neg_sizes = s.sizes - pos_sizes
    if k * k <= PAIRS_PER_ROW * s.y.size and k * groups <= CELLS:
        # Few requests for their rows: the (requests x requests) matrix of pair scores,
        # then one product per chunk of resamples; else a pass over the rows per chunk.
        cells = s.cluster * groups + group
        pos = np.bincount(cells[positive], minlength=k * groups).reshape(k, groups)
        neg = np.bincount(cells[~positive], minlength=k * groups).reshape(k, groups)
        above = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1] - pos  # positives scored higher
        pairs = (above + 0.5 * pos) @ neg.T.astype(np.float64)

        def values(counts: NDArray[np.float64]) -> NDArray[np.float64]:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.asarray(
                    ((counts @ pairs) * counts).sum(axis=1)
                    / ((counts @ pos_sizes) * (counts @ neg_sizes))
                )

        return values
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    cluster, pos_row = s.cluster[order], positive[order]

    def by_rows(counts: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(counts.shape[0])
        step = max(1, CELLS // s.y.size)
        for first in range(0, counts.shape[0], step):
            weights = counts[first : first + step][:, cluster]
            p = np.add.reduceat(np.where(pos_row, weights, 0.0), starts, axis=1)
            n = np.add.reduceat(np.where(pos_row, 0.0, weights), starts, axis=1)
            below = np.cumsum(n, axis=1) - n
            with np.errstate(invalid="ignore", divide="ignore"):
                out[first : first + step] = (p * (below + 0.5 * n)).sum(axis=1) / (
                    p.sum(axis=1) * n.sum(axis=1)
                )
        return out

    return by_rows


RESAMPLED: dict[Metric, Resampled] = {
    stats.roc_auc: _roc_auc,
    stats.log_loss: _mean_of(_log_loss_rows),
    stats.brier: _mean_of(lambda y, p: (p - y) ** 2),
    stats.expected_calibration_error: _calibration_error,
    stats.label_accuracy: _mean_of(lambda y, p: y == p),
    stats.rmse: _mean_of(lambda y, p: (p - y) ** 2, root=True),
    stats.mae: _mean_of(lambda y, p: np.abs(p - y)),
}


def request_counts(
    clusters: int, rounds: int, rng: np.random.Generator
) -> Iterator[NDArray[np.float64]]:
    """Chunks of the (resamples x requests) matrix: how often each resample drew each
    request, ``clusters`` draws with replacement per resample."""
    step = max(1, CELLS // clusters)
    for first in range(0, rounds, step):
        m = min(step, rounds - first)
        drawn = rng.integers(0, clusters, (m, clusters))
        drawn += np.arange(m)[:, None] * clusters
        yield (
            np.bincount(drawn.ravel(), minlength=m * clusters)
            .reshape(m, clusters)
            .astype(np.float64)
        )


def resample(
    metrics: Sequence[Metric], sample: Clustered, *, rounds: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """(rounds x metrics): each metric on each resample of ``sample``'s requests."""
    unknown = [getattr(m, "__name__", repr(m)) for m in metrics if m not in RESAMPLED]
    if unknown:
        raise ValueError(f"no request-resampled form of {', '.join(unknown)}")
    prepared = [RESAMPLED[m](sample) for m in metrics]
    return np.vstack(
        [
            np.column_stack([values(counts) for values in prepared])
            for counts in request_counts(sample.clusters, rounds, rng)
        ]
    )


def cluster_compare(
    metrics: Sequence[Metric],
    first: Clustered,
    second: Clustered,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    difference_confidence: float | None = None,
) -> list[Comparison]:
    """Each metric for two groups, and second minus first, resampling each group's
    requests independently (weighted routing sends each request to one side).

    The groups' own intervals are at ``confidence``; the differences' at
    ``difference_confidence`` (the same unless given: the caller's correction for the
    number of differences it judges).
    """
    _check_bootstrap(rounds, confidence)
    wide = confidence if difference_confidence is None else difference_confidence
    _check_bootstrap(rounds, wide)
    rng = np.random.default_rng(seed)
    a = resample(metrics, first, rounds=rounds, rng=rng)
    b = resample(metrics, second, rounds=rounds, rng=rng)
    out = []
    for k, metric in enumerate(metrics):
        e1, e2 = metric(first.y, first.p), metric(second.y, second.p)
        out.append(
            Comparison(
                _interval(e1, a[:, k], confidence),
                _interval(e2, b[:, k], confidence),
                _interval(e2 - e1, b[:, k] - a[:, k], wide),
            )
        )
    return out


def cluster_intervals(
    metrics: Sequence[Metric],
    sample: Clustered,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[Interval]:
    """Each metric's interval for one group, resampling its requests."""
    _check_bootstrap(rounds, confidence)
    values = resample(metrics, sample, rounds=rounds, rng=np.random.default_rng(seed))
    return [
        _interval(metric(sample.y, sample.p), values[:, k], confidence)
        for k, metric in enumerate(metrics)
    ]

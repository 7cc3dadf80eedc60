"""Bootstrap intervals of prediction metrics, for one group or two compared: numpy only.

Intervals are percentile intervals from seeded resampling with replacement; two groups
are resampled independently. A resample on which a metric is undefined (ROC AUC of a
one-class resample) is left out and counted. The outcomes tool reports every labelled
metric through this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serving.stats import Metric, Pairing, paired

DEFAULT_ROUNDS = 1000
DEFAULT_CONFIDENCE = 0.95


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

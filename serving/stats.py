"""Statistics for drift, canary and outcome analysis: numpy and the standard library only.

Training (reference histograms), the drift and outcomes tools and the canary analysis all
bin, compare and bootstrap through this one module, so a reference written at training
time is read back with exactly the binning that wrote it.

Population stability index (PSI)
    ``sum((a - e) * ln(a / e))`` over the reference's bins, ``e`` the reference proportion
    and ``a`` the observed one. Numbers: bin edges are the reference's deciles, taken
    as observed values (repeated edges of discrete data collapse into one bin); a bin
    holds its lower edge, and values below the first or above the last inner edge fall
    into the outer bins. Categories: one bin per category
    seen in the reference (or, for a categorical feature or a class label, per allowed
    value, strings and integers as requests send them), plus one bin for categories it
    never saw (reference share 0).
    An empty bin would make the logarithm infinite, so both proportions are floored at
    ``PSI_FLOOR`` (1e-4) first. Each term is >= 0 (``a - e`` and ``ln(a / e)`` share their
    sign), so PSI >= 0, and it is 0 only when every bin's shares agree.

Bootstrap intervals are percentile intervals from seeded resampling with replacement;
two groups are resampled independently. A resample on which a metric is undefined (ROC
AUC of a one-class resample) is left out and counted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

PSI_FLOOR = 1e-4
DEFAULT_BINS = 10
# Integer features with at most this many distinct reference values are categories: their
# quantile edges would collapse, and a new code (a fifth contract type) is drift to show.
MAX_CATEGORIES = 20
PSI_WATCH = 0.1
PSI_ALARM = 0.25
Z_95 = 1.959963984540054
ECE_BINS = 10
LOG_LOSS_EPS = 1e-15
DEFAULT_ROUNDS = 1000
DEFAULT_CONFIDENCE = 0.95

Kind = Literal["numeric", "categorical"]
Category = str | float
Verdict = Literal["stable", "watch", "drift"]
# Binary: labels 0/1 and probabilities; regression: targets and predicted values;
# multiclass (outcomes): true and answered class labels.
Metric = Callable[[NDArray[Any], NDArray[Any]], float]
Pairing = Literal["binary", "regression", "labels"]


# ---------------------------------------------------------------- histograms and PSI


@dataclass(frozen=True)
class Histogram:
    """A reference distribution: bins and the reference's share in each.

    numeric: ``edges`` are the quantile edges, first and last the reference's min and
    max (informational: values outside them fall into the outer bins).
    categorical: ``categories`` in order; ``proportions`` has one more entry, the share
    of categories the reference never saw (0 for the reference itself).
    """

    kind: Kind
    proportions: tuple[float, ...]
    count: int
    edges: tuple[float, ...] = ()
    # Numbers (integer codes, as the first references hold) or the values a categorical
    # feature or a class label takes in requests and answers (strings and integers).
    categories: tuple[Category, ...] = ()

    def bin_index(self, values: ArrayLike | Sequence[Category]) -> NDArray[np.int64]:
        if self.kind == "numeric":
            x = _finite_array(values, "values")
            # side="right": a value equal to an edge belongs to the bin above it, as the
            # reference's own values did when the proportions were counted.
            return np.searchsorted(np.asarray(self.edges[1:-1]), x, side="right").astype(np.int64)
        lookup = {category_key(category): index for index, category in enumerate(self.categories)}
        unseen = len(self.categories)
        items: list[Any] = (
            values.tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[arg-type]
        )
        if not all(_is_category(v) for v in items):
            raise ValueError("values must be finite numbers or strings")
        return np.array([lookup.get(category_key(v), unseen) for v in items], dtype=np.int64)

    def proportions_of(self, values: ArrayLike) -> NDArray[np.float64]:
        """The share of ``values`` in each of this histogram's bins."""
        index = self.bin_index(values)
        if index.size == 0:
            raise ValueError("no values to compare with the reference")
        counts = np.bincount(index, minlength=len(self.proportions))
        return counts.astype(np.float64) / index.size

    def psi(self, values: ArrayLike, floor: float = PSI_FLOOR) -> float:
        return psi(self.proportions, self.proportions_of(values), floor=floor)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count}
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["categories"] = list(self.categories)
        out["proportions"] = list(self.proportions)
        return out

    @classmethod
    def from_json(cls, data: object, where: str = "histogram") -> Histogram:
        """Read ``to_json``'s output back; ``ValueError`` names ``where`` and the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be an object, got {type(data).__name__}")
        kind = data.get("kind")
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"{where}.kind is {kind!r}: expected 'numeric' or 'categorical'")
        proportions = _number_list(data.get("proportions"), f"{where}.proportions")
        count = data.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"{where}.count must be a positive integer, got {count!r}")
        if any(p < 0 for p in proportions) or not math.isclose(sum(proportions), 1.0, abs_tol=1e-6):
            raise ValueError(f"{where}.proportions must be >= 0 and sum to 1, got {proportions}")
        if kind == "numeric":
            edges = _number_list(data.get("edges"), f"{where}.edges")
            if len(edges) != len(proportions) + 1 or any(
                b <= a for a, b in itertools.pairwise(edges[1:-1])
            ):
                raise ValueError(
                    f"{where}.edges must be {len(proportions) + 1} increasing numbers "
                    f"(one more than the proportions), got {edges}"
                )
            return cls("numeric", tuple(proportions), count, edges=tuple(edges))
        categories = _category_list(data.get("categories"), f"{where}.categories")
        keys = {category_key(c) for c in categories}
        if len(categories) + 1 != len(proportions) or len(keys) != len(categories):
            raise ValueError(
                f"{where}: {len(categories)} distinct categories need {len(categories) + 1} "
                f"proportions (the last for unseen ones), got {len(proportions)}"
            )
        return cls("categorical", tuple(proportions), count, categories=tuple(categories))


def numeric_histogram(values: ArrayLike, bins: int = DEFAULT_BINS) -> Histogram:
    """Quantile bins of ``values`` (deciles by default); tied quantiles collapse."""
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    x = _finite_array(values, "values")
    if x.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    # Edges are observed values (inverted CDF, not interpolated), and a bin [e_i, e_i+1)
    # holds its own lower edge: no reference bin is empty by construction.
    quantiles = np.quantile(x, np.linspace(0.0, 1.0, bins + 1), method="inverted_cdf")
    inner = np.unique(quantiles[1:-1])
    inner = inner[inner > x.min()]
    edges = (float(x.min()), *(float(e) for e in inner), float(x.max()))
    counts = np.bincount(np.searchsorted(inner, x, side="right"), minlength=inner.size + 1)
    shares = tuple(float(c) / x.size for c in counts)
    return Histogram("numeric", shares, int(x.size), edges=edges)


def value_histogram(values: Sequence[Category], allowed: Sequence[Category]) -> Histogram:
    """One bin per allowed value, in the given order (a value never seen in ``values``
    keeps its bin at share 0), plus a last bin for values not allowed. Strings and numbers
    are different values: the string "1" is not the integer 1."""
    if not allowed:
        raise ValueError("a value histogram needs at least one allowed value")
    probe = Histogram("categorical", (1.0, *([0.0] * len(allowed))), 1, categories=tuple(allowed))
    index = probe.bin_index(values)
    if index.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    counts = np.bincount(index, minlength=len(allowed) + 1)
    shares = tuple(float(c) / index.size for c in counts)
    return Histogram("categorical", shares, int(index.size), categories=tuple(allowed))


def categorical_histogram(values: ArrayLike) -> Histogram:
    """One bin per distinct value (sorted), plus a last bin for values never seen."""
    x = _finite_array(values, "values")
    if x.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    categories, counts = np.unique(x, return_counts=True)
    shares = (*(float(c) / x.size for c in counts), 0.0)
    return Histogram(
        "categorical", shares, int(x.size), categories=tuple(float(c) for c in categories)
    )


def reference_histogram(
    values: ArrayLike, *, integer: bool, bins: int = DEFAULT_BINS, kind: Kind | None = None
) -> Histogram:
    """Categories for integer data with few distinct values, quantile bins otherwise."""
    x = _finite_array(values, "values")
    if kind is None:
        few = np.unique(x).size <= MAX_CATEGORIES
        kind = "categorical" if integer and few else "numeric"
    return categorical_histogram(x) if kind == "categorical" else numeric_histogram(x, bins)


def psi(expected: ArrayLike, actual: ArrayLike, *, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two proportion vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"proportions must be two vectors of one length, got {e.shape}, {a.shape}")
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    e, a = np.maximum(e, floor), np.maximum(a, floor)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_of_samples(
    reference: ArrayLike, actual: ArrayLike, *, bins: int = DEFAULT_BINS, kind: Kind = "numeric"
) -> float:
    """PSI of ``actual`` against bins taken from ``reference``."""
    histogram = (
        numeric_histogram(reference, bins)
        if kind == "numeric"
        else categorical_histogram(reference)
    )
    return histogram.psi(actual)


def psi_verdict(value: float, *, watch: float = PSI_WATCH, alarm: float = PSI_ALARM) -> Verdict:
    """stable below ``watch``, watch from ``watch`` up to ``alarm``, drift above ``alarm``."""
    check_thresholds(watch, alarm)
    if value > alarm:
        return "drift"
    return "watch" if value >= watch else "stable"


def check_thresholds(watch: float, alarm: float) -> None:
    if not (math.isfinite(watch) and math.isfinite(alarm) and 0 < watch <= alarm):
        raise ValueError(
            f"PSI thresholds must satisfy 0 < watch <= alarm, got watch={watch}, alarm={alarm}"
        )


# ---------------------------------------------------------------- proportions


@dataclass(frozen=True)
class ProportionTest:
    difference: float  # second rate minus first
    z: float
    p_value: float


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (0, 1) for n = 0."""
    _check_count(successes, n)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clamped: at p = 0 or 1 rounding can put the bound a hair past the estimate.
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> ProportionTest:
    """Pooled two-sided z-test of ``x1/n1`` against ``x2/n2``."""
    _check_count(x1, n1)
    _check_count(x2, n2)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"both samples need at least one observation, got n1={n1}, n2={n2}")
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        # All successes or all failures on both sides: the rates are identical.
        return ProportionTest(0.0, 0.0, 1.0)
    z = (p2 - p1) / se
    return ProportionTest(p2 - p1, z, math.erfc(abs(z) / math.sqrt(2)))


def _check_count(successes: int, n: int) -> None:
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")


# ---------------------------------------------------------------- summaries and metrics


def percentiles(values: ArrayLike, qs: Sequence[float] = (5, 50, 95)) -> dict[float, float]:
    """Percentiles (linear interpolation, numpy's default) keyed by ``q``."""
    x = _finite_array(values, "values")
    if x.size == 0:
        raise ValueError("no values to take percentiles of")
    return {q: float(v) for q, v in zip(qs, np.percentile(x, list(qs)), strict=True)}


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN with one class only."""
    labels, scores = _labels_and_scores(y, p)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average rank of each distinct score: ranks first..last of its tie block, averaged.
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0
    rank_sum = float(average_rank[inverse][labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15]."""
    labels, scores = _labels_and_scores(y, p)
    q = np.clip(scores, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q)))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    labels, scores = _labels_and_scores(y, p)
    return float(np.mean((scores - labels) ** 2))


def expected_calibration_error(y: ArrayLike, p: ArrayLike, *, bins: int = ECE_BINS) -> float:
    """Row-weighted mean |observed rate - mean probability| over equal-width bins.

    Bins as scikit-learn's ``calibration_curve(strategy="uniform")`` draws them:
    ``[0, 0.1], (0.1, 0.2], ..., (0.9, 1]``.
    """
    labels, scores = _labels_and_scores(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], scores)
    total = np.bincount(index, minlength=bins).astype(np.float64)
    observed = np.bincount(index, weights=labels, minlength=bins)
    predicted = np.bincount(index, weights=scores, minlength=bins)
    return float(np.sum(np.abs(observed - predicted)) / total.sum())


def multiclass_log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Mean negative log-likelihood of each row's true class; ``y`` holds column indices
    of ``p`` (n, k), probabilities clipped to [1e-15, 1 - 1e-15]."""
    index, rows = _indices_and_rows(y, p)
    chosen = rows[np.arange(index.size), index]
    return float(-np.mean(np.log(np.clip(chosen, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS))))


def roc_auc_ovr(y: ArrayLike, p: ArrayLike) -> float:
    """Macro one-vs-rest ROC AUC (scikit-learn's ``multi_class="ovr", average="macro"``):
    the unweighted mean over columns; NaN when a class is absent from ``y``."""
    index, rows = _indices_and_rows(y, p)
    return float(
        np.mean(
            [roc_auc((index == k).astype(np.float64), rows[:, k]) for k in range(rows.shape[1])]
        )
    )


def multiclass_accuracy(y: ArrayLike, p: ArrayLike) -> float:
    """Share of rows whose highest probability (first on ties) is the true class."""
    index, rows = _indices_and_rows(y, p)
    return float(np.mean(np.argmax(rows, axis=1) == index))


def rmse(y: ArrayLike, predicted: ArrayLike) -> float:
    truth, values = _values_pair(y, predicted)
    return float(np.sqrt(np.mean((values - truth) ** 2)))


def mae(y: ArrayLike, predicted: ArrayLike) -> float:
    truth, values = _values_pair(y, predicted)
    return float(np.mean(np.abs(values - truth)))


def r2(y: ArrayLike, predicted: ArrayLike) -> float:
    """Coefficient of determination; NaN when ``y`` is constant (no variance to explain)."""
    truth, values = _values_pair(y, predicted)
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0:
        return math.nan
    return 1.0 - float(np.sum((truth - values) ** 2)) / total


def _indices_and_rows(y: ArrayLike, p: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    rows = np.asarray(p, dtype=np.float64)
    index = np.asarray(y)
    if rows.ndim != 2 or index.shape != (rows.shape[0],) or rows.shape[1] < 2:
        raise ValueError(
            f"expected class indices (n,) and probability rows (n, k >= 2), got "
            f"{index.shape} and {rows.shape}"
        )
    if index.size == 0:
        raise ValueError("no labelled predictions")
    if (
        not np.issubdtype(index.dtype, np.integer)
        or index.min() < 0
        or index.max() >= rows.shape[1]
    ):
        raise ValueError(f"class indices must be integers 0 to {rows.shape[1] - 1}")
    if not np.all(np.isfinite(rows)) or not np.all((rows >= 0) & (rows <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return index.astype(np.int64), rows


def _values_pair(
    y: ArrayLike, predicted: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    truth = np.asarray(y, dtype=np.float64)
    values = np.asarray(predicted, dtype=np.float64)
    if truth.shape != values.shape or truth.ndim != 1:
        raise ValueError(f"targets and predictions differ in shape: {truth.shape}, {values.shape}")
    if truth.size == 0:
        raise ValueError("no labelled predictions")
    if not (np.all(np.isfinite(truth)) and np.all(np.isfinite(values))):
        raise ValueError("targets and predictions must be finite numbers")
    return truth, values


def _labels_and_scores(
    y: ArrayLike, p: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    labels = np.asarray(y, dtype=np.float64)
    scores = np.asarray(p, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and probabilities differ in shape: {labels.shape}, {scores.shape}"
        )
    if labels.size == 0:
        raise ValueError("no labelled predictions")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be 0 or 1")
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return labels, scores


# ---------------------------------------------------------------- bootstrap


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
    labels, scores = _pair(pairing, y, p)
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
    y1, p1 = _pair(pairing, *first)
    y2, p2 = _pair(pairing, *second)
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


def label_accuracy(y: NDArray[Any], answered: NDArray[Any]) -> float:
    """Share of rows whose answered class label is the true one."""
    return float(np.mean(y == answered))


def _pair(pairing: Pairing, y: ArrayLike, p: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    if pairing == "binary":
        return _labels_and_scores(y, p)
    if pairing == "regression":
        return _values_pair(y, p)
    truth = np.asarray(y, dtype=object)
    answered = np.asarray(p, dtype=object)
    if truth.shape != answered.shape or truth.ndim != 1:
        raise ValueError(f"labels differ in shape: {truth.shape}, {answered.shape}")
    if truth.size == 0:
        raise ValueError("no labelled predictions")
    return truth, answered


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


# ---------------------------------------------------------------- helpers


def _finite_array(values: ArrayLike, what: str) -> NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} must be finite numbers")
    return x


def category_key(value: Category) -> tuple[str, str | float]:
    """Strings and numbers never match each other; 1 and 1.0 are one number."""
    return ("str", value) if isinstance(value, str) else ("num", float(value))


def _is_category(value: object) -> bool:
    if isinstance(value, str):
        return True
    numeric = isinstance(value, int | float | np.integer | np.floating)
    return numeric and not isinstance(value, bool) and math.isfinite(value)  # type: ignore[arg-type]


def _category_list(value: object, where: str) -> list[Category]:
    if not isinstance(value, list) or not all(_is_category(v) for v in value):
        raise ValueError(f"{where} must be a list of finite numbers or strings, got {value!r}")
    return [v if isinstance(v, str) else float(v) for v in value]


def _number_list(value: object, where: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise ValueError(f"{where} must be a list of finite numbers, got {value!r}")
    return [float(v) for v in value]

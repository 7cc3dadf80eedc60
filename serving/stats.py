"""Point statistics: percentiles, proportion intervals and tests, and the metrics of
labelled predictions (ROC AUC, log loss, Brier, calibration error, accuracy, RMSE, MAE,
R^2): numpy and the standard library only.

Training's golden metrics, the canary analysis and the outcomes tool compute through this
one module, each metric checked here against scikit-learn's and scipy's in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from serving.golden_metrics import LOG_LOSS_EPS

Z_95 = 1.959963984540054
ECE_BINS = 10

# A metric of (truth, answer) arrays: binary labels 0/1 and probabilities; regression
# targets and predicted values; multiclass (outcomes) true and answered class labels.
Metric = Callable[[NDArray[Any], NDArray[Any]], float]
# What a metric's two arrays hold, as ``paired`` checks them.
Pairing = Literal["binary", "regression", "labels"]
# A pairing's check of its two arrays: what is wrong with them, or None.
PairCheck = Callable[[NDArray[Any], NDArray[Any]], str | None]


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
    x = finite_array(values, "values")
    if x.size == 0:
        raise ValueError("no values to take percentiles of")
    return {q: float(v) for q, v in zip(qs, np.percentile(x, list(qs)), strict=True)}


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN with one class only."""
    labels, scores = paired("binary", y, p)
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
    labels, scores = paired("binary", y, p)
    q = np.clip(scores, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q)))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    labels, scores = paired("binary", y, p)
    return float(np.mean((scores - labels) ** 2))


def expected_calibration_error(y: ArrayLike, p: ArrayLike, *, bins: int = ECE_BINS) -> float:
    """Row-weighted mean |observed rate - mean probability| over equal-width bins.

    Bins as scikit-learn's ``calibration_curve(strategy="uniform")`` draws them:
    ``[0, 0.1], (0.1, 0.2], ..., (0.9, 1]``.
    """
    labels, scores = paired("binary", y, p)
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
    truth, values = paired("regression", y, predicted)
    return float(np.sqrt(np.mean((values - truth) ** 2)))


def mae(y: ArrayLike, predicted: ArrayLike) -> float:
    truth, values = paired("regression", y, predicted)
    return float(np.mean(np.abs(values - truth)))


def r2(y: ArrayLike, predicted: ArrayLike) -> float:
    """Coefficient of determination; NaN when ``y`` is constant (no variance to explain)."""
    truth, values = paired("regression", y, predicted)
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


def label_accuracy(y: NDArray[Any], answered: NDArray[Any]) -> float:
    """Share of rows whose answered class label is the true one."""
    return float(np.mean(y == answered))


def paired(pairing: Pairing, y: ArrayLike, p: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """``y`` and ``p`` as arrays of one length (at least one row), checked as ``pairing``
    says they are: binary labels 0 or 1 and probabilities in [0, 1]; regression targets
    and predicted values, finite; true and answered class labels, any values."""
    what, dtype, problem = _PAIRINGS[pairing]
    first = np.asarray(y, dtype=dtype)
    second = np.asarray(p, dtype=dtype)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"{what} differ in shape: {first.shape}, {second.shape}")
    if first.size == 0:
        raise ValueError("no labelled predictions")
    message = problem(first, second)
    if message is not None:
        raise ValueError(message)
    return first, second


def _binary_problem(labels: NDArray[Any], scores: NDArray[Any]) -> str | None:
    if not np.all((labels == 0) | (labels == 1)):
        return "labels must be 0 or 1"
    if not np.all((scores >= 0) & (scores <= 1)):
        return "probabilities must lie in [0, 1]"
    return None


def _regression_problem(truth: NDArray[Any], values: NDArray[Any]) -> str | None:
    if not (np.all(np.isfinite(truth)) and np.all(np.isfinite(values))):
        return "targets and predictions must be finite numbers"
    return None


def _any_labels(truth: NDArray[Any], answered: NDArray[Any]) -> str | None:
    return None


# What each pairing's arrays are called in a message, their dtype, and their check.
_PAIRINGS: dict[Pairing, tuple[str, DTypeLike, PairCheck]] = {
    "binary": ("labels and probabilities", np.float64, _binary_problem),
    "regression": ("targets and predictions", np.float64, _regression_problem),
    "labels": ("labels", object, _any_labels),
}


def finite_array(values: ArrayLike, what: str) -> NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} must be finite numbers")
    return x

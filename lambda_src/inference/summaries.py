"""What the prediction log line and EMF keep of a batch's answers: bounded, whatever its size.

The answer carries every probability; encoding them twice more (log line, EMF) was a third
of a large batch's handler time and most of its log bytes. The log line keeps exact
aggregates (what per-version comparisons need) and the first rows; EMF keeps at most one
document's worth of values, the batch's evenly spaced order statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from inference.metrics import MAX_VALUES_PER_DOCUMENT

# Summaries are for comparing versions, not reproducing answers: 6 decimals is plenty.
DECIMALS = 6
QUANTILES = {"probability_p10": 0.1, "probability_p50": 0.5, "probability_p90": 0.9}


def log_fields(probabilities: NDArray[np.float64], labels: NDArray[np.bool_]) -> dict[str, object]:
    """Aggregates over every row: positives and mean always, spread for a batch of 2 or more.

    ``sum(positives) / sum(rows)`` and ``sum(probability_mean * rows) / sum(rows)`` over
    many lines are the exact positive rate and mean probability of a version.
    """
    positives = int(labels[0]) if labels.shape[0] == 1 else int(np.count_nonzero(labels))
    return {"positives": positives, **spread(probabilities, "probability")}


def spread(
    values: NDArray[np.float64],
    prefix: str,
    *,
    quantiles: dict[str, float] | None = None,
    digits: int | None = DECIMALS,
) -> dict[str, object]:
    """``<prefix>_mean`` always; min, max and ``quantiles`` (default p10/p50/p90) for 2 or
    more values. Rounded to ``digits`` decimals, or (None) to 7 significant digits for
    values of any scale (a regression's)."""
    chosen = QUANTILES if quantiles is None else quantiles
    rounded = _rounder(digits)
    if values.shape[0] == 1:
        # One record: the numbers are the answer itself; no numpy reductions for it.
        return {f"{prefix}_mean": rounded(float(values[0]))}
    ordered = np.sort(values).tolist()
    fields: dict[str, object] = {
        f"{prefix}_mean": rounded(float(values.mean())),
        f"{prefix}_min": rounded(ordered[0]),
        f"{prefix}_max": rounded(ordered[-1]),
    }
    for name, q in chosen.items():
        fields[f"{prefix}_{name.rpartition('_')[2]}"] = rounded(_quantile(ordered, q))
    return fields


def _rounder(digits: int | None) -> Callable[[float], float]:
    if digits is not None:
        return lambda value: round(value, digits)
    return lambda value: float(f"{value:.7g}")


def _quantile(ordered: list[float], q: float) -> float:
    """numpy's default ("linear") quantile of sorted values, without np.quantile's ~25 us."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def metric_values(
    probabilities: NDArray[np.float64], limit: int = MAX_VALUES_PER_DOCUMENT
) -> list[float]:
    """Every probability up to ``limit`` rows; beyond, ``limit`` evenly spaced order statistics.

    The value at rank ``(2i + 1) * n // (2 * limit)`` of the sorted batch stands for the
    i-th ``1/limit`` of its rows, so the batch's distribution (and, closely, its mean) is
    kept in one EMF document; such a batch weighs ``limit`` values in the metric's
    statistics, not ``n``.
    """
    rows = probabilities.shape[0]
    if rows <= limit:
        return probabilities.tolist()  # type: ignore[no-any-return]
    ranks = (2 * np.arange(limit) + 1) * rows // (2 * limit)
    return np.sort(probabilities)[ranks].tolist()  # type: ignore[no-any-return]

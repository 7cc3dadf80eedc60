"""The traffic gate's quality metrics, in pure Python: plain functions of lists.

Binary (log loss, Brier score, ROC AUC), multiclass (log loss, macro one-vs-rest ROC AUC,
accuracy) and regression (RMSE, MAE, R2), and which of them the gate reports for each task
(``BY_TASK``). The deployed gate runs on Lambda's Python
runtime, which has no numpy, so these are written with the standard library only; they
agree with the numpy versions in ``serving.stats`` (tests/infra/test_traffic_gate.py
holds them equal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

LOG_LOSS_EPS = 1e-15


def log_loss(y: Sequence[int], p: Sequence[float]) -> float:
    total = 0.0
    for label, probability in zip(y, p, strict=True):
        q = min(max(probability, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS)
        total -= math.log(q) if label == 1 else math.log(1 - q)
    return total / len(y)


def brier(y: Sequence[int], p: Sequence[float]) -> float:
    return sum((probability - label) ** 2 for label, probability in zip(y, p, strict=True)) / len(y)


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """Mann-Whitney with average ranks for ties; NaN when only one class is present."""
    positives = sum(1 for label in y if label == 1)
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = sorted(range(len(p)), key=lambda i: p[i])
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and p[order[end + 1]] == p[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1
        rank_sum += average_rank * sum(1 for i in order[start : end + 1] if y[i] == 1)
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def multiclass_log_loss(y: Sequence[int], rows: Sequence[Sequence[float]]) -> float:
    """``y``: each row's class index."""
    total = 0.0
    for index, row in zip(y, rows, strict=True):
        total -= math.log(min(max(row[index], LOG_LOSS_EPS), 1 - LOG_LOSS_EPS))
    return total / len(y)


def roc_auc_ovr(y: Sequence[int], rows: Sequence[Sequence[float]]) -> float:
    """Macro one-vs-rest: the unweighted mean of each class's ROC AUC against the rest."""
    classes = len(rows[0])
    return (
        sum(roc_auc([int(i == k) for i in y], [row[k] for row in rows]) for k in range(classes))
        / classes
    )


def accuracy(y: Sequence[int], rows: Sequence[Sequence[float]]) -> float:
    # max() keeps the first of tied columns, as the handler's argmax does.
    picked = [max(range(len(row)), key=row.__getitem__) for row in rows]
    return sum(a == b for a, b in zip(y, picked, strict=True)) / len(y)


def rmse(y: Sequence[float], values: Sequence[float]) -> float:
    return math.sqrt(sum((v - t) ** 2 for t, v in zip(y, values, strict=True)) / len(y))


def mae(y: Sequence[float], values: Sequence[float]) -> float:
    return sum(abs(v - t) for t, v in zip(y, values, strict=True)) / len(y)


def r2(y: Sequence[float], values: Sequence[float]) -> float:
    mean = sum(y) / len(y)
    total = sum((t - mean) ** 2 for t in y)
    if total == 0:
        return math.nan
    return 1 - sum((t - v) ** 2 for t, v in zip(y, values, strict=True)) / total


# The gate's figures for each task: name -> metric of (truth, outputs). Classifiers' truth
# is each row's class index; their outputs are P(classes[1]) (binary) or probability rows.
BY_TASK: dict[str, dict[str, Callable[[Any, Any], float]]] = {
    "binary": {"log_loss": log_loss, "roc_auc": roc_auc, "brier_score": brier},
    "multiclass": {
        "log_loss": multiclass_log_loss,
        "roc_auc_ovr": roc_auc_ovr,
        "accuracy": accuracy,
    },
    "regression": {"rmse": rmse, "mae": mae, "r2": r2},
}

"""The quality gate at training: a model that predicts worse than knowing nothing, or worse
than the version before it, is refused before anything is written.

A binary classifier passes when, on the holdout:
- its log loss is below the base-rate predictor's (the training rows' positive rate given
  as the probability of every row), and
- its ROC AUC is above 0.5 (chance);
and, when the model already has a version, that version's log loss on the same holdout
is not better by more than ``LOG_LOSS_TOLERANCE`` and its ROC AUC not higher by more than
``ROC_AUC_TOLERANCE``. A regression beyond those is written only with a reason
(``--accept-regression``), which goes into the manifest with the figures.

``passed(manifest)`` is what "the newest version" means for ``make demo`` and ``make
serve``. This module needs only numpy, so that the local tools can read manifests with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MANIFEST_KEY = "quality_gate"
LOG_LOSS_TOLERANCE = 0.02
ROC_AUC_TOLERANCE = 0.01
PASSED = "passed"
ACCEPTED_REGRESSION = "accepted-regression"
REFUSED = "refused"


class QualityGateError(ValueError):
    """The model is refused; the message names each metric, its value and what was needed."""


@dataclass(frozen=True)
class Previous:
    """The model's newest existing version, scored on the new version's holdout."""

    version: str
    metrics: Mapping[str, float]


def base_rate_log_loss(
    y_train: NDArray[np.int64], y_test: NDArray[np.int64]
) -> tuple[float, float]:
    """``(rate, log loss)`` of predicting the training positive rate for every holdout row."""
    rate = float(np.mean(y_train))
    positives = float(np.mean(y_test))
    loss = -(positives * math.log(rate) + (1.0 - positives) * math.log(1.0 - rate))
    return rate, loss


def check(
    *,
    model: str,
    version: str,
    metrics: Mapping[str, float],
    base_rate: tuple[float, float],
    previous: Previous | None,
    accept_regression: str | None = None,
    enforce: bool = True,
) -> dict[str, Any]:
    """The manifest's gate record; raises ``QualityGateError`` when the model is refused.

    ``enforce=False`` records a refusal instead of raising it: for a model meant to be bad
    (a test of what comes after training), never for a model meant to serve.
    """
    rate, base_loss = base_rate
    record: dict[str, Any] = {
        "status": PASSED,
        "base_rate": {"rate": round(rate, 6), "log_loss": round(base_loss, 6)},
        "previous": None,
    }
    if previous is not None:
        record["previous"] = {
            "version": previous.version,
            "log_loss": previous.metrics["log_loss"],
            "roc_auc": previous.metrics["roc_auc"],
            "tolerance": {"log_loss": LOG_LOSS_TOLERANCE, "roc_auc": ROC_AUC_TOLERANCE},
        }
    # Not overridable by a reason: such a model carries no information about the label.
    refusals = _below_chance(metrics, rate, base_loss)
    regressions = _regressions(metrics, previous) if previous is not None else []
    if regressions and not accept_regression:
        regressions[-1] += (
            '. Pass --accept-regression "reason" to write it anyway (the reason and these '
            "figures go into the manifest)"
        )
        refusals += regressions
    if refusals:
        if enforce:
            raise QualityGateError(
                f"{model} {version} refused by the quality gate: " + "; ".join(refusals)
            )
        record["status"] = REFUSED
        record["refused"] = refusals
    elif regressions:
        record["status"] = ACCEPTED_REGRESSION
        record["accepted_regression"] = {"reason": accept_regression, "regressions": regressions}
    return record


def _below_chance(metrics: Mapping[str, float], rate: float, base_loss: float) -> list[str]:
    found = []
    if not metrics["log_loss"] < base_loss:
        found.append(
            f"holdout log loss {metrics['log_loss']:.4f} is not better than the base-rate "
            f"predictor's {base_loss:.4f} (predicting the training positive rate {rate:.4f} "
            "for every row); it must be lower"
        )
    if not metrics["roc_auc"] > 0.5:
        found.append(
            f"holdout ROC AUC {metrics['roc_auc']:.4f} is no better than chance; it must be "
            "above 0.5"
        )
    return found


def _regressions(metrics: Mapping[str, float], previous: Previous) -> list[str]:
    found = []
    loss_increase = metrics["log_loss"] - previous.metrics["log_loss"]
    if loss_increase > LOG_LOSS_TOLERANCE:
        found.append(
            f"holdout log loss {metrics['log_loss']:.4f} is worse than {previous.version}'s "
            f"{previous.metrics['log_loss']:.4f} on the same rows by {loss_increase:.4f} "
            f"(tolerance {LOG_LOSS_TOLERANCE})"
        )
    auc_drop = previous.metrics["roc_auc"] - metrics["roc_auc"]
    if auc_drop > ROC_AUC_TOLERANCE:
        found.append(
            f"holdout ROC AUC {metrics['roc_auc']:.4f} is lower than {previous.version}'s "
            f"{previous.metrics['roc_auc']:.4f} on the same rows by {auc_drop:.4f} "
            f"(tolerance {ROC_AUC_TOLERANCE})"
        )
    return found


def passed(manifest: Mapping[str, Any]) -> bool:
    """Whether a version counts as passed: the default that demo and serve pick.

    A version written before the gate existed has no record; it counts as passed when its
    recorded metrics beat chance and the base rate of its data (the positive rate of the
    whole data set stands in for the training rows', which the stratified split keeps).
    """
    record = manifest.get(MANIFEST_KEY)
    if record is not None:
        return bool(record.get("status") == PASSED)
    metrics = manifest.get("metrics", {})
    rate = manifest.get("data_fingerprint", {}).get("positive_rate")
    if "log_loss" not in metrics or "roc_auc" not in metrics or rate is None:
        return True
    if not 0.0 < rate < 1.0:
        return False
    entropy = -(rate * math.log(rate) + (1.0 - rate) * math.log(1.0 - rate))
    return bool(metrics["log_loss"] < entropy and metrics["roc_auc"] > 0.5)


def describe(manifest: Mapping[str, Any]) -> str:
    """One phrase for listings: how the version stands with the gate."""
    record = manifest.get(MANIFEST_KEY)
    if record is None:
        verdict = "passes" if passed(manifest) else "fails"
        return f"gate: trained before the gate, {verdict} its base-rate check"
    base = record["base_rate"]["log_loss"]
    previous = record.get("previous")
    against = f", compared with {previous['version']}" if previous else ""
    if record["status"] == REFUSED:
        return f"gate: REFUSED, written without the gate ({'; '.join(record['refused'])})"
    if record["status"] == ACCEPTED_REGRESSION:
        reason = record["accepted_regression"]["reason"]
        return f"gate: regression accepted ({reason!r}; base-rate log loss {base:.4f}{against})"
    return f"gate: passed (base-rate log loss {base:.4f}{against})"

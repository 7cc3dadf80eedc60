"""The quality gate at training and packaging: a model that predicts worse than knowing
nothing, or worse than the version before it, is refused before anything is written.

On the holdout (the labelled data, when packaging):
- a classifier's log loss must be below the prior's (the training rows' class frequencies
  given as the probabilities of every row: the base rate, for a binary model), and its ROC
  AUC (macro one-vs-rest for multiclass) above 0.5 (chance);
- a regressor's RMSE must be below that of predicting the training mean for every row;
and, when the model already has a version, that version's figures on the same holdout
must not be better by more than the tolerances below. A regression beyond those is
written only with a reason (``--accept-regression``), which goes into the manifest with
the figures.

``passed(manifest)`` is what "the newest version" means for ``make demo`` and ``make
serve``. This module needs only numpy, so that the local tools can read manifests with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MANIFEST_KEY = "quality_gate"
LOG_LOSS_TOLERANCE = 0.02
ROC_AUC_TOLERANCE = 0.01
# RMSE has the label's unit: its tolerance is a fraction of the previous version's RMSE.
RMSE_RELATIVE_TOLERANCE = 0.02
PASSED = "passed"
ACCEPTED_REGRESSION = "accepted-regression"
REFUSED = "refused"
# Packaged without labelled data: nothing to judge by, so never picked as "newest".
NOT_CHECKED = "not-checked"
AUC_KEY = {"binary": "roc_auc", "multiclass": "roc_auc_ovr"}


class QualityGateError(ValueError):
    """The model is refused; the message names each metric, its value and what was needed."""


# The comparison with the previous version needs this many holdout rows that neither
# version trained on, and MIN_FRESH_PER_CLASS of every class: the log loss of two honest
# retrains differs per row with a standard deviation of about 0.24 (churn, v1 on 20,000
# rows and v2 on those plus 5,000, measured), so on 500 rows the standard error of the
# mean difference is 0.011, about half the 0.02 tolerance; on fewer the tolerance is
# inside the noise. A ROC AUC needs both classes (and means little with fewer than 10).
MIN_FRESH_ROWS = 500
MIN_FRESH_PER_CLASS = 10


@dataclass(frozen=True)
class Previous:
    """The model's newest existing version, scored on the new version's holdout.

    ``rows``: how many holdout rows it was scored on, those that neither version trained
    on (None: the whole holdout, a record of before fingerprints); ``dropped``: the rows
    left out; ``candidate``: the new version's metrics on those same rows (None: its
    holdout metrics). ``not_compared``: why the two were not compared at all (too few
    fresh rows, no fingerprint): the gate then neither passes nor refuses on it."""

    version: str
    metrics: Mapping[str, float]
    candidate: Mapping[str, float] | None = None
    rows: int | None = None
    dropped: int = 0
    not_compared: str | None = None


def base_rate_log_loss(
    y_train: NDArray[np.int64], y_test: NDArray[np.int64]
) -> tuple[float, float]:
    """``(rate, log loss)`` of predicting the training positive rate for every holdout row."""
    rate = float(np.mean(y_train))
    positives = float(np.mean(y_test))
    loss = -(positives * math.log(rate) + (1.0 - positives) * math.log(1.0 - rate))
    return rate, loss


def baseline(
    task: str, y_train: NDArray[Any], y_test: NDArray[Any], classes: Sequence[Any] | None
) -> dict[str, Any]:
    """The know-nothing predictor's figures on the holdout, as the manifest records them."""
    if task == "regression":
        mean = float(np.mean(y_train))
        rmse = float(np.sqrt(np.mean((np.asarray(y_test, dtype=np.float64) - mean) ** 2)))
        return {"mean": round(mean, 6), "rmse": round(rmse, 6)}
    if task == "binary":
        positive = np.asarray(y_train) == (classes or [0, 1])[1]
        rate, loss = base_rate_log_loss(
            positive.astype(np.int64), (np.asarray(y_test) == (classes or [0, 1])[1]).astype(int)
        )
        return {"rate": round(rate, 6), "log_loss": round(loss, 6)}
    rates = {str(c): float(np.mean(np.asarray(y_train) == c)) for c in classes or ()}
    loss = -sum(
        float(np.mean(np.asarray(y_test) == c)) * math.log(rates[str(c)]) for c in classes or ()
    )
    return {"class_rates": {k: round(v, 6) for k, v in rates.items()}, "log_loss": round(loss, 6)}


def check(
    *,
    model: str,
    version: str,
    metrics: Mapping[str, float],
    base_rate: Mapping[str, Any],
    previous: Previous | None,
    task: str = "binary",
    accept_regression: str | None = None,
    enforce: bool = True,
) -> dict[str, Any]:
    """The manifest's gate record; raises ``QualityGateError`` when the model is refused.

    ``base_rate`` is ``baseline(...)``. ``enforce=False`` records a refusal instead of
    raising it: for a model meant to be bad (a test of what comes after training), never
    for a model meant to serve.
    """
    record: dict[str, Any] = {
        "status": PASSED,
        "base_rate" if task != "regression" else "baseline": dict(base_rate),
        "previous": None,
    }
    if previous is not None and previous.not_compared is not None:
        record["previous"] = {
            "version": previous.version,
            "compared": False,
            "reason": previous.not_compared,
        }
        previous = None
    elif previous is not None:
        keys = ("rmse",) if task == "regression" else ("log_loss", AUC_KEY[task])
        tolerance: dict[str, float] = (
            {"rmse_relative": RMSE_RELATIVE_TOLERANCE}
            if task == "regression"
            else {"log_loss": LOG_LOSS_TOLERANCE, AUC_KEY[task]: ROC_AUC_TOLERANCE}
        )
        record["previous"] = {
            "version": previous.version,
            **{key: previous.metrics[key] for key in keys},
            "tolerance": tolerance,
        }
        if previous.rows is not None:
            # Both versions' figures on the rows neither trained on.
            record["previous"]["rows"] = previous.rows
            record["previous"]["rows_dropped"] = previous.dropped
            record["previous"]["candidate"] = {
                key: (previous.candidate or metrics)[key] for key in keys
            }
    # Not overridable by a reason: such a model carries no information about the label.
    refusals = _below_chance(task, metrics, base_rate)
    regressions = _regressions(task, metrics, previous) if previous is not None else []
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


def not_checked(reason: str) -> dict[str, Any]:
    return {"status": NOT_CHECKED, "reason": reason}


def _below_chance(task: str, metrics: Mapping[str, float], base: Mapping[str, Any]) -> list[str]:
    found = []
    if task == "regression":
        if not metrics["rmse"] < base["rmse"]:
            found.append(
                f"holdout RMSE {metrics['rmse']:.4g} is not better than predicting the "
                f"training mean {base['mean']:.4g} for every row (RMSE {base['rmse']:.4g}); "
                "it must be lower"
            )
        return found
    if not metrics["log_loss"] < base["log_loss"]:
        knowing = (
            f"the training positive rate {base['rate']:.4f}"
            if task == "binary"
            else "the training class frequencies"
        )
        found.append(
            f"holdout log loss {metrics['log_loss']:.4f} is not better than the "
            f"{'base-rate' if task == 'binary' else 'prior'} predictor's "
            f"{base['log_loss']:.4f} (predicting {knowing} for every row); it must be lower"
        )
    auc = AUC_KEY[task]
    if not metrics[auc] > 0.5:
        name = "ROC AUC" if task == "binary" else "ROC AUC (one-vs-rest)"
        found.append(
            f"holdout {name} {metrics[auc]:.4f} is no better than chance; it must be above 0.5"
        )
    return found


def _regressions(task: str, holdout: Mapping[str, float], previous: Previous) -> list[str]:
    metrics = previous.candidate if previous.candidate is not None else holdout
    rows = (
        "on the same rows"
        if previous.rows is None
        else f"on the {previous.rows} holdout rows neither trained on"
    )
    found = []
    if task == "regression":
        allowed = previous.metrics["rmse"] * (1 + RMSE_RELATIVE_TOLERANCE)
        if metrics["rmse"] > allowed:
            found.append(
                f"holdout RMSE {metrics['rmse']:.4g} is worse than {previous.version}'s "
                f"{previous.metrics['rmse']:.4g} {rows} (tolerance "
                f"{RMSE_RELATIVE_TOLERANCE:.0%})"
            )
        return found
    loss_increase = metrics["log_loss"] - previous.metrics["log_loss"]
    if loss_increase > LOG_LOSS_TOLERANCE:
        found.append(
            f"holdout log loss {metrics['log_loss']:.4f} is worse than {previous.version}'s "
            f"{previous.metrics['log_loss']:.4f} {rows} by {loss_increase:.4f} "
            f"(tolerance {LOG_LOSS_TOLERANCE})"
        )
    auc = AUC_KEY[task]
    name = "ROC AUC" if task == "binary" else "ROC AUC (one-vs-rest)"
    auc_drop = previous.metrics[auc] - metrics[auc]
    if auc_drop > ROC_AUC_TOLERANCE:
        found.append(
            f"holdout {name} {metrics[auc]:.4f} is lower than {previous.version}'s "
            f"{previous.metrics[auc]:.4f} {rows} by {auc_drop:.4f} "
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
    if record["status"] == NOT_CHECKED:
        return f"gate: quality not checked ({record['reason']})"
    previous = record.get("previous")
    against = ""
    if previous and previous.get("compared", True) is False:
        against = f", not compared with {previous['version']}: {previous['reason']}"
    elif previous:
        fresh = f" on {previous['rows']} fresh rows" if "rows" in previous else ""
        against = f", compared with {previous['version']}{fresh}"
    if "baseline" in record:
        base_text = f"mean-predictor RMSE {record['baseline']['rmse']:.4g}"
    elif "rate" in record["base_rate"]:
        base_text = f"base-rate log loss {record['base_rate']['log_loss']:.4f}"
    else:
        base_text = f"prior log loss {record['base_rate']['log_loss']:.4f}"
    if record["status"] == REFUSED:
        return f"gate: REFUSED, written without the gate ({'; '.join(record['refused'])})"
    if record["status"] == ACCEPTED_REGRESSION:
        reason = record["accepted_regression"]["reason"]
        return f"gate: regression accepted ({reason!r}; {base_text}{against})"
    return f"gate: passed ({base_text}{against})"

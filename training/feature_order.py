"""Feature order for a model that does not know its columns' names.

A model fitted on a numpy array reads columns by position: swap two features in the
schema and it still answers, wrongly, and may even pass the quality gate (the issue's
swapped penguins model: accuracy 0.45 against 0.99, log loss still below the prior's). So
such a model is packaged only when the user confirms the order (``--confirm-feature-order``),
and the refusal shows the order that would be used. With the rows it was fitted on
(``--training-data``), a holdout figure far below the training one is flagged (printed and
recorded in the manifest), by ``RULE``. The training rows reach the model in the order of
their file's columns (the order they were fitted in, as the user wrote them), the holdout's
in the schema's: a schema that swaps two columns then shows as a holdout figure far below.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from serving.schema import Schema

CONFIRM_FLAG = "--confirm-feature-order"
# Far below: a classifier's holdout accuracy more than this under its training accuracy;
# a regressor's holdout R^2 more than this under its training R^2. An honest model of
# the datasets here loses a few points (an overfit forest: 1.00 -> 0.95); a model fed
# its columns in the wrong order loses tens (0.99 -> 0.45).
ACCURACY_DROP = 0.25
R2_DROP = 0.3
RULE = (
    f"flagged when holdout accuracy is more than {ACCURACY_DROP} below training accuracy "
    f"(classifiers) or holdout R^2 more than {R2_DROP} below training R^2 (regressors)"
)


class FeatureOrderError(ValueError):
    """A model without column names, packaged without the order confirmed."""


def numbered(schema: Schema) -> str:
    return ", ".join(f"{i}. {name}" for i, name in enumerate(schema.feature_names, start=1))


def decide(estimator: Any, schema: Schema, confirmed: bool, where: str) -> dict[str, Any]:
    """The manifest's ``feature_order`` for a model without ``feature_names_in_``; refuses
    unless ``confirmed``."""
    if not confirmed:
        raise FeatureOrderError(
            f"{where}: the {type(estimator).__name__} was fitted without column names (no "
            "feature_names_in_), so nothing can check that the schema lists its columns in "
            f"the order it was fitted on. The order that will be used: {numbered(schema)}. "
            f"If that is the order of the fit, pass {CONFIRM_FLAG}; better, fit on a "
            "DataFrame with these column names"
        )
    return {"source": f"confirmed with {CONFIRM_FLAG}", "order": list(schema.feature_names)}


def file_order(path: Path, schema: Schema) -> list[int]:
    """The schema positions of ``path``'s feature columns, in the file's order."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = [h.strip() for h in next(csv.reader(handle, skipinitialspace=True), [])]
    names = list(schema.feature_names)
    return [names.index(h) for h in header if h in names]


def compare(task: str, training: dict[str, float], holdout: dict[str, float]) -> dict[str, Any]:
    """The manifest's ``training_metric_check``: both figures, the rule, and the flag."""
    key, limit = ("r2", R2_DROP) if task == "regression" else ("accuracy", ACCURACY_DROP)
    drop = round(training[key] - holdout[key], 6)
    return {
        "metric": key,
        "training": training[key],
        "holdout": holdout[key],
        "drop": drop,
        "rule": RULE,
        "flagged": drop > limit,
    }


def describe(check: dict[str, Any]) -> str:
    figures = (
        f"{check['metric']} {check['holdout']:.4f} on the holdout, {check['training']:.4f} "
        f"on the training rows"
    )
    if check["flagged"]:
        return (
            f"warning: {figures}: far below ({check['rule']}). Is the schema's feature order "
            "the order the model was fitted on? Is the holdout from the same population?"
        )
    return f"training metric check: {figures} ({check['rule']}): not flagged"

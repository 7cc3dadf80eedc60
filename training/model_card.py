"""The model card written beside each artifact: metrics in Markdown, a plot that fits the
task in a PNG (binary: ROC and calibration curves; multiclass: one-vs-rest ROC curves and
the confusion matrix; regression: predicted against actual, and the residuals), and the
global importance of each feature over the golden set beside it (``training.card_importance``:
a second PNG, its figures in the Markdown and in the manifest's ``model_card.importance``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, roc_curve

from inference.explain import ExplanationsUnavailableError
from training import card_importance, golden

METRICS = {
    "binary": ("roc_auc", "accuracy", "log_loss", "brier_score"),
    "multiclass": ("log_loss", "roc_auc_ovr", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
PLOT_CAPTION = {
    "binary": "ROC and calibration curves",
    "multiclass": "One-vs-rest ROC curves and confusion matrix",
    "regression": "Predicted against actual, and residuals",
}


def write_plot(
    path: Path,
    task: str,
    y_true: NDArray[Any],
    outputs: NDArray[np.float64],
    classes: list[Any] | None,
    title: str,
) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100)
    if task == "binary":
        positive = (classes or [0, 1])[1]
        # Churn's cards (classes 0 and 1) keep their wording, so their bytes stay the same.
        name = "churn" if classes in (None, [0, 1]) else str(positive)
        _binary(left, right, (np.asarray(y_true) == positive).astype(int), outputs, name)
    elif task == "multiclass":
        _multiclass(left, right, y_true, outputs, classes or [])
    else:
        _regression(left, right, np.asarray(y_true, dtype=np.float64), outputs)
    fig.suptitle(title)
    fig.tight_layout()
    # No software/date metadata: the same model gives the same PNG bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _binary(
    roc_ax: Any, cal_ax: Any, y: NDArray[np.int64], proba: NDArray[np.float64], positive: str
) -> None:
    fpr, tpr, _ = roc_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    roc_ax.plot(fpr, tpr, label="model")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    roc_ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    roc_ax.legend(loc="lower right")
    cal_ax.plot(mean_pred, frac_pos, marker="o", label="model")
    cal_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    cal_ax.set(
        xlabel=f"Mean predicted P({positive})",
        ylabel=f"Observed {positive} rate",
        title="Calibration (deciles)",
    )
    cal_ax.legend(loc="upper left")


def _multiclass(
    roc_ax: Any, cm_ax: Any, y: NDArray[Any], proba: NDArray[np.float64], classes: list[Any]
) -> None:
    y = np.asarray(y, dtype=object)
    for column, cls in enumerate(classes):
        fpr, tpr, _ = roc_curve((y == cls).astype(int), proba[:, column])
        roc_ax.plot(fpr, tpr, label=f"{cls} vs rest")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    roc_ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (OvR)")
    roc_ax.legend(loc="lower right", fontsize="small")
    predicted = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    positions = list(range(len(classes)))
    matrix = confusion_matrix(
        [classes.index(v) for v in y], [classes.index(v) for v in predicted], labels=positions
    )
    cm_ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        cm_ax.text(col, row, str(count), ha="center", va="center")
    names = [str(c) for c in classes]
    cm_ax.set_xticks(positions, names)
    cm_ax.set_yticks(positions, names)
    cm_ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix")


def _regression(
    fit_ax: Any, res_ax: Any, y: NDArray[np.float64], predicted: NDArray[np.float64]
) -> None:
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    fit_ax.scatter(y, predicted, s=8, alpha=0.6, label="holdout rows")
    fit_ax.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    fit_ax.set(xlabel="Actual", ylabel="Predicted", title="Predicted against actual")
    fit_ax.legend(loc="upper left")
    res_ax.hist(y - predicted, bins=30)
    res_ax.set(xlabel="Actual - predicted", ylabel="Rows", title="Residuals")


def write_card(
    version_dir: Path,
    manifest: dict[str, Any],
    *,
    y_true: NDArray[Any] | None,
    outputs: NDArray[np.float64],
    classes: list[Any] | None,
    title: str,
    compiled_bytes: bytes,
    compiled_runtime: dict[str, Any] | None,
) -> dict[str, Any]:
    """Write the card's files into ``version_dir`` (its golden set already written there);
    returns the manifest's ``model_card`` entry.

    ``compiled_bytes``: the compiled archive packaging has just written (empty when the model
    is served by the sklearn runtime only; ``compiled_runtime`` then says why, if it tried).
    """
    task = manifest.get("task", "binary")
    card: dict[str, Any] = {"markdown": "model_card.md"}
    if y_true is not None:
        card["plot"] = "model_card.png"
        write_plot(version_dir / card["plot"], task, y_true, outputs, classes, f"{title}: holdout")
    importance, reason = None, None
    if not compiled_bytes:
        why = (compiled_runtime or {}).get("reason")
        reason = (
            f"explanations need the compiled runtime, and this model does not compile ({why})"
            if why
            else "explanations need the compiled runtime, and this version was packaged without it"
        )
    else:
        try:
            X = golden.read(version_dir).X
            importance = card_importance.compute(compiled_bytes, X)
        except ExplanationsUnavailableError as error:
            reason = f"the compiled model cannot be explained ({error})"
    target = manifest.get("target", {})
    unit = (
        ""
        if importance is None
        else card_importance.space_words(
            importance, str(target.get("name", "target")), target.get("positive_class")
        )
    )
    if importance is not None:
        card["importance_plot"] = card_importance.PLOT_FILE
        card["importance"] = importance.record()
        card_importance.write_plot(
            version_dir / card_importance.PLOT_FILE, importance, unit, f"{title}: golden set"
        )
    write_markdown(
        version_dir / "model_card.md",
        manifest,
        card.get("plot"),
        card_importance.markdown(importance, unit, reason),
    )
    return card


def write_markdown(
    path: Path,
    manifest: dict[str, Any],
    plot_name: str | None,
    extra: list[str] | None = None,
) -> None:
    task = manifest.get("task", "binary")
    training = manifest["training"]
    lines = [
        f"# Model card: {manifest['model_name']} {manifest['model_version']}",
        "",
        f"Task: {task}. Estimator: `{training['estimator']}` with {training['params']}.",
    ]
    if task == "binary" and manifest["target"].get("classes") == [0, 1]:
        # The churn cards' first lines, as they have always read.
        lines[-1] = f"Estimator: `{training['estimator']}` with {training['params']}."
    metrics = manifest.get("metrics")
    fingerprint = manifest.get("data_fingerprint")
    if metrics is None:
        lines += ["", "No labelled data was given: no metrics, and the quality gate did not check."]
    elif fingerprint is not None and "holdout_fraction" in training:
        lines.append(
            f"Data: {training['data_source']} ({fingerprint['rows']} rows, "
            f"SHA-256 `{fingerprint['sha256'][:16]}...`), holdout {metrics['holdout_rows']} "
            f"rows ({training['holdout_fraction']:.0%}"
            f"{', stratified' if task != 'regression' else ''})."
        )
    elif fingerprint is not None:
        lines.append(
            f"Trained elsewhere; judged on {training['data_source']} ({fingerprint['rows']} "
            f"labelled rows, SHA-256 `{fingerprint['sha256'][:16]}...`)."
        )
    if metrics is not None:
        lines += ["", "| metric (holdout) | value |", "|---|---|"]
        for key in METRICS[task]:
            lines.append(f"| {key} | {metrics[key]:.4f} |")
    if plot_name is not None:
        lines += ["", f"![{PLOT_CAPTION[task]}]({plot_name})"]
    lines += extra or []
    lines.append("")
    path.write_text("\n".join(lines))

"""The model card written beside each artifact: metrics in Markdown, curves in a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve


def write_plot(
    path: Path, y_true: NDArray[np.int64], proba: NDArray[np.float64], title: str
) -> None:
    fpr, tpr, _ = roc_curve(y_true, proba)
    frac_pos, mean_pred = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    fig, (roc_ax, cal_ax) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100)
    roc_ax.plot(fpr, tpr, label="model")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    roc_ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    roc_ax.legend(loc="lower right")
    cal_ax.plot(mean_pred, frac_pos, marker="o", label="model")
    cal_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    cal_ax.set(
        xlabel="Mean predicted P(churn)",
        ylabel="Observed churn rate",
        title="Calibration (deciles)",
    )
    cal_ax.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    # No software/date metadata: the same model gives the same PNG bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def write_markdown(path: Path, manifest: dict[str, Any], plot_name: str) -> None:
    metrics = manifest["metrics"]
    training = manifest["training"]
    lines = [
        f"# Model card: {manifest['model_name']} {manifest['model_version']}",
        "",
        f"Estimator: `{training['estimator']}` with {training['params']}.",
        f"Data: {training['data_source']} ({manifest['data_fingerprint']['rows']} rows, "
        f"SHA-256 `{manifest['data_fingerprint']['sha256'][:16]}...`), "
        f"holdout {metrics['holdout_rows']} rows ({training['holdout_fraction']:.0%}, stratified).",
        "",
        "| metric (holdout) | value |",
        "|---|---|",
    ]
    for key in ("roc_auc", "accuracy", "log_loss", "brier_score"):
        lines.append(f"| {key} | {metrics[key]:.4f} |")
    lines += ["", f"![ROC and calibration curves]({plot_name})", ""]
    path.write_text("\n".join(lines))

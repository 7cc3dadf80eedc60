"""Global importance for the model card: mean |contribution| per schema feature.

The contributions are the ones the endpoint answers ``"explain": true`` with: the compiled
runtime's exact explanations (``inference.explain``: path-dependent TreeSHAP for trees,
coefficient times input for linear models), computed on the version's golden set. They
need the compiled archive as packaging writes it now (with ``cover``): the card compiles
nothing itself but loads the bytes packaging has just compiled, with the runtime's own
loader. A model the compiled runtime does not serve has no explanations, so its card says
why instead of showing the plot.

Multiclass: a feature's importance is the sum over the classes of its mean |contribution|
to each class's raw score (the bar's length); each class's share is a segment of the bar
and is kept per class in the manifest. Summed, because a feature that separates one class
from the others matters to the model even when it moves only that class's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from inference import compiled_model
from inference.compiled_pipeline import CompiledPipeline
from inference.explain import LOG_ODDS, PROBABILITY, ExplanationsUnavailableError

PLOT_FILE = "model_card_importance.png"
# The plot shows at most this many features (the largest); the table and manifest hold all.
PLOT_FEATURES = 20
SPACE_WORDS = {
    LOG_ODDS: "log-odds",
    PROBABILITY: "probability",
    "value": "the target's units",
}


@dataclass(frozen=True)
class Importance:
    """``per_output[f, k]``: mean |contribution| of feature ``f`` to output ``k``."""

    features: tuple[str, ...]
    per_output: NDArray[np.float64]  # (features, outputs)
    space: str
    rows: int
    # Multiclass: the class of each output column; None for one output.
    classes: tuple[Any, ...] | None

    @property
    def total(self) -> NDArray[np.float64]:
        """(features,): summed over the outputs (the classes of a multiclass model)."""
        return np.asarray(self.per_output.sum(axis=1), dtype=np.float64)

    def order(self) -> list[int]:
        """Feature indices, largest importance first (ties in schema order)."""
        return sorted(range(len(self.features)), key=lambda i: (-float(self.total[i]), i))

    def record(self) -> dict[str, Any]:
        """What the manifest's ``model_card.importance`` holds (schema order)."""
        out: dict[str, Any] = {
            "measure": "mean absolute contribution over the golden set",
            "space": self.space,
            "rows": self.rows,
            "features": {f: float(v) for f, v in zip(self.features, self.total, strict=True)},
        }
        if self.classes is not None:
            out["multiclass"] = "summed over classes"
            out["per_class"] = {
                str(c): {
                    f: float(v) for f, v in zip(self.features, self.per_output[:, k], strict=True)
                }
                for k, c in enumerate(self.classes)
            }
        return out


def compute(compiled_bytes: bytes, X: NDArray[np.float64]) -> Importance:
    """The importance of the compiled model in ``compiled_bytes`` over the rows ``X`` (the
    model input matrix, as the golden set holds it). Raises
    ``ExplanationsUnavailableError`` when that archive cannot be explained."""
    model = compiled_model.load(compiled_bytes)
    if not isinstance(model, CompiledPipeline):
        raise ExplanationsUnavailableError(
            "the compiled archive is a format written before explanations were"
        )
    explanation = model.explainer().explain(np.asarray(X, dtype=np.float64))
    per_output = np.abs(explanation.contributions).mean(axis=0)  # (features, outputs)
    outputs = per_output.shape[1]
    classes = tuple(model.classes or ()) if outputs > 1 else None
    return Importance(
        features=tuple(str(f["name"]) for f in model.features),
        per_output=per_output,
        space=explanation.space,
        rows=int(X.shape[0]),
        classes=classes,
    )


def space_words(importance: Importance, target: str, positive: Any) -> str:
    """The contributions' unit, in words a reader of the card knows (``target`` and
    ``positive``: the manifest's target name and positive class, for a binary model)."""
    if importance.classes is not None:
        if importance.space == LOG_ODDS:
            return "each class's raw score (log-odds before the softmax)"
        return "each class's probability"
    if importance.space == LOG_ODDS:
        return f"log-odds of {target} = {positive}"
    if importance.space == PROBABILITY:
        return f"probability of {target} = {positive}"
    return SPACE_WORDS.get(importance.space, importance.space)


def write_plot(path: Path, importance: Importance, unit: str, title: str) -> None:
    shown = importance.order()[:PLOT_FEATURES][::-1]  # largest at the top
    names = [importance.features[i] for i in shown]
    height = max(2.5, 0.35 * len(shown) + 1.5)
    fig, ax = plt.subplots(figsize=(8, height), dpi=100)
    positions = np.arange(len(shown))
    if importance.classes is None:
        ax.barh(positions, importance.total[shown])
    else:
        left = np.zeros(len(shown))
        for k, cls in enumerate(importance.classes):
            widths = importance.per_output[shown, k]
            ax.barh(positions, widths, left=left, label=str(cls))
            left += widths
        ax.legend(loc="lower right", fontsize="small", title="class")
    ax.set_yticks(positions, names)
    more = len(importance.features) - len(shown)
    ax.set(
        xlabel=f"Mean |contribution| ({unit})",
        title=f"Global importance, {importance.rows} golden rows"
        + (f" (top {len(shown)}; {more} more in the card)" if more else ""),
    )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def markdown(importance: Importance | None, unit: str, reason: str | None) -> list[str]:
    """The card's "Global importance" section."""
    lines = ["", "## Global importance", ""]
    if importance is None:
        return [*lines, f"No global importance: {reason}."]
    multiclass = importance.classes is not None
    lines.append(
        f"Mean |contribution| per feature over the golden set ({importance.rows} rows), in "
        f'{unit}: the exact explanations the endpoint answers `"explain": true` with'
        + (
            "; summed over the classes (each class's share is a segment of the bar)."
            if multiclass
            else "."
        )
    )
    lines += ["", f"![Global importance]({PLOT_FILE})", ""]
    if multiclass:
        names = [str(c) for c in importance.classes or ()]
        lines.append("| feature | summed over classes | " + " | ".join(names) + " |")
        lines.append("|---|---|" + "---|" * len(names))
    else:
        lines += ["| feature | mean abs contribution |", "|---|---|"]
    for i in importance.order():
        cells = [f"{importance.total[i]:.4f}"]
        if multiclass:
            cells += [f"{v:.4f}" for v in importance.per_output[i]]
        lines.append(f"| {importance.features[i]} | " + " | ".join(cells) + " |")
    return lines

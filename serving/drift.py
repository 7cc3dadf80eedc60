"""PSI per feature and for the prediction, of captured rows against a reference (pure).

The scheduled monitor and ``python -m tools.drift`` compute the same table: one PSI per
feature in the reference and one for the prediction (binary: the probability; multiclass:
the predicted class; regression: the value), each with its verdict
(``serving.histograms.psi_verdict``). A PSI from few rows is noisy (for ``k`` bins and ``n`` rows
of unchanged data its expected value is about ``(k - 1) / n``: 0.045 at 200 rows, 10
bins), so below ``min_rows`` the table is shown but no verdict is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving import histograms
from serving.distributions import Reference

DEFAULT_MIN_ROWS = 200
PREDICTION = "prediction"


@dataclass(frozen=True)
class DriftThresholds:
    watch: float = histograms.PSI_WATCH
    alarm: float = histograms.PSI_ALARM
    min_rows: int = DEFAULT_MIN_ROWS

    def __post_init__(self) -> None:
        histograms.check_thresholds(self.watch, self.alarm)
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be a positive integer, got {self.min_rows}")


@dataclass(frozen=True)
class DriftLine:
    name: str  # a feature, or PREDICTION
    rows: int
    psi: float
    verdict: histograms.Verdict | None  # None: fewer rows than min_rows


@dataclass(frozen=True)
class DriftReport:
    lines: tuple[DriftLine, ...]
    thresholds: DriftThresholds

    @property
    def drifted(self) -> list[str]:
        return [line.name for line in self.lines if line.verdict == "drift"]

    @property
    def watched(self) -> list[str]:
        return [line.name for line in self.lines if line.verdict == "watch"]

    @property
    def judged(self) -> bool:
        return all(line.verdict is not None for line in self.lines)

    def summary(self) -> str:
        t = self.thresholds
        if not self.judged:
            return f"too few rows to judge (at least {t.min_rows} per line)"
        if self.drifted:
            return f"drift (PSI above {t.alarm:g}) in {', '.join(self.drifted)}"
        if self.watched:
            return f"no drift; watch {', '.join(self.watched)} (PSI from {t.watch:g})"
        return f"no drift (every PSI below {t.watch:g})"

    def render(self) -> str:
        width = max(len(line.name) for line in self.lines)
        out = [f"{'':<{width}}  {'rows':>7}  {'PSI':>6}  verdict"]
        for line in self.lines:
            verdict = line.verdict or f"too few rows (< {self.thresholds.min_rows})"
            out.append(f"{line.name:<{width}}  {line.rows:>7}  {line.psi:>6.3f}  {verdict}")
        t = self.thresholds
        out.append(
            f"thresholds: stable below {t.watch:g}, watch from {t.watch:g} to {t.alarm:g}, "
            f"drift above {t.alarm:g}"
        )
        out.append(f"result: {self.summary()}")
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {
            "lines": [
                {
                    "name": x.name,
                    "rows": x.rows,
                    # No rows, no PSI: null rather than NaN, which JSON does not have.
                    "psi": None if math.isnan(x.psi) else x.psi,
                    "verdict": x.verdict,
                }
                for x in self.lines
            ],
            "drifted": self.drifted,
            "result": self.summary(),
        }


def drift_report(
    reference: Reference,
    features: Sequence[Mapping[str, Any]],
    predictions: Sequence[Any],
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """``features``: one mapping per captured row (name to value; a categorical feature's
    value as the request sent it); every reference feature must be present (a KeyError
    names the first missing one). ``predictions``: what the rows predicted, as
    ``reference.task`` bins it (binary: the probability; multiclass: the class label;
    regression: the value)."""
    t = thresholds or DriftThresholds()
    lines = []
    for name, histogram in reference.features.items():
        values = [row[name] for row in features]
        lines.append(_line(name, histogram, values, t))
    lines.append(_line(PREDICTION, reference.prediction, list(predictions), t))
    return DriftReport(tuple(lines), t)


def _line(
    name: str, histogram: histograms.Histogram, values: Sequence[Any], t: DriftThresholds
) -> DriftLine:
    if not values:
        return DriftLine(name, 0, math.nan, None)
    value = histogram.psi(values)
    verdict = histograms.psi_verdict(value, watch=t.watch, alarm=t.alarm)
    return DriftLine(name, len(values), value, verdict if len(values) >= t.min_rows else None)

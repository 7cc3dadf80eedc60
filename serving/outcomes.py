"""Which model version predicted better: captured predictions joined with outcomes (pure).

Per version: labelled count, ROC AUC, log loss, Brier score and expected calibration
error (multiclass: accuracy of the class answered; regression: RMSE and MAE), each with a
percentile bootstrap interval; then each version against the baseline
(the lowest version unless named): the difference with its interval and a verdict. A
difference counts only when its interval excludes 0; otherwise the verdict is "no
significant difference". The versions are compared on different requests (weighted
routing sends each request to one side at random), so the groups are resampled
independently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import bootstrap, stats
from serving.capture_export import CapturedRow, version_key
from serving.labels import Outcome

# name, function, whether higher is better
METRICS: tuple[tuple[str, stats.Metric, bool], ...] = (
    ("ROC AUC", stats.roc_auc, True),
    ("log loss", stats.log_loss, False),
    ("Brier", stats.brier, False),
    ("calibration error", stats.expected_calibration_error, False),
)
# Capture records do not name a multiclass model's classes, so its probability columns
# cannot be matched to the outcome: it is judged on the class it answered.
METRICS_BY_TASK: dict[str, tuple[tuple[str, stats.Metric, bool], ...]] = {
    "binary": METRICS,
    "multiclass": (("accuracy", stats.label_accuracy, True),),
    "regression": (("RMSE", stats.rmse, False), ("MAE", stats.mae, False)),
}
PAIRING: dict[str, stats.Pairing] = {
    "binary": "binary",
    "multiclass": "labels",
    "regression": "regression",
}


@dataclass(frozen=True)
class Joined:
    # Per version: the outcomes and what was predicted (binary: labels 0/1 and
    # probabilities; multiclass: true and answered class labels; regression: values).
    by_version: dict[str, tuple[list[Any], list[Any]]]
    matched: int
    unmatched_labels: int  # outcomes with no captured prediction
    unlabelled_predictions: int
    duplicate_captures: int  # the same request id and row captured twice (kept once)
    task: str = "binary"

    @property
    def metrics(self) -> tuple[tuple[str, stats.Metric, bool], ...]:
        return METRICS_BY_TASK[self.task]


@dataclass(frozen=True)
class VersionResult:
    version: str
    count: int
    positives: int | None  # binary only
    metrics: dict[str, bootstrap.Interval]


@dataclass(frozen=True)
class Difference:
    metric: str
    interval: bootstrap.Interval  # version minus baseline
    higher_is_better: bool

    def verdict(self, version: str, baseline: str) -> str:
        d = self.interval
        if math.isnan(d.low) or not d.excludes_zero():
            return (
                f"no significant difference on {self.metric} ({version} - {baseline}: "
                f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}])"
            )
        improves = (d.estimate > 0) == self.higher_is_better
        winner, loser = (version, baseline) if improves else (baseline, version)
        # The gain of the winner, as a positive amount, with its interval.
        sign = 1 if (winner == version) == self.higher_is_better else -1
        low, high = sorted((sign * d.low, sign * d.high))
        return (
            f"{winner} better than {loser} on {self.metric} by {abs(d.estimate):.4f} "
            f"[{low:.4f}, {high:.4f}]"
        )


@dataclass(frozen=True)
class OutcomesReport:
    joined: Joined
    baseline: str
    versions: tuple[VersionResult, ...]
    differences: dict[str, tuple[Difference, ...]]  # per non-baseline version
    rounds: int
    seed: int
    confidence: float

    def render(self) -> str:
        j = self.joined
        pct = f"{self.confidence * 100:g} %"
        out = [
            f"joined {j.matched} outcomes with captured predictions "
            f"({j.unmatched_labels} outcomes without a captured prediction, "
            f"{j.unlabelled_predictions} predictions without an outcome)",
            f"intervals: {pct} percentile bootstrap, {self.rounds} rounds, seed {self.seed}",
            "",
        ]
        header = f"{'version':<8} {'count':>6} {'positives':>9}"
        for name, _, _ in j.metrics:
            header += f"  {name + ' [interval]':<26}"
        out.append(header.rstrip())
        for result in self.versions:
            positives = "-" if result.positives is None else result.positives
            line = f"{result.version:<8} {result.count:>6} {positives:>9}"
            for name, _, _ in j.metrics:
                i = result.metrics[name]
                line += f"  {_cell(i):<26}"
            out.append(line.rstrip())
        for version, differences in self.differences.items():
            out.append("")
            out.append(f"{version} against {self.baseline}:")
            out.extend(f"  {d.verdict(version, self.baseline)}" for d in differences)
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {
            "baseline": self.baseline,
            "matched": self.joined.matched,
            "unmatched_labels": self.joined.unmatched_labels,
            "unlabelled_predictions": self.joined.unlabelled_predictions,
            "versions": {
                r.version: {
                    "count": r.count,
                    "positives": r.positives,
                    **{name: i.to_json() for name, i in r.metrics.items()},
                }
                for r in self.versions
            },
            "differences": {
                version: {
                    d.metric: {
                        **d.interval.to_json(),
                        "verdict": d.verdict(version, self.baseline),
                    }
                    for d in differences
                }
                for version, differences in self.differences.items()
            },
        }


def join(captured: Sequence[CapturedRow], outcomes: Sequence[Outcome]) -> Joined:
    predictions: dict[tuple[str, int], CapturedRow] = {}
    duplicates = 0
    for row in captured:
        key = (row.request_id, row.row)
        if key in predictions:
            duplicates += 1
            continue
        predictions[key] = row
    tasks = {row.task for row in predictions.values()}
    if len(tasks) > 1:
        # Named by the first record of another task than the first record's.
        first = next(iter(predictions.values()))
        other = next(row for row in predictions.values() if row.task != first.task)
        raise ValueError(
            f"line {other.line}: a {other.task} record, after {first.task} records from line "
            f"{first.line}: the capture holds records of {' and '.join(sorted(tasks))} models: "
            "compare one model's versions at a time"
        )
    task = tasks.pop() if tasks else "binary"
    by_version: dict[str, tuple[list[Any], list[Any]]] = {}
    matched = 0
    labelled = set()
    for outcome in outcomes:
        key = (outcome.request_id, outcome.row)
        prediction = predictions.get(key)
        if prediction is None:
            continue
        matched += 1
        labelled.add(key)
        labels, answers = by_version.setdefault(prediction.model_version, ([], []))
        labels.append(outcome.label)
        if task == "binary":
            answers.append(prediction.probability)
        elif task == "multiclass":
            # The outcome file holds text: the label 2 answered as a number is "2" there.
            answers.append(str(prediction.prediction))
        else:
            answers.append(prediction.prediction)
    return Joined(
        dict(sorted(by_version.items(), key=lambda item: version_key(item[0]))),
        matched,
        len(outcomes) - matched,
        len(predictions) - len(labelled),
        duplicates,
        task,
    )


def task_of(captured: Sequence[CapturedRow]) -> str:
    """The task of the captured model (binary when there is nothing to say otherwise)."""
    return captured[0].task if captured else "binary"


def compare(
    joined: Joined,
    *,
    baseline: str | None = None,
    rounds: int = bootstrap.DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = bootstrap.DEFAULT_CONFIDENCE,
) -> OutcomesReport:
    if not joined.by_version:
        raise ValueError("no outcome matched a captured prediction: nothing to compare")
    versions = list(joined.by_version)
    chosen = baseline or versions[0]
    if chosen not in joined.by_version:
        raise ValueError(
            f"baseline version {chosen!r} has no labelled predictions (versions: "
            f"{', '.join(versions)})"
        )
    functions = {name: function for name, function, _ in joined.metrics}
    pairing = PAIRING[joined.task]
    dtype = object if joined.task == "multiclass" else np.float64
    data = {
        version: (np.asarray(labels, dtype=dtype), np.asarray(answers, dtype=dtype))
        for version, (labels, answers) in joined.by_version.items()
    }
    # One bootstrap pass per compared pair gives both versions' intervals and the
    # difference's; the baseline's own come from its first comparison.
    intervals: dict[str, dict[str, bootstrap.Interval]] = {}
    differences = {}
    for version in data:
        if version == chosen:
            continue
        compared = bootstrap.bootstrap_compare(
            functions, data[chosen], data[version], rounds=rounds, seed=seed,
            confidence=confidence, pairing=pairing,
        )  # fmt: skip
        intervals.setdefault(chosen, {n: c.first for n, c in compared.items()})
        intervals[version] = {n: c.second for n, c in compared.items()}
        differences[version] = tuple(
            Difference(name, compared[name].difference, higher)
            for name, _, higher in joined.metrics
        )
    if chosen not in intervals:  # a single version: nothing to compare it with
        intervals[chosen] = {
            name: bootstrap.bootstrap_interval(
                function,
                *data[chosen],
                rounds=rounds,
                seed=seed,
                confidence=confidence,
                pairing=pairing,
            )
            for name, function in functions.items()
        }
    results = tuple(
        VersionResult(
            version,
            int(y.size),
            int(y.sum()) if joined.task == "binary" else None,
            intervals[version],
        )
        for version, (y, _) in data.items()
    )
    return OutcomesReport(joined, chosen, results, differences, rounds, seed, confidence)


def _cell(interval: bootstrap.Interval) -> str:
    if math.isnan(interval.estimate):
        return "n/a (one class)"
    return f"{interval.estimate:.4f} [{interval.low:.4f}, {interval.high:.4f}]"

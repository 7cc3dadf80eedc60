"""Which model version predicted better: captured predictions joined with outcomes (pure).

Per version: labelled count, ROC AUC, log loss, Brier score and expected calibration
error (multiclass: accuracy of the class answered; regression: RMSE and MAE), each with a
percentile bootstrap interval; then each version against the baseline (the lowest version
unless named): the difference with its interval and a verdict.

Three rules keep a verdict honest:

- Only the time both versions served. Outcomes drift with the season and the customers;
  two versions that served in different weeks differ for that too. Each pair is compared
  on the labelled rows whose capture records fall in the overlap of the two versions'
  spans of capture timestamps; the report says the window and what it left out.
- The request is the unit. Rows of one request (a batch) are correlated, so the bootstrap
  resamples requests, not rows (``bootstrap.cluster_compare``); weighted routing sends
  each request to one side at random, so the two sides are resampled independently.
- Corrected for the number of verdicts. Each difference is judged by whether its interval
  excludes 0, at the Bonferroni level ``1 - (1 - confidence) / family`` where ``family``
  counts every difference the report judges (metrics x compared versions). So the chance
  of any false "better" verdict, for the same model on both sides, is at most
  ``1 - confidence`` (tested by simulation: docs/capture-and-drift.md). Bonferroni rather
  than Holm: the report's verdicts are intervals, and Bonferroni's are simultaneous
  intervals that agree with the verdicts (Holm's step-down gives p-values, not intervals),
  and the metrics move together, so Holm would gain little.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving import bootstrap, stats
from serving.capture_export import CapturedRow, excerpt, version_key
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
    # Per version, aligned with by_version's rows: each row's request id and the epoch
    # seconds of its capture record.
    requests: dict[str, list[str]] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)
    # Per version: the first and last capture timestamp of all its records, labelled or
    # not (when it served).
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)

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
class Overlap:
    """When a version and the baseline both served, and the labelled rows outside it."""

    start: float  # epoch seconds
    end: float
    left_out: dict[str, tuple[int, int]]  # version: (rows, requests) outside the window

    def describe(self) -> str:
        outside = ", ".join(
            f"{version} {rows} rows of {requests} requests"
            for version, (rows, requests) in self.left_out.items()
        )
        return (
            f"compared while both served, {_time(self.start)} to {_time(self.end)} "
            f"(labelled rows left out: {outside})"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "start": _time(self.start),
            "end": _time(self.end),
            "left_out": {
                version: {"rows": rows, "requests": requests}
                for version, (rows, requests) in self.left_out.items()
            },
        }


@dataclass(frozen=True)
class OutcomesReport:
    joined: Joined
    baseline: str
    versions: tuple[VersionResult, ...]
    differences: dict[str, tuple[Difference, ...]]  # per non-baseline version
    rounds: int
    seed: int
    confidence: float
    # Per non-baseline version: the window it was compared in, or why it was not compared.
    windows: dict[str, Overlap | str] = field(default_factory=dict)
    family: int = 1  # differences judged: the Bonferroni divisor

    @property
    def difference_confidence(self) -> float:
        return bonferroni(self.confidence, self.family)

    def render(self) -> str:
        j = self.joined
        pct = f"{self.confidence * 100:g} %"
        out = [
            f"joined {j.matched} outcomes with captured predictions "
            f"({j.unmatched_labels} outcomes without a captured prediction, "
            f"{j.unlabelled_predictions} predictions without an outcome)",
            f"intervals: {pct} percentile bootstrap over requests, {self.rounds} rounds, "
            f"seed {self.seed}",
            f"differences: {self.difference_confidence * 100:.4g} % intervals (Bonferroni "
            f"over {self.family} verdicts: any false verdict at most "
            f"{(1 - self.confidence) * 100:g} %)",
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
        for version, window in self.windows.items():
            out.append("")
            if isinstance(window, str):
                out.append(f"{version} against {self.baseline}: not compared: {window}")
                continue
            out.append(f"{version} against {self.baseline}, {window.describe()}:")
            differences = self.differences[version]
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
            "difference_confidence": self.difference_confidence,
            "family": self.family,
            "windows": {
                version: {"not_compared": w} if isinstance(w, str) else w.to_json()
                for version, w in self.windows.items()
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
    seconds: dict[tuple[str, int], float] = {}
    spans: dict[str, tuple[float, float]] = {}
    duplicates = 0
    for row in captured:
        key = (row.request_id, row.row)
        if key in predictions:
            duplicates += 1
            continue
        predictions[key] = row
        when = seconds[key] = epoch_seconds(row)
        earliest, latest = spans.get(row.model_version, (when, when))
        spans[row.model_version] = (min(earliest, when), max(latest, when))
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
    requests: dict[str, list[str]] = {}
    times: dict[str, list[float]] = {}
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
        requests.setdefault(prediction.model_version, []).append(outcome.request_id)
        times.setdefault(prediction.model_version, []).append(seconds[key])
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
        requests,
        times,
        spans,
    )


def epoch_seconds(row: CapturedRow) -> float:
    """The capture record's timestamp (ISO 8601 with a zone, as capture writes it)."""
    try:
        when = dt.datetime.fromisoformat(row.timestamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(
            f"line {row.line}: timestamp {excerpt(row.timestamp)} is not an ISO 8601 time "
            "with a zone (e.g. 2026-11-25T10:00:00.000Z)"
        )
    return when.timestamp()


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
    metrics = [function for _, function, _ in joined.metrics]
    windows = {v: _overlap(joined, chosen, v) for v in versions if v != chosen}
    compared = {v: w for v, w in windows.items() if isinstance(w, Overlap)}
    family = len(metrics) * max(1, len(compared))
    wide = bonferroni(confidence, family)
    # Each compared pair is one bootstrap pass over its window's requests, giving both
    # versions' intervals and the difference's; the baseline's own come from its first.
    intervals: dict[str, list[bootstrap.Interval]] = {}
    counts: dict[str, int] = {}
    positives: dict[str, int] = {}
    differences = {}
    for version, window in compared.items():
        first, second = (_sample(joined, v, window) for v in (chosen, version))
        pairs = bootstrap.cluster_compare(
            metrics, first, second, rounds=rounds, seed=seed, confidence=confidence,
            difference_confidence=wide,
        )  # fmt: skip
        for v, sample, side in ((chosen, first, 0), (version, second, 1)):
            if v not in intervals:
                intervals[v] = [(c.first, c.second)[side] for c in pairs]
                counts[v], positives[v] = int(sample.y.size), _positives(joined, sample)
        differences[version] = tuple(
            Difference(name, c.difference, higher)
            for (name, _, higher), c in zip(joined.metrics, pairs, strict=True)
        )
    for version in versions:  # alone, or never served alongside the baseline: all rows
        if version not in intervals:
            sample = _sample(joined, version, None)
            intervals[version] = bootstrap.cluster_intervals(
                metrics, sample, rounds=rounds, seed=seed, confidence=confidence
            )
            counts[version], positives[version] = int(sample.y.size), _positives(joined, sample)
    results = tuple(
        VersionResult(
            version,
            counts[version],
            positives[version] if joined.task == "binary" else None,
            {name: i for (name, _, _), i in zip(joined.metrics, intervals[version], strict=True)},
        )
        for version in versions
    )
    return OutcomesReport(joined, chosen, results, differences, rounds, seed, confidence,
                          windows, family)  # fmt: skip


def bonferroni(confidence: float, family: int) -> float:
    """The confidence of each of ``family`` intervals that all hold at ``confidence``."""
    return 1 - (1 - confidence) / family


def _overlap(joined: Joined, baseline: str, version: str) -> Overlap | str:
    """The window both served, with the labelled rows it leaves out; or why none."""
    (a0, a1), (b0, b1) = joined.spans[baseline], joined.spans[version]
    start, end = max(a0, b0), min(a1, b1)
    if start > end:
        return (
            f"they never served at the same time ({baseline} {_time(a0)} to {_time(a1)}, "
            f"{version} {_time(b0)} to {_time(b1)})"
        )
    left_out = {}
    for v in (baseline, version):
        outside = [not start <= t <= end for t in joined.times[v]]
        requests = {r for r, out in zip(joined.requests[v], outside, strict=True) if out}
        left_out[v] = (sum(outside), len(requests))
        if left_out[v][0] == len(outside):
            return (
                f"{v} has no labelled rows in the window both served "
                f"({_time(start)} to {_time(end)})"
            )
    return Overlap(start, end, left_out)


def _sample(joined: Joined, version: str, window: Overlap | None) -> bootstrap.Clustered:
    labels, answers = joined.by_version[version]
    dtype = object if joined.task == "multiclass" else np.float64
    y, p = np.asarray(labels, dtype=dtype), np.asarray(answers, dtype=dtype)
    requests = np.asarray(joined.requests[version], dtype=object)
    if window is not None:
        times = np.asarray(joined.times[version])
        inside = (times >= window.start) & (times <= window.end)
        y, p, requests = y[inside], p[inside], requests[inside]
    return bootstrap.clustered(y, p, requests.astype(str), pairing=PAIRING[joined.task])


def _positives(joined: Joined, sample: bootstrap.Clustered) -> int:
    return int(sample.y.sum()) if joined.task == "binary" else 0


def _time(seconds: float) -> str:
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _cell(interval: bootstrap.Interval) -> str:
    if math.isnan(interval.estimate):
        return "n/a (one class)"
    return f"{interval.estimate:.4f} [{interval.low:.4f}, {interval.high:.4f}]"

"""Scheduled canary evaluator: does the candidate harm, or only differ from, the stable side?

While the alias splits traffic between two versions (a manual canary, or a CodeDeploy
shift), every run reads both versions' capture records **since the canary began**
(Logs Insights, by ``lambda_version``) and applies the canary rule
(``serving.canary.decide`` over the rows grouped by request, the rule
``python -m tools.rollout compare`` applies too). Because weighted routing is random per
request, both sides see the same input distribution: a shift is the model's. It
publishes, per candidate model version:

* ``CanarySamples`` {ModelVersion}: the fewer of the two sides' captured rows;
* ``CanaryRequests`` {ModelVersion}: the fewer of the two sides' distinct requests;
* ``CanaryHarm`` {ModelVersion}: 1 when the always-valid harm test finds a shift of the
  positive rate, the mean prediction or the class mix at the rule's alpha, else 0; only
  with at least the minimum requests per side (the stack's alarm rolls back on it in
  automated mode, pages in manual mode);
* ``PredictionShiftPSI`` {ModelVersion}: only with the rule's ``psi_min_requests`` per
  side; it pages, never rolls back.

Why the window starts at the canary's first captured request, not "the last N minutes":
the harm test is valid over repeated looks only when each look sees the data of the
previous ones and more (``serving.sequential``). The first candidate record is when the
alias began sending it traffic (the traffic gate's own requests are not captured), and it
does not move between runs, so run after run reads nested samples of the same canary and
the false-rollback rate stays at alpha over the whole canary. A sliding window would
restart the test every run and spend alpha 12 times an hour. The look-back is capped at
``LOOKBACK_HOURS`` (the query's cost); a canary older than that is judged on its last
``LOOKBACK_HOURS``, and the summary says so. With one version behind the alias it
publishes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitors.schedule import MonitorSettings, scheduled_run
from serving.canary import DEFAULT_MIN_REQUESTS, Thresholds, decide
from serving.insights import (
    Window,
    fetch_requests,
    prediction_of,
    run_query,
    selection,
    setting,
)
from serving.sequential import from_aggregates

LOOKBACK_HOURS = 24


@dataclass(frozen=True)
class Settings(MonitorSettings):
    function_name: str
    alias_name: str
    # The fewest requests a side needs before the harm test runs (serving.canary).
    min_requests: int = DEFAULT_MIN_REQUESTS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        minimum = env.get("MIN_REQUESTS", "").strip()
        return cls(
            **MonitorSettings.common(env),
            function_name=setting(env, "FUNCTION_NAME"),
            alias_name=setting(env, "ALIAS_NAME"),
            min_requests=int(minimum) if minimum else DEFAULT_MIN_REQUESTS,
        )


def sides(lambda_client: Any, settings: Settings) -> tuple[str, str] | None:
    """(stable, candidate) Lambda versions the alias splits between, or None."""
    alias = lambda_client.get_alias(FunctionName=settings.function_name, Name=settings.alias_name)
    weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
    if len(weights) != 1:
        return None
    (candidate,) = weights
    return str(alias["FunctionVersion"]), str(candidate)


def first_record_query(candidate: str) -> str:
    """The candidate's oldest capture record in the look-back: when its canary began, and
    (its fields say) the task."""
    return (
        f"fields @timestamp, @message | {selection(candidate, 'lambda_version')} "
        "| sort @timestamp asc | limit 1"
    )


def canary_start(
    logs: Any,
    settings: Settings,
    candidate: str,
    now: int,
    *,
    expired: Callable[[], bool],
    sleep: Callable[[float], None],
) -> tuple[int, str] | None:
    """Epoch seconds and task of the candidate's first capture record, or None (none yet)."""
    window = Window(start=now - LOOKBACK_HOURS * 3600, end=now)
    results = run_query(
        logs, settings.log_group, first_record_query(candidate), window, 1, expired, sleep
    )
    for row in results:
        fields = {str(f.get("field")): str(f.get("value", "")) for f in row}
        # Logs Insights writes times in UTC: "2026-03-01 12:00:00.000".
        moment = dt.datetime.strptime(fields["@timestamp"], "%Y-%m-%d %H:%M:%S.%f")
        task, _ = prediction_of(json.loads(fields["@message"]))
        return int(moment.replace(tzinfo=dt.UTC).timestamp()), task
    return None


def run(
    settings: Settings,
    *,
    lambda_client: Any,
    logs: Any,
    cloudwatch: Any,
    now: int,
    expired: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    split = sides(lambda_client, settings)
    if split is None:
        print(json.dumps({"canary": None, "reason": "one version behind the alias"}))
        return {"canary": None}
    version = [{"Name": "ModelVersion", "Value": settings.model_version}]

    def metric(name: str, value: float, unit: str = "Count") -> dict[str, Any]:
        return {"MetricName": name, "Dimensions": version, "Value": value, "Unit": unit}

    began = canary_start(logs, settings, split[1], now, expired=expired, sleep=sleep)
    if began is None:
        data = [metric("CanarySamples", 0), metric("CanaryRequests", 0)]
        cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=data)
        summary = {"stable": split[0], "candidate": split[1], "samples": 0, "requests": 0,
                   "report": None, "reason": "no capture record of the candidate yet"}  # fmt: skip
        print(json.dumps(summary))
        return summary
    start, task = began
    window = Window(start=start, end=now)
    # Aggregated per request by Logs Insights: a side's requests fit a query where its rows
    # (up to 100 captured a request) would not, so every look reads the canary whole.
    stable, candidate = (
        fetch_requests(logs, settings.log_group, version, task, window, expired=expired,
                       sleep=sleep)
        for version in split
    )  # fmt: skip
    for name, side in (("stable", stable), ("candidate", candidate)):
        if side.skipped and not side.rows:
            # A model of another task cannot shift "the same way": there is nothing to compare.
            raise ValueError(f"the {name} side's capture records are not {task} ones")
    samples = min(stable.total_rows, candidate.total_rows)
    requests = min(stable.requests, candidate.requests)
    data = [metric("CanarySamples", samples), metric("CanaryRequests", requests)]
    labels = sorted({label for side in (stable, candidate) for s in side.sums.values()
                     for label in s}) if task == "multiclass" else None  # fmt: skip
    report = decide(
        from_aggregates(stable, labels),
        from_aggregates(candidate, labels),
        Thresholds(min_requests=settings.min_requests),
    )
    if report.judged:
        data.append(metric("CanaryHarm", 1 if report.harmful else 0))
    if report.psi is not None:
        data.append(metric("PredictionShiftPSI", report.psi, "None"))
    cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=data)
    notes = [
        f"the {name} side's requests were truncated at the queries' limit: the newest ones"
        for name, rows in (("stable", stable), ("candidate", candidate))
        if rows.truncated
    ]
    if now - start >= LOOKBACK_HOURS * 3600:
        notes.append(f"the canary is older than {LOOKBACK_HOURS} h: judged on its last ones")
    summary = {"stable": split[0], "candidate": split[1], "since": start, "samples": samples,
               "requests": requests, "report": report.to_json(), "notes": notes,
               "sample_truncated": {"stable": stable.truncated,
                                    "candidate": candidate.truncated}}  # fmt: skip
    print(json.dumps(summary, default=str))
    return summary


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    del event  # the schedule's event carries nothing the evaluator needs
    return scheduled_run(
        run,
        Settings.from_env,
        context,
        lambda_client="lambda",
        logs="logs",
        cloudwatch="cloudwatch",
    )

"""Scheduled canary evaluator: do the candidate's predictions shift from the stable side's?

While the alias splits traffic between two versions (a manual canary, or a CodeDeploy
shift), every run reads both versions' capture records of the last window (Logs Insights,
by ``lambda_version``), and compares the candidate's predictions with the stable side's
(serving.canary, bins from the stable side): binary probabilities (PSI,
positive-rate test) and regression values in the stable side's quantile bins, multiclass
predicted classes one bin per class.
Because weighted routing is random per request, both sides see the same input
distribution: a shift is the model's. It publishes, per candidate model version:

* ``CanarySamples`` {ModelVersion}: the fewer of the two sides' captured rows;
* ``PredictionShiftPSI`` {ModelVersion}: only with at least ``MIN_ROWS`` rows per side.

The stack's prediction-shift alarm pages in manual mode and rolls the shift back in
automated mode. With one version behind the alias it publishes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitors.schedule import MonitorSettings, scheduled_run
from serving.canary import Thresholds, analyse, prediction_shift_psi
from serving.insights import Window, fetch, setting


@dataclass(frozen=True)
class Settings(MonitorSettings):
    function_name: str
    alias_name: str
    min_rows: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            **MonitorSettings.common(env),
            function_name=setting(env, "FUNCTION_NAME"),
            alias_name=setting(env, "ALIAS_NAME"),
            min_rows=int(setting(env, "MIN_ROWS")),
        )


def sides(lambda_client: Any, settings: Settings) -> tuple[str, str] | None:
    """(stable, candidate) Lambda versions the alias splits between, or None."""
    alias = lambda_client.get_alias(FunctionName=settings.function_name, Name=settings.alias_name)
    weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
    if len(weights) != 1:
        return None
    (candidate,) = weights
    return str(alias["FunctionVersion"]), str(candidate)


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
    window = Window(start=now - settings.window_minutes * 60, end=now)
    stable, candidate = (
        fetch(logs, settings.log_group, version, window, expired=expired, sleep=sleep,
              field="lambda_version")
        for version in split
    )  # fmt: skip
    samples = min(len(stable.predictions), len(candidate.predictions))
    version = [{"Name": "ModelVersion", "Value": settings.model_version}]
    data: list[dict[str, Any]] = [
        {"MetricName": "CanarySamples", "Dimensions": version, "Value": samples, "Unit": "Count"}
    ]
    task = stable.task or candidate.task or "binary"
    if candidate.task is not None and stable.task is not None and candidate.task != task:
        # A model of another task cannot shift "the same way": there is nothing to compare.
        raise ValueError(
            f"the candidate's capture records are {candidate.task}, the stable side's {task}"
        )
    psi: float | None
    if task == "binary":
        report = analyse(
            stable.predictions,
            candidate.predictions,
            thresholds=Thresholds(min_samples=settings.min_rows),
        )
        psi, described = report.psi, report.to_json()
    else:
        judged = samples >= settings.min_rows
        psi = (
            prediction_shift_psi(stable.predictions, candidate.predictions, task)
            if judged
            else None
        )
        described = {"task": task, "psi": psi,
                     "verdict": None if judged else "too few requests to judge"}  # fmt: skip
    if samples >= settings.min_rows and psi is not None:
        data.append(
            {"MetricName": "PredictionShiftPSI", "Dimensions": version, "Value": psi,
             "Unit": "None"}
        )  # fmt: skip
    cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=data)
    summary = {"stable": split[0], "candidate": split[1], "samples": samples,
               "sample_truncated": {"stable": stable.truncated,
                                    "candidate": candidate.truncated},
               "report": described}  # fmt: skip
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

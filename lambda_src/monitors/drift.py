"""Scheduled drift monitor: PSI of the last window's captured traffic against training.

Every ``schedule`` (an EventBridge rule) it reads the deployed model version's manifest
from the model bucket (its ``reference_distributions``), queries the function's log group
for that version's capture records of the last window (serving.insights, Logs Insights),
computes PSI per feature and for the prediction (binary: the probability; multiclass: the
predicted class; regression: the value), each request weighing 1, and judges each line
against the reference's own PSI spread at that many requests with Holm's correction over
the features (serving.drift, the same code as ``python -m tools.drift``), and publishes:

* ``DriftRows`` and ``DriftRequests`` {ModelVersion}: captured rows and distinct requests
  judged (0 is published too);
* ``FeaturePSI`` {ModelVersion, Feature}, ``MaxFeaturePSI``, ``PredictionPSI`` and
  ``DriftedFeatures`` (how many features drifted by that rule) {ModelVersion}: only when
  there were at least ``MIN_REQUESTS`` requests.

The stack alarms on DriftedFeatures >= 1 and on PredictionPSI. Runs off the request path;
its one PutMetricData call per run is not on any caller's way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitors.schedule import MonitorSettings, scheduled_run
from serving.distributions import read_reference
from serving.drift import PREDICTION, DriftThresholds, drift_report
from serving.insights import Window, fetch, setting


@dataclass(frozen=True)
class Settings(MonitorSettings):
    bucket: str
    manifest_key: str
    window_minutes: int
    thresholds: DriftThresholds

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            **MonitorSettings.common(env),
            bucket=setting(env, "MODEL_BUCKET"),
            manifest_key=setting(env, "MANIFEST_KEY"),
            window_minutes=int(setting(env, "WINDOW_MINUTES")),
            thresholds=DriftThresholds(
                watch=float(setting(env, "PSI_WATCH")),
                alarm=float(setting(env, "PSI_ALARM")),
                min_requests=int(setting(env, "MIN_REQUESTS")),
            ),
        )


def run(
    settings: Settings,
    *,
    s3: Any,
    logs: Any,
    cloudwatch: Any,
    now: int,
    expired: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    manifest = json.loads(
        s3.get_object(Bucket=settings.bucket, Key=settings.manifest_key)["Body"].read()
    )
    reference = read_reference(manifest, where=settings.manifest_key)
    window = Window(start=now - settings.window_minutes * 60, end=now)
    rows = fetch(
        logs, settings.log_group, settings.model_version, window, expired=expired, sleep=sleep
    )
    if rows.task is not None and rows.task != reference.task:
        raise ValueError(
            f"{settings.model_version}'s capture records are {rows.task} but its manifest's "
            f"reference is {reference.task}"
        )
    report = drift_report(
        reference,
        rows.features,
        rows.predictions,
        settings.thresholds,
        feature_requests=rows.request_ids,
        prediction_requests=rows.request_ids,
    )
    version = {"Name": "ModelVersion", "Value": settings.model_version}
    data: list[dict[str, Any]] = [
        {"MetricName": "DriftRows", "Dimensions": [version], "Value": len(rows.features),
         "Unit": "Count"},
        {"MetricName": "DriftRequests", "Dimensions": [version], "Value": rows.requests,
         "Unit": "Count"},
    ]  # fmt: skip
    if report.judged:
        feature_lines = [line for line in report.lines if line.name != PREDICTION]
        data += [
            {"MetricName": "FeaturePSI", "Unit": "None", "Value": line.psi,
             "Dimensions": [version, {"Name": "Feature", "Value": line.name}]}
            for line in feature_lines
        ]  # fmt: skip
        data.append(
            {"MetricName": "MaxFeaturePSI", "Dimensions": [version], "Unit": "None",
             "Value": max(line.psi for line in feature_lines)}
        )  # fmt: skip
        data.append(
            {"MetricName": "DriftedFeatures", "Dimensions": [version], "Unit": "Count",
             "Value": report.drifted_features}
        )  # fmt: skip
        data += [
            {"MetricName": "PredictionPSI", "Dimensions": [version], "Unit": "None",
             "Value": line.psi}
            for line in report.lines
            if line.name == PREDICTION
        ]  # fmt: skip
    cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=data)
    summary = {"model_version": settings.model_version, "rows": len(rows.features),
               "requests": rows.requests, "sample_truncated": rows.truncated,
               "skipped": rows.skipped, "report": report.to_json()}  # fmt: skip
    print(json.dumps(summary, default=str))
    return summary


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    del event  # the schedule's event carries nothing the monitor needs
    return scheduled_run(
        run, Settings.from_env, context, s3="s3", logs="logs", cloudwatch="cloudwatch"
    )

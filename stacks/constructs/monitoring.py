"""Monitoring of one function behind its alias: alarm topic, alarms, dashboard.

A thin composition: each part is its own construct (alarm_topic, alarms, dashboard) on the
metrics that lambda_metrics builds. The topic and the dashboard keep the logical IDs of the
first release (their construct IDs are "Default" and "Dashboard"/"Default", which CDK leaves
out of logical IDs), so upgrading replaces neither: a replaced topic loses its confirmed
e-mail subscriptions, and a replaced dashboard of the same name is deleted in the cleanup.
"""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.constructs.alarm_topic import AlarmTopic
from stacks.constructs.alarms import Alarms, alarm_names
from stacks.constructs.capture_delivery import CaptureDelivery
from stacks.constructs.dashboard import ServiceDashboard
from stacks.constructs.drift_monitor import DriftMonitor
from stacks.constructs.lambda_metrics import LambdaMetrics
from stacks.settings import AlarmSettings, DriftSettings, ModelArtifact, Rollout, RolloutMode


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function_name: str,
        alias_name: str,
        candidate_version: str,
        rollout: Rollout,
        model: ModelArtifact,
        metrics_namespace: str,
        dashboard_name: str,
        alarms: AlarmSettings,
        drift: DriftSettings | None,
        canary_analysis: bool = False,
        drift_monitor: DriftMonitor | None = None,
        capture: CaptureDelivery | None = None,
    ) -> None:
        """``drift_monitor`` and ``capture``: watched too (errors, failed runs, delivery)."""
        super().__init__(scope, id_)
        automated = rollout.mode is RolloutMode.AUTOMATED
        model_version, task = model.model_version, model.task
        stable_model_version = rollout.stable_model_version
        stable_lambda_version = (
            None if rollout.stable_lambda_version is None else str(rollout.stable_lambda_version)
        )
        metrics = LambdaMetrics(
            function_name=function_name, alias_name=alias_name, namespace=metrics_namespace
        )
        names = alarm_names(
            dashboard_name,
            automated=automated,
            drift=drift is not None,
            canary_analysis=canary_analysis,
            capture=capture is not None,
        )
        self.topic = AlarmTopic(self, "Default", alarm_names=list(names.values()),
                                email=alarms.email).topic  # fmt: skip
        self.alarms = Alarms(
            self,
            "Alarms",
            metrics=metrics,
            names=names,
            settings=alarms,
            model_version=model_version,
            # Only a manual canary runs two models at once.
            stable_model_version=stable_model_version
            if stable_lambda_version is not None and not automated
            else None,
            automated=automated,
            drift=drift,
            canary_analysis=canary_analysis,
            topic=self.topic,
            drift_monitor=drift_monitor,
            capture=capture,
        )
        stable_model = f", model {stable_model_version}" if stable_model_version else ""
        sides = [(f"candidate (model {model_version})", candidate_version)]
        if stable_lambda_version is not None:
            sides.insert(
                0,
                (f"stable (version {stable_lambda_version}{stable_model})", stable_lambda_version),
            )
        # Model versions to graph by name, stable first; None = unknown, SEARCH them all.
        models: list[tuple[str, str]] | None = None
        if stable_model_version is not None:
            previous = "stable" if stable_lambda_version is not None else "previous"
            models = [(f"{previous} (model {stable_model_version})", stable_model_version)]
            if stable_model_version != model_version:
                models.append((f"candidate (model {model_version})", model_version))
        self.dashboard: cloudwatch.Dashboard = ServiceDashboard(
            self,
            "Dashboard",
            metrics=metrics,
            dashboard_name=dashboard_name,
            alias_name=alias_name,
            sides=sides,
            models=models,
            versions_by_search=automated,
            drift=drift is not None,
            canary_analysis=canary_analysis,
            task=task,
        ).dashboard

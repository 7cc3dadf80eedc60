"""The dashboard: stable and candidate side by side, on dimension sets Lambda publishes.

* Invocation metrics (Invocations, Errors, Duration) per ExecutedVersion behind the alias.
* Concurrency and provisioned-concurrency metrics per version Resource (``function:7``):
  they have no ExecutedVersion, and provisioned concurrency sits on versions only.
* Throttles through the alias and for the whole function (a throttled call runs no version).
* Handler metrics per ModelVersion: by name when the rollout records both models, else a
  SEARCH over every model version that reports.

In automated mode the version CodeDeploy shifts from is not in the template, so the
per-version graphs SEARCH the function's series instead of naming versions.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.constructs.lambda_metrics import (
    EXECUTED_VERSION,
    RESOURCE,
    LambdaMetrics,
)
from stacks.settings import ANSWER_METRIC


class ServiceDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        metrics: LambdaMetrics,
        dashboard_name: str,
        alias_name: str,
        sides: Sequence[tuple[str, str]],
        models: Sequence[tuple[str, str]] | None,
        versions_by_search: bool,
        drift: bool,
        canary_analysis: bool = False,
        task: str = "binary",
    ) -> None:
        """``sides``: (label, Lambda version) per side of the alias, stable first.

        ``models``: (label, model version) to graph by name, or None to SEARCH them all.
        """
        super().__init__(scope, id_)
        self._metrics = metrics
        self._sides = sides
        self._models = models
        self._by_search = versions_by_search
        # "Default" keeps the dashboard's logical ID where the first release put it: a new
        # logical ID would create the same dashboard name and then delete it in cleanup.
        self.dashboard = cloudwatch.Dashboard(self, "Default", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"## {dashboard_name}\n"
                + " | ".join(f"**{label}**" for label, _ in sides)
                + f"\n\nAlias `{alias_name}`. Invocations, errors and duration per version that "
                "ran the request (ExecutedVersion); concurrency per version; model metrics "
                "per ModelVersion.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            self._versions(EXECUTED_VERSION, "Invocations", "Invocations", "Sum"),
            self._versions(
                EXECUTED_VERSION,
                "Errors",
                "Errors",
                "Sum",
                also=self._model_series("ServerErrors", "Sum", "5xx"),
            ),
        )
        self.dashboard.add_widgets(
            self._versions(EXECUTED_VERSION, "Duration p50 (ms)", "Duration", "p50"),
            self._versions(EXECUTED_VERSION, "Duration p99 (ms)", "Duration", "p99"),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Throttles",
                left=[
                    metrics.through_alias("Throttles", "Sum").with_(label=f"alias {alias_name}"),
                    metrics.function("Throttles", "Sum").with_(label="function, any qualifier"),
                ],
                width=12,
                height=6,
            ),
            self._versions(RESOURCE, "Concurrent executions", "ConcurrentExecutions", "Maximum"),
        )
        self.dashboard.add_widgets(
            self._versions(
                RESOURCE,
                "Provisioned concurrency utilization",
                "ProvisionedConcurrencyUtilization",
                "Maximum",
            ),
            self._versions(
                RESOURCE,
                "Provisioned concurrency spillover",
                "ProvisionedConcurrencySpilloverInvocations",
                "Sum",
            ),
        )
        self.dashboard.add_widgets(
            self._per_model("Inference latency p99 (ms)", "InferenceLatency", "p99"),
            self._per_model(
                ANSWER_METRIC[task].title.capitalize(), ANSWER_METRIC[task].name, "Average"
            ),
        )
        if drift:
            # Drift against the training reference, from the scheduled monitor.
            self.dashboard.add_widgets(
                self._per_model("Max feature PSI vs training", "MaxFeaturePSI", "Maximum", 8),
                self._per_model("Prediction PSI vs training", "PredictionPSI", "Maximum", 8),
                self._per_model("Rows judged for drift", "DriftRows", "Sum", 8),
            )
        if canary_analysis:
            # The canary evaluator, per candidate model version: harm (which rolls back in
            # automated mode) beside the shift (which pages), and the sample behind both.
            self.dashboard.add_widgets(
                self._per_model("Canary harm (1 = significant shift)", "CanaryHarm", "Maximum", 6),
                self._per_model(
                    "Candidate vs stable predictions: PSI", "PredictionShiftPSI", "Maximum", 6
                ),
                self._per_model(
                    "Canary requests compared (fewer side)", "CanaryRequests", "Maximum", 6
                ),
                self._per_model("Canary rows compared (fewer side)", "CanarySamples", "Maximum", 6),
            )
        self.dashboard.add_widgets(
            self._per_model("Cold starts", "ColdStart", "Sum", 8),
            self._per_model("Model load time p99 (ms)", "ModelLoadTime", "p99", 8),
            self._per_model("Predictions", "Predictions", "Sum", 8),
        )

    def _versions(
        self,
        dimensions: frozenset[str],
        title: str,
        name: str,
        statistic: str,
        also: Sequence[cloudwatch.IMetric] = (),
    ) -> cloudwatch.GraphWidget:
        """``name`` per version on ``dimensions`` (EXECUTED_VERSION or RESOURCE): a line
        per side of the alias, or one SEARCH of every version when the sides are unknown."""
        metrics: list[cloudwatch.IMetric]
        if self._by_search:
            metrics = [self._metrics.search(name, statistic, dimensions)]
        else:
            metrics = [
                self._metrics.per_version(name, statistic, version, dimensions).with_(label=label)
                for label, version in self._sides
            ]
        return cloudwatch.GraphWidget(title=title, left=[*metrics, *also], width=12, height=6)

    def _per_model(
        self, title: str, name: str, statistic: str, width: int = 12
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title, left=self._model_series(name, statistic), width=width, height=6
        )

    def _model_series(
        self, name: str, statistic: str, prefix: str = ""
    ) -> list[cloudwatch.IMetric]:
        lead = f"{prefix}, " if prefix else ""
        if self._models is not None:
            return [
                self._metrics.model(name, statistic, version).with_(label=f"{lead}{label}")
                for label, version in self._models
            ]
        # Each series is one model version; the legend names it.
        label = f"{lead}model ${{PROP('Dim.ModelVersion')}}" if prefix else ""
        return [self._metrics.model_search(name, statistic, label)]

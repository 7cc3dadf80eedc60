"""Dashboard (stable and candidate side by side) and alarms to an SNS topic."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

LATENCY_P99_THRESHOLD_MS = 500
ERRORS_IN_FIVE_MINUTES_THRESHOLD = 5
MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)


class Monitoring(Construct):
    """Per-version Lambda metrics and per-model handler metrics, and three alarms.

    Behind an alias, Lambda publishes each version's invocation metrics with the
    dimensions FunctionName, Resource = ``function:alias`` and ExecutedVersion; that is
    how stable and candidate are told apart (``Version.metric()`` in CDK does not use it).
    The handler's EMF metrics carry only ModelVersion. When the rollout records the stable
    side's model (``stable_model_version``), the model graphs show both model versions by
    name and the latency alarm watches the worse of the two; otherwise they SEARCH the
    namespace and show every model version that reports. In automated mode the version
    CodeDeploy shifts from is not in the template, so the per-version graphs SEARCH the
    alias's ExecutedVersion values instead of naming them.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function_name: str,
        alias_name: str,
        candidate_version: str,
        stable_version: str | None,
        model_version: str,
        stable_model_version: str | None,
        versions_by_search: bool,
        metrics_namespace: str,
        dashboard_name: str,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, id_)
        self._function_name = function_name
        self._alias_resource = f"{function_name}:{alias_name}"
        self._versions_by_search = versions_by_search
        stable_model = f", model {stable_model_version}" if stable_model_version else ""
        sides = [(f"candidate (model {model_version})", candidate_version)]
        if stable_version is not None:
            sides.insert(0, (f"stable (version {stable_version}{stable_model})", stable_version))
        self._sides = sides
        # Model versions to graph by name, stable first; None = unknown, SEARCH them all.
        models: list[tuple[str, str]] | None = None
        if stable_model_version is not None:
            previous = "stable" if stable_version is not None else "previous"
            models = [(f"{previous} (model {stable_model_version})", stable_model_version)]
            if stable_model_version != model_version:
                models.append((f"candidate (model {model_version})", model_version))
        self._models = models
        self._namespace = metrics_namespace

        # CloudWatch cannot publish to a topic under the AWS managed SNS key, so the topic
        # gets its own key that lets CloudWatch encrypt alarm notifications.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
            description="Encrypts the inference alarm topic.",
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        if alarm_email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        # A manual canary pages for either side's model; in automated mode the alarms
        # decide a rollback, so they watch only the new model (rolling back cannot fix
        # the old one, and stable_model_version stays recorded after the shift).
        paired_model = (
            stable_model_version
            if stable_version is not None and stable_model_version not in (None, model_version)
            else None
        )
        latency: cloudwatch.IMetric = self._model_metric(model_version, "InferenceLatency", "p99")
        watched = [model_version]
        if paired_model is not None:
            watched.insert(0, paired_model)
            latency = cloudwatch.MathExpression(
                expression="MAX([stable, candidate])",
                using_metrics={
                    "stable": self._model_metric(paired_model, "InferenceLatency", "p99"),
                    "candidate": latency,
                },
                label="p99 inference latency, worse model version",
                period=MINUTE,
            )
        self.latency_alarm = cloudwatch.Alarm(
            self,
            "LatencyP99",
            alarm_description=f"p99 inference latency of model {' or '.join(watched)} above "
            f"{LATENCY_P99_THRESHOLD_MS} ms in 3 of 5 minutes.",
            metric=latency,
            threshold=LATENCY_P99_THRESHOLD_MS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # The handler answers 503 (model unavailable) and 500 itself, so Lambda's Errors
        # stays 0 while a broken model fails every request; its EMF ServerErrors counts
        # them per model version. FILL keeps one missing series from blanking the sum.
        error_series: dict[str, cloudwatch.IMetric] = {
            "errors": self._lambda_metric("Errors", "Sum", FIVE_MINUTES),
            "candidate": self._model_metric(model_version, "ServerErrors", "Sum", FIVE_MINUTES),
        }
        server_error_models = [model_version]
        if paired_model is not None:
            server_error_models.insert(0, paired_model)
            error_series["stable"] = self._model_metric(
                paired_model, "ServerErrors", "Sum", FIVE_MINUTES
            )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "Errors",
            alarm_description=f"More than {ERRORS_IN_FIVE_MINUTES_THRESHOLD} errors in 5 "
            "minutes: Lambda Errors through the alias (both versions) plus the handler's 5xx "
            f"answers (ServerErrors) of model {' or '.join(server_error_models)}.",
            metric=cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({name}, 0)" for name in error_series),
                using_metrics=error_series,
                label="Lambda errors + 5xx answers",
                period=FIVE_MINUTES,
            ),
            threshold=ERRORS_IN_FIVE_MINUTES_THRESHOLD,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.throttles_alarm = cloudwatch.Alarm(
            self,
            "Throttles",
            alarm_description="Any throttled invocation of the function (any qualifier).",
            metric=cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Throttles",
                dimensions_map={"FunctionName": function_name},
                statistic="Sum",
                period=MINUTE,
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = (self.latency_alarm, self.errors_alarm, self.throttles_alarm)
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"## {dashboard_name}\n"
                + " | ".join(f"**{label}**" for label, _ in sides)
                + f"\n\nAlias `{alias_name}`; Lambda metrics per ExecutedVersion, model "
                "metrics per ModelVersion.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            self._per_version("Invocations", "Invocations", "Sum"),
            self._per_version(
                "Errors",
                "Errors",
                "Sum",
                also=self._model_series("ServerErrors", "Sum", "5xx answers"),
            ),
        )
        self.dashboard.add_widgets(
            self._per_version("Duration p50 (ms)", "Duration", "p50"),
            self._per_version("Duration p99 (ms)", "Duration", "p99"),
        )
        self.dashboard.add_widgets(
            self._per_version("Throttles", "Throttles", "Sum"),
            self._per_version("Concurrent executions", "ConcurrentExecutions", "Maximum"),
        )
        self.dashboard.add_widgets(
            self._per_version(
                "Provisioned concurrency utilization",
                "ProvisionedConcurrencyUtilization",
                "Maximum",
            ),
            self._per_version(
                "Provisioned concurrency spillover",
                "ProvisionedConcurrencySpilloverInvocations",
                "Sum",
            ),
        )
        self.dashboard.add_widgets(
            self._per_model("Inference latency p99 (ms)", "InferenceLatency", "p99"),
            self._per_model("Mean predicted probability", "PredictionProbability", "Average"),
        )
        self.dashboard.add_widgets(
            self._per_model("Cold starts", "ColdStart", "Sum", 8),
            self._per_model("Model load time p99 (ms)", "ModelLoadTime", "p99", 8),
            self._per_model("Predictions", "Predictions", "Sum", 8),
        )

    def _model_metric(
        self, model_version: str, name: str, statistic: str, period: Duration = MINUTE
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={"ModelVersion": model_version},
            statistic=statistic,
            period=period,
        )

    def _lambda_metric(
        self, name: str, statistic: str, period: Duration, executed_version: str | None = None
    ) -> cloudwatch.Metric:
        dimensions = {"FunctionName": self._function_name, "Resource": self._alias_resource}
        if executed_version is not None:
            dimensions["ExecutedVersion"] = executed_version
        return cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
        )

    def _per_version(
        self,
        title: str,
        name: str,
        statistic: str,
        also: Sequence[cloudwatch.IMetric] = (),
    ) -> cloudwatch.GraphWidget:
        metrics: list[cloudwatch.IMetric]
        if self._versions_by_search:
            metrics = [
                cloudwatch.MathExpression(
                    expression="SEARCH('{AWS/Lambda,ExecutedVersion,FunctionName,Resource} "
                    f'MetricName="{name}" Resource="{self._alias_resource}"\', '
                    f"'{statistic}', 60)",
                    label="",
                    period=MINUTE,
                )
            ]
        else:
            metrics = [
                self._lambda_metric(name, statistic, MINUTE, version).with_(label=label)
                for label, version in self._sides
            ]
        return cloudwatch.GraphWidget(title=title, left=[*metrics, *also], width=12, height=6)

    def _per_model(
        self, title: str, name: str, statistic: str, width: int = 12
    ) -> cloudwatch.GraphWidget:
        metrics = self._model_series(name, statistic)
        return cloudwatch.GraphWidget(title=title, left=metrics, width=width, height=6)

    def _model_series(
        self, name: str, statistic: str, prefix: str = ""
    ) -> list[cloudwatch.IMetric]:
        """One line per model version: by name when known, else every one that reports."""
        lead = f"{prefix}, " if prefix else ""
        if self._models is not None:
            return [
                self._model_metric(version, name, statistic).with_(label=f"{lead}{label}")
                for label, version in self._models
            ]
        return [
            cloudwatch.MathExpression(
                expression=(
                    f"SEARCH('{{{self._namespace},ModelVersion}} "
                    f"MetricName=\"{name}\"', '{statistic}', 60)"
                ),
                # Each series is one model version; name it in the legend.
                label=f"{lead}model ${{PROP('Dim.ModelVersion')}}" if prefix else "",
                period=MINUTE,
            )
        ]

"""The alarms: latency, errors of every version behind the alias, throttles.

Thresholds and periods come from the environment's ``alarms`` block (AlarmSettings). Each
alarm is named (``<environment>-<model>-<purpose>``) so that the topic and key policies
can name the alarms allowed to publish.

In manual mode one errors alarm counts every version behind the alias: Lambda's Errors
through the alias plus the handler's 5xx answers (ServerErrors) per function, which the
handler publishes whatever model a version runs; a canary configured with ``-c``, whose
stable model is not recorded, is covered too. In automated mode the rollback alarm counts
only the new model's 5xx answers (rolling back cannot fix the old one), and a second,
page-only alarm counts every version's.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.constructs.lambda_metrics import MINUTE, LambdaMetrics
from stacks.settings import AlarmSettings, DriftSettings

LATENCY = "latency-p99"
ERRORS = "errors"
ERRORS_ALL_VERSIONS = "errors-all-versions"
THROTTLES = "throttles"
FEATURE_DRIFT = "feature-drift"
PREDICTION_DRIFT = "prediction-drift"
PREDICTION_SHIFT = "prediction-shift"


def alarm_names(
    prefix: str, *, automated: bool, drift: bool, canary_analysis: bool = False
) -> dict[str, str]:
    """Purpose -> alarm name, known before the alarms exist (the topic policy needs them)."""
    purposes = [LATENCY, ERRORS, THROTTLES]
    purposes += [ERRORS_ALL_VERSIONS] if automated else []
    purposes += [FEATURE_DRIFT, PREDICTION_DRIFT] if drift else []
    purposes += [PREDICTION_SHIFT] if canary_analysis else []
    return {purpose: f"{prefix}-{purpose}" for purpose in purposes}


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        metrics: LambdaMetrics,
        names: dict[str, str],
        settings: AlarmSettings,
        model_version: str,
        stable_model_version: str | None,
        automated: bool,
        drift: DriftSettings | None,
        topic: sns.ITopic,
        canary_analysis: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        watched = [model_version]
        if stable_model_version is not None and stable_model_version != model_version:
            watched.insert(0, stable_model_version)

        latency: cloudwatch.IMetric = metrics.model("InferenceLatency", "p99", model_version)
        if len(watched) == 2:
            latency = cloudwatch.MathExpression(
                expression="MAX([stable, candidate])",
                using_metrics={
                    "stable": metrics.model("InferenceLatency", "p99", watched[0]),
                    "candidate": latency,
                },
                label="p99 inference latency, worse model version",
                period=MINUTE,
            )
        self.latency = cloudwatch.Alarm(
            self,
            "LatencyP99",
            alarm_name=names[LATENCY],
            alarm_description=f"p99 inference latency of model {' or '.join(watched)} above "
            f"{settings.latency_p99_ms} ms in {settings.latency_breaching_minutes} of "
            f"{settings.latency_evaluation_minutes} minutes.",
            metric=latency,
            threshold=settings.latency_p99_ms,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=settings.latency_evaluation_minutes,
            datapoints_to_alarm=settings.latency_breaching_minutes,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        period = Duration.minutes(settings.errors_period_minutes)
        # The handler answers 503 (model unavailable) and 500 itself, so Lambda's Errors
        # stays 0 while a broken model fails every request: its ServerErrors counts them.
        self.errors = self._errors_alarm(
            "Errors",
            names[ERRORS],
            settings,
            metrics,
            period,
            server_errors=(
                metrics.model("ServerErrors", "Sum", model_version, period)
                if automated
                else metrics.model_all_versions("ServerErrors", "Sum", period)
            ),
            scope_text=f"of model {model_version}" if automated else "of every version",
        )
        self.errors_all_versions: cloudwatch.Alarm | None = None
        if automated:
            self.errors_all_versions = self._errors_alarm(
                "ErrorsAllVersions",
                names[ERRORS_ALL_VERSIONS],
                settings,
                metrics,
                period,
                server_errors=metrics.model_all_versions("ServerErrors", "Sum", period),
                scope_text="of every version (pages only; CodeDeploy does not watch it)",
            )
        self.throttles = cloudwatch.Alarm(
            self,
            "Throttles",
            alarm_name=names[THROTTLES],
            alarm_description=f"More than {settings.throttles_threshold} throttled invocations "
            "of the function (any qualifier) in a minute.",
            metric=metrics.function("Throttles", "Sum"),
            threshold=settings.throttles_threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # Drift against training pages; it does not roll a deployment back (the training
        # reference, not the previous version, is what the live data moved away from).
        self.drift: list[cloudwatch.Alarm] = []
        if drift is not None:
            for id_, purpose, metric, what in (
                ("FeatureDrift", FEATURE_DRIFT, "MaxFeaturePSI", "a feature's"),
                ("PredictionDrift", PREDICTION_DRIFT, "PredictionPSI", "the predictions'"),
            ):
                self.drift.append(
                    cloudwatch.Alarm(
                        self,
                        id_,
                        alarm_name=names[purpose],
                        alarm_description=f"PSI of {what} live distribution against the "
                        f"training reference of model {model_version} above "
                        f"{drift.psi_alarm:g} (drift monitor, every "
                        f"{drift.schedule_minutes} minutes).",
                        metric=metrics.model(
                            metric, "Maximum", model_version,
                            Duration.minutes(drift.schedule_minutes),
                        ),
                        threshold=drift.psi_alarm,
                        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                        evaluation_periods=1,
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    )
                )  # fmt: skip
        # A candidate that predicts very differently from the stable side, on the same
        # traffic (the canary evaluator, every 5 minutes): pages in manual mode, rolls the
        # shift back in automated mode.
        self.prediction_shift: cloudwatch.Alarm | None = None
        if canary_analysis and drift is not None:
            self.prediction_shift = cloudwatch.Alarm(
                self,
                "PredictionShift",
                alarm_name=names[PREDICTION_SHIFT],
                alarm_description=f"PSI of the candidate's (model {model_version}) predicted "
                "probabilities against the stable side's on the same traffic above "
                f"{drift.psi_alarm:g} (canary evaluator, last 30 minutes).",
                metric=metrics.model(
                    "PredictionShiftPSI", "Maximum", model_version, Duration.minutes(5)
                ),
                threshold=drift.psi_alarm,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        # What CodeDeploy rolls back on in automated mode.
        self.rollback: Sequence[cloudwatch.Alarm] = (
            self.latency,
            self.errors,
            self.throttles,
            *([self.prediction_shift] if self.prediction_shift else []),
        )
        self.all: Sequence[cloudwatch.Alarm] = (
            *self.rollback,
            *([self.errors_all_versions] if self.errors_all_versions else []),
            *self.drift,
        )
        for alarm in self.all:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            alarm.add_ok_action(cw_actions.SnsAction(topic))

    def _errors_alarm(
        self,
        id_: str,
        name: str,
        settings: AlarmSettings,
        metrics: LambdaMetrics,
        period: Duration,
        *,
        server_errors: cloudwatch.IMetric,
        scope_text: str,
    ) -> cloudwatch.Alarm:
        series: dict[str, cloudwatch.IMetric] = {
            "errors": metrics.through_alias("Errors", "Sum", period),
            "answers5xx": server_errors,
        }
        minutes = settings.errors_period_minutes
        return cloudwatch.Alarm(
            self,
            id_,
            alarm_name=name,
            alarm_description=f"More than {settings.errors_threshold} errors in {minutes} "
            "minutes: Lambda Errors through the alias (every version) plus the handler's 5xx "
            f"answers (ServerErrors) {scope_text}.",
            # FILL keeps one missing series from blanking the sum.
            metric=cloudwatch.MathExpression(
                expression="FILL(errors, 0) + FILL(answers5xx, 0)",
                using_metrics=series,
                label="Lambda errors + 5xx answers",
                period=period,
            ),
            threshold=settings.errors_threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

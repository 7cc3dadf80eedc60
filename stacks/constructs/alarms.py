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

A canary (manual, or a CodeDeploy shift) is judged by the canary evaluator every 5 minutes,
on the same traffic: ``CanaryHarm`` (1 when its sequential test finds a significant shift of
the positive rate, the mean prediction or the class mix) rolls back in automated mode and
pages in manual mode; ``PredictionShiftPSI`` (a difference, not harm: a better-calibrated
candidate differs too) pages with a hold in both modes and never rolls back.

The monitors are watched too, or a broken one looks like "no drift": each monitor
function's Errors, the queue their failed runs land in (stacks.constructs.drift_monitor),
and the capture stream's delivery to S3. These page; none rolls a deployment back.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from serving.drift import DEFAULT_ALPHA
from stacks.constructs.capture_delivery import BUFFERING_MINUTES, CaptureDelivery
from stacks.constructs.drift_monitor import CANARY_SCHEDULE_MINUTES, DriftMonitor
from stacks.constructs.lambda_metrics import MINUTE, LambdaMetrics
from stacks.settings import AlarmSettings, DriftSettings

LATENCY = "latency-p99"
ERRORS = "errors"
ERRORS_ALL_VERSIONS = "errors-all-versions"
THROTTLES = "throttles"
FEATURE_DRIFT = "feature-drift"
PREDICTION_DRIFT = "prediction-drift"
PREDICTION_SHIFT = "prediction-shift"
CANARY_HARM = "canary-harm"
DRIFT_MONITOR_FAILURES = "drift-monitor-failures"
CANARY_EVALUATOR_FAILURES = "canary-evaluator-failures"
MONITOR_FAILED_RUNS = "monitor-failed-runs"
CAPTURE_DELIVERY = "capture-delivery"
# Amazon Data Firehose developer guide, "Implement best practices with CloudWatch Alarms"
# (firehose-cloudwatch-metrics-best-practices): alarm when DeliveryToS3.DataFreshness, the
# age of the oldest record not yet delivered to S3 (seconds), exceeds the buffering limit,
# at most 15 minutes. The stream buffers 5 minutes; three intervals without delivery page.
CAPTURE_FRESHNESS_SECONDS = 3 * BUFFERING_MINUTES * 60
# The prediction-shift hold: PSI above the block's psi_alarm in 2 of the last 3 evaluator
# runs (5-minute looks). One look is one noisy estimate, noisiest just after the evaluator
# first has enough requests; the next looks add 5 minutes of requests each, so a breach
# that is noise tends to fall back while a real shift stays. Two of three, not three of
# three: one dip below the level does not reset a shift that hovers at it. A persistent
# shift pages 10 to 15 minutes after it shows; it only pages, harm is CanaryHarm's job.
PREDICTION_SHIFT_DATAPOINTS = 2
PREDICTION_SHIFT_EVALUATION_PERIODS = 3


def alarm_names(
    prefix: str,
    *,
    automated: bool,
    drift: bool,
    canary_analysis: bool = False,
    capture: bool = False,
) -> dict[str, str]:
    """Purpose -> alarm name, known before the alarms exist (the topic policy needs them)."""
    purposes = [LATENCY, ERRORS, THROTTLES]
    purposes += [ERRORS_ALL_VERSIONS] if automated else []
    purposes += [FEATURE_DRIFT, PREDICTION_DRIFT] if drift else []
    purposes += [PREDICTION_SHIFT, CANARY_HARM] if canary_analysis else []
    purposes += [DRIFT_MONITOR_FAILURES, MONITOR_FAILED_RUNS] if drift else []
    purposes += [CANARY_EVALUATOR_FAILURES] if drift and canary_analysis else []
    purposes += [CAPTURE_DELIVERY] if capture else []
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
        drift_monitor: DriftMonitor | None = None,
        capture: CaptureDelivery | None = None,
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
            every = f"drift monitor, every {drift.schedule_minutes} minutes"
            greater = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
            at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            for id_, purpose, metric, threshold, operator, description in (
                # A feature drifted: its PSI is above psi_alarm and beyond what the
                # reference itself reaches at that many requests, Holm-corrected over the
                # features, so that P(page | no drift) <= DEFAULT_ALPHA per run
                # (serving.drift).
                (
                    "FeatureDrift",
                    FEATURE_DRIFT,
                    "DriftedFeatures",
                    1,
                    at_least,
                    "At least one feature's live distribution drifted from the training "
                    f"reference of model {model_version}: PSI above {drift.psi_alarm:g} and "
                    "beyond the reference's own spread at that many requests (p <= "
                    f"{DEFAULT_ALPHA:g} after Holm's correction over the features; {every}).",
                ),
                # PSI alone: the floor of drift.min_requests keeps P(PSI > 0.25 | no drift)
                # below 0.1 % per run (docs/capture-and-drift.md, "False alarms").
                (
                    "PredictionDrift",
                    PREDICTION_DRIFT,
                    "PredictionPSI",
                    drift.psi_alarm,
                    greater,
                    "PSI of the predictions' live distribution against the training reference "
                    f"of model {model_version} above {drift.psi_alarm:g} ({every}).",
                ),
            ):
                self.drift.append(
                    cloudwatch.Alarm(
                        self,
                        id_,
                        alarm_name=names[purpose],
                        alarm_description=description,
                        metric=metrics.model(
                            metric, "Maximum", model_version,
                            Duration.minutes(drift.schedule_minutes),
                        ),
                        threshold=threshold,
                        comparison_operator=operator,
                        evaluation_periods=1,
                        # The monitor publishes both only for a window of at least
                        # drift.min_requests requests: a quiet window publishes none, and
                        # that is no drift (breaching would page every quiet night). A
                        # monitor that is broken is what the drift-monitor-failures and
                        # monitor-failed-runs alarms report.
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    )
                )  # fmt: skip
        self.prediction_shift: cloudwatch.Alarm | None = None
        self.canary_harm: cloudwatch.Alarm | None = None
        if canary_analysis and drift is not None:
            self.prediction_shift, self.canary_harm = self._canary(
                names, metrics, model_version, drift, automated=automated
            )
        self.monitor_health = self._monitor_health(names, drift_monitor, capture)
        # What CodeDeploy rolls back on in automated mode: the new version's errors and
        # latency, throttles, and evidence of harm. Never the prediction shift: PSI measures
        # a difference, and a better-calibrated candidate differs too.
        self.rollback: Sequence[cloudwatch.Alarm] = (
            self.latency,
            self.errors,
            self.throttles,
            *([self.canary_harm] if self.canary_harm else []),
        )
        # Every alarm notifies the topic (a rollback too); these only notify.
        self.page_only: Sequence[cloudwatch.Alarm] = (
            *([self.errors_all_versions] if self.errors_all_versions else []),
            *([self.prediction_shift] if self.prediction_shift else []),
            *self.drift,
            *self.monitor_health,
        )
        self.all: Sequence[cloudwatch.Alarm] = (*self.rollback, *self.page_only)
        for alarm in self.all:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            alarm.add_ok_action(cw_actions.SnsAction(topic))

    def _canary(
        self,
        names: dict[str, str],
        metrics: LambdaMetrics,
        model_version: str,
        drift: DriftSettings,
        *,
        automated: bool,
    ) -> tuple[cloudwatch.Alarm, cloudwatch.Alarm]:
        """The canary evaluator's two alarms: (prediction shift, harm), on the candidate.

        Missing data is not breaching in both. The evaluator publishes PredictionShiftPSI
        and CanaryHarm only once both sides have its minimum of requests in the window: a
        young canary, a quiet night and the time between CodeDeploy shifts publish
        nothing, and no test is no evidence of a shift or of harm (breaching would roll back
        every young canary). It also lets a harm alarm left in ALARM by the previous
        candidate return to OK: an updated alarm keeps its state, and with "ignore" it would
        keep ALARM into the next deployment, which CodeDeploy would roll back at once. A
        broken evaluator is what canary-evaluator-failures and monitor-failed-runs report.
        """
        period = Duration.minutes(CANARY_SCHEDULE_MINUTES)
        shift = cloudwatch.Alarm(
            self,
            "PredictionShift",
            alarm_name=names[PREDICTION_SHIFT],
            alarm_description=f"PSI of the candidate's (model {model_version}) predictions "
            f"against the stable side's on the same traffic above {drift.psi_alarm:g} in "
            f"{PREDICTION_SHIFT_DATAPOINTS} of the last {PREDICTION_SHIFT_EVALUATION_PERIODS} "
            f"canary evaluator runs (every {CANARY_SCHEDULE_MINUTES} minutes). Pages only: a "
            "difference is not harm, and it never rolls a deployment back.",
            metric=metrics.model("PredictionShiftPSI", "Maximum", model_version, period),
            threshold=drift.psi_alarm,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=PREDICTION_SHIFT_EVALUATION_PERIODS,
            datapoints_to_alarm=PREDICTION_SHIFT_DATAPOINTS,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        action = (
            "CodeDeploy rolls the shift back"
            if automated
            else "pages (manual mode: nothing rolls back by itself)"
        )
        harm = cloudwatch.Alarm(
            self,
            "CanaryHarm",
            alarm_name=names[CANARY_HARM],
            alarm_description=f"The canary evaluator's sequential test finds that the candidate "
            f"(model {model_version}) shifts the positive rate, the mean prediction or the "
            f"class mix from the stable side's on the same traffic: {action}.",
            metric=metrics.model("CanaryHarm", "Maximum", model_version, period),
            threshold=1,
            comparison_operator=(cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD),
            # One datapoint, no hold: the test is always valid (its false-rollback rate holds
            # however often it is looked at, every 5 minutes here), so it has already paid
            # for the repeated looks. A hold on top would only delay a rollback.
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return shift, harm

    def _monitor_health(
        self,
        names: dict[str, str],
        drift_monitor: DriftMonitor | None,
        capture: CaptureDelivery | None,
    ) -> list[cloudwatch.Alarm]:
        """Alarms that say a monitor is broken, not that the model is: they page only.

        Missing data is not breaching in each: no Errors datapoint means no invocation
        (which the failed-runs queue reports when it was due), an empty queue publishes
        nothing once idle, and a stream without records (no captured traffic) publishes no
        freshness. A "did not run" alarm on Invocations < 1 with missing data breaching is
        left out: a new alarm with no data is ALARM at once, so it would page at every
        environment's first deploy and, for the canary evaluator (created with each
        canary), at the start of every canary.
        """
        alarms: list[cloudwatch.Alarm] = []
        if drift_monitor is not None:
            monitors = [("DriftMonitorFailures", DRIFT_MONITOR_FAILURES, drift_monitor.function,
                         drift_monitor.schedule_minutes, "drift monitor")]  # fmt: skip
            if drift_monitor.canary_function is not None:
                monitors.append(("CanaryEvaluatorFailures", CANARY_EVALUATOR_FAILURES,
                                 drift_monitor.canary_function, CANARY_SCHEDULE_MINUTES,
                                 "canary evaluator"))  # fmt: skip
            for id_, purpose, function, minutes, what in monitors:
                # One period per scheduled run: ALARM while the last run failed.
                alarms.append(
                    cloudwatch.Alarm(
                        self,
                        id_,
                        alarm_name=names[purpose],
                        alarm_description=f"A run of the {what} (every {minutes} minutes) "
                        "failed: its PSI metrics are missing, so its alarms cannot fire.",
                        metric=function.metric_errors(
                            statistic="Sum", period=Duration.minutes(minutes)
                        ),
                        threshold=0,
                        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                        evaluation_periods=1,
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    )
                )
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    "MonitorFailedRuns",
                    alarm_name=names[MONITOR_FAILED_RUNS],
                    alarm_description="Monitor runs that failed or never started (Lambda's "
                    "on-failure destination, EventBridge's dead-letter queue) wait in the "
                    "failed-runs queue.",
                    metric=drift_monitor.failed_runs.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=Duration.minutes(5)
                    ),
                    threshold=0,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        if capture is not None:
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    "CaptureDelivery",
                    alarm_name=names[CAPTURE_DELIVERY],
                    alarm_description="Captured records wait more than "
                    f"{CAPTURE_FRESHNESS_SECONDS // 60} minutes for delivery to the capture "
                    "bucket (Firehose DeliveryToS3.DataFreshness).",
                    metric=capture.stream.metric(
                        "DeliveryToS3.DataFreshness",
                        statistic="Maximum",
                        period=Duration.minutes(BUFFERING_MINUTES),
                    ),
                    threshold=CAPTURE_FRESHNESS_SECONDS,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        return alarms

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

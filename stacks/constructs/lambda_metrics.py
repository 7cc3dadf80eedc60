"""The metric/dimension pairs Lambda and the handler publish, and metrics built on them.

A CloudWatch widget or alarm on a dimension set that is never published shows nothing
and never fires, silently. Every metric the dashboard and the alarms use is built here
and checked against these tables by the tests.

Sources (read 2026-11-25):
* AWS Lambda Developer Guide, "Types of metrics for Lambda functions" and "Viewing
  metrics for Lambda functions" (dimensions): FunctionName on every function metric;
  Resource (``function:version`` or ``function:alias``) on a version or alias; and
  ExecutedVersion, "the version of the function that ran, only for invocations through an
  alias", on the invocation metrics.
* Same guide, "Monitoring concurrency": ConcurrentExecutions "for all functions, versions,
  and aliases" (no ExecutedVersion); the provisioned-concurrency metrics are published
  for the version or alias that has provisioned concurrency (here: versions only, the
  alias never carries any).
* Throttled invocations run no version, so Throttles has no ExecutedVersion either.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

LAMBDA_NAMESPACE = "AWS/Lambda"
FUNCTION = frozenset({"FunctionName"})
RESOURCE = frozenset({"FunctionName", "Resource"})
EXECUTED_VERSION = frozenset({"FunctionName", "Resource", "ExecutedVersion"})
ACCOUNT = frozenset[str]()

PUBLISHED_DIMENSIONS: dict[str, frozenset[frozenset[str]]] = {
    "Invocations": frozenset({ACCOUNT, FUNCTION, RESOURCE, EXECUTED_VERSION}),
    "Errors": frozenset({ACCOUNT, FUNCTION, RESOURCE, EXECUTED_VERSION}),
    "Duration": frozenset({ACCOUNT, FUNCTION, RESOURCE, EXECUTED_VERSION}),
    "Throttles": frozenset({ACCOUNT, FUNCTION, RESOURCE}),
    "ConcurrentExecutions": frozenset({ACCOUNT, FUNCTION, RESOURCE}),
    "ProvisionedConcurrencyUtilization": frozenset({RESOURCE}),
    "ProvisionedConcurrencySpilloverInvocations": frozenset({FUNCTION, RESOURCE}),
    "ProvisionedConcurrencyInvocations": frozenset({FUNCTION, RESOURCE}),
    "ProvisionedConcurrentExecutions": frozenset({FUNCTION, RESOURCE}),
}
# Published only for a Resource that has provisioned concurrency: a version here.
PER_PROVISIONED_RESOURCE = frozenset(
    name for name in PUBLISHED_DIMENSIONS if name.startswith("ProvisionedConcurren")
)

# The handler's EMF metrics (lambda_src/inference/metrics.py): every metric per
# ModelVersion; ServerErrors also per FunctionName.
MODEL_VERSION = frozenset({"ModelVersion"})
HANDLER_DIMENSIONS: dict[str, frozenset[frozenset[str]]] = {
    "InferenceLatency": frozenset({MODEL_VERSION}),
    "Predictions": frozenset({MODEL_VERSION}),
    "PredictionProbability": frozenset({MODEL_VERSION}),  # binary models
    "PredictionConfidence": frozenset({MODEL_VERSION}),  # multiclass: top-class probability
    "PredictionValue": frozenset({MODEL_VERSION}),  # regression
    "ColdStart": frozenset({MODEL_VERSION}),
    "ModelLoadTime": frozenset({MODEL_VERSION}),
    "ModelLoadErrors": frozenset({MODEL_VERSION}),
    "ServerErrors": frozenset({MODEL_VERSION, FUNCTION}),
}

# The drift monitor's metrics (lambda_src/monitors/drift.py), in the same namespace.
FEATURE = frozenset({"ModelVersion", "Feature"})
MONITOR_DIMENSIONS: dict[str, frozenset[frozenset[str]]] = {
    "DriftRows": frozenset({MODEL_VERSION}),
    "DriftRequests": frozenset({MODEL_VERSION}),
    "DriftedFeatures": frozenset({MODEL_VERSION}),
    "FeaturePSI": frozenset({FEATURE}),
    "MaxFeaturePSI": frozenset({MODEL_VERSION}),
    "PredictionPSI": frozenset({MODEL_VERSION}),
    # The canary evaluator (lambda_src/monitors/canary.py).
    "CanarySamples": frozenset({MODEL_VERSION}),
    "PredictionShiftPSI": frozenset({MODEL_VERSION}),
}
NAMESPACE_DIMENSIONS = {**HANDLER_DIMENSIONS, **MONITOR_DIMENSIONS}

# Other services' metrics the alarms read, per namespace:
# * Amazon SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS": the only
#   dimension is QueueName (published while the queue is active, up to six hours after its
#   last message or call).
# * Amazon Data Firehose Developer Guide, "Data delivery CloudWatch metrics": delivery
#   metrics per DeliveryStreamName.
SERVICE_DIMENSIONS: dict[str, dict[str, frozenset[frozenset[str]]]] = {
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible": frozenset({frozenset({"QueueName"})})},
    "AWS/Firehose": {"DeliveryToS3.DataFreshness": frozenset({frozenset({"DeliveryStreamName"})})},
}


MINUTE = Duration.minutes(1)


class LambdaMetrics:
    """Metrics of one function behind one alias, on published dimension sets only."""

    def __init__(self, *, function_name: str, alias_name: str, namespace: str) -> None:
        self.function_name = function_name
        self.alias_resource = f"{function_name}:{alias_name}"
        self.namespace = namespace

    def _lambda(
        self, name: str, statistic: str, period: Duration, dimensions: dict[str, str]
    ) -> cloudwatch.Metric:
        assert frozenset(dimensions) in PUBLISHED_DIMENSIONS[name], (name, dimensions)
        return cloudwatch.Metric(
            namespace=LAMBDA_NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
        )

    def through_alias(
        self, name: str, statistic: str, period: Duration = MINUTE
    ) -> cloudwatch.Metric:
        """Every invocation through the alias, whichever version ran it."""
        return self._lambda(
            name,
            statistic,
            period,
            {"FunctionName": self.function_name, "Resource": self.alias_resource},
        )

    def per_version(
        self,
        name: str,
        statistic: str,
        version: str,
        dimensions: frozenset[str],
        period: Duration = MINUTE,
    ) -> cloudwatch.Metric:
        """``version``'s series on ``dimensions``: EXECUTED_VERSION, the invocations through
        the alias that it ran; RESOURCE, what Lambda publishes per version (concurrency,
        provisioned concurrency)."""
        by_dimensions = {
            EXECUTED_VERSION: {"Resource": self.alias_resource, "ExecutedVersion": version},
            RESOURCE: {"Resource": f"{self.function_name}:{version}"},
        }
        return self._lambda(
            name,
            statistic,
            period,
            {"FunctionName": self.function_name, **by_dimensions[dimensions]},
        )

    def function(self, name: str, statistic: str, period: Duration = MINUTE) -> cloudwatch.Metric:
        """The whole function, every qualifier."""
        return self._lambda(name, statistic, period, {"FunctionName": self.function_name})

    def search(self, name: str, statistic: str, dimensions: frozenset[str]) -> cloudwatch.IMetric:
        """Every series of ``name`` of this function on ``dimensions`` (versions unknown)."""
        assert dimensions in PUBLISHED_DIMENSIONS[name], (name, dimensions)
        schema = ",".join(sorted(dimensions))
        return cloudwatch.MathExpression(
            expression=f'SEARCH(\'{{{LAMBDA_NAMESPACE},{schema}}} MetricName="{name}" '
            f"FunctionName=\"{self.function_name}\"', '{statistic}', 60)",
            label="",
            period=MINUTE,
        )

    def model(
        self, name: str, statistic: str, model_version: str, period: Duration = MINUTE
    ) -> cloudwatch.Metric:
        """A handler or monitor metric of one model version (dimension ModelVersion)."""
        assert MODEL_VERSION in NAMESPACE_DIMENSIONS[name], name
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={"ModelVersion": model_version},
            statistic=statistic,
            period=period,
        )

    def model_all_versions(
        self, name: str, statistic: str, period: Duration = MINUTE
    ) -> cloudwatch.Metric:
        """A handler metric of every version behind the function (dimension FunctionName)."""
        assert FUNCTION in HANDLER_DIMENSIONS[name], name
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={"FunctionName": self.function_name},
            statistic=statistic,
            period=period,
        )

    def model_search(self, name: str, statistic: str, label: str) -> cloudwatch.IMetric:
        """One line per model version that reports ``name``."""
        assert MODEL_VERSION in NAMESPACE_DIMENSIONS[name], name
        return cloudwatch.MathExpression(
            expression=f"SEARCH('{{{self.namespace},ModelVersion}} MetricName=\"{name}\"', "
            f"'{statistic}', 60)",
            label=label,
            period=MINUTE,
        )

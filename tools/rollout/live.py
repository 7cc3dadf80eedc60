"""What is deployed: stack outputs, the live alias, provisioned concurrency, metrics.

Only this module talks to AWS. Every failure becomes ``LiveUnavailableError`` with a sentence
for the operator (no credentials, no region, no stack, no network), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from serving import insights
from serving.insights import CapturedRows
from stacks.settings import ALIAS_NAME, ANSWER_METRIC
from tools.stack_outputs import stack_outputs

NO_CREDENTIALS = (
    "needs AWS credentials (none found: no AWS_ACCESS_KEY_ID/AWS_PROFILE in the environment, "
    "no ~/.aws/credentials or ~/.aws/config profile, no SSO session, no container or "
    "instance role)"
)


class LiveUnavailableError(Exception):
    """AWS could not be asked; the message says why and what to do."""


def phrase(error: LiveUnavailableError) -> str:
    """The error as the rest of a sentence: "needs ..." or "failed: ..."."""
    message = str(error)
    return message if message.startswith("needs") else f"failed: {message}"


@contextmanager
def _aws_errors(what: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise LiveUnavailableError(f"{what} {NO_CREDENTIALS}") from None
    except ClientError as error:
        info = error.response.get("Error", {})
        raise LiveUnavailableError(
            f"{what} failed: {info.get('Code', 'error')}: {info.get('Message', error)}"
        ) from None
    except BotoCoreError as error:  # EndpointConnectionError, NoRegionError, expired SSO, ...
        raise LiveUnavailableError(f"{what} failed: {error}") from None


@dataclass(frozen=True)
class Alias:
    version: str
    additional: Mapping[str, float]

    def shares(self) -> dict[str, float]:
        extra = sum(self.additional.values())
        return {self.version: 1 - extra, **self.additional}


@dataclass(frozen=True)
class Side:
    label: str  # "stable" or "candidate"
    lambda_version: str
    model_version: str | None


@dataclass(frozen=True)
class Comparison:
    side: Side
    invocations: float | None
    errors: float | None  # Lambda's Errors: crashes, timeouts, out of memory
    # The handler's 5xx answers (503 model unavailable, 500): Lambda counts them as
    # successful invocations, so they are not in ``errors``.
    server_errors: float | None
    duration_p99_ms: float | None
    inference_latency_p99_ms: float | None
    mean_probability: float | None

    @property
    def failed(self) -> float:
        """Requests that failed: Lambda errors plus the handler's 5xx answers."""
        return (self.errors or 0.0) + (self.server_errors or 0.0)

    @property
    def error_rate(self) -> float | None:
        if self.invocations is None or not self.invocations:
            return None
        return self.failed / self.invocations


# How long compare waits for a Logs Insights query, polling every INSIGHTS_POLL_SECONDS.
INSIGHTS_WAIT_SECONDS = 120
INSIGHTS_POLL_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True)
class Live:
    """AWS reads through the given boto3 clients (tests pass fakes)."""

    cloudformation: Any
    lambda_client: Any
    cloudwatch: Any
    logs: Any = None
    sleep: Callable[[float], None] = time.sleep

    def log_group(self, function_name: str) -> str:
        if self.logs is None:
            raise LiveUnavailableError("needs a CloudWatch Logs client")
        with _aws_errors(f"reading the log group of {function_name}"):
            answer = self.lambda_client.get_function_configuration(FunctionName=function_name)
        group = answer.get("LoggingConfig", {}).get("LogGroup")
        return str(group) if group else f"/aws/lambda/{function_name}"

    def captured(
        self, log_group: str, lambda_version: str, start: dt.datetime, end: dt.datetime
    ) -> CapturedRows:
        """The capture records ``lambda_version`` wrote in [start, end), via Logs Insights:
        every captured row with its request id (the deployed evaluator reads the same records
        aggregated per request, ``serving.insights.fetch_requests``; the rule is the same)."""
        if self.logs is None:
            raise LiveUnavailableError("needs a CloudWatch Logs client")
        if not lambda_version.isdigit():
            raise LiveUnavailableError(f"Lambda version {lambda_version!r} is not a number")
        what = f"querying the capture records of version {lambda_version} in {log_group}"
        waited = [0.0]

        def sleep(seconds: float) -> None:
            self.sleep(seconds)
            waited[0] += seconds

        with _aws_errors(what):
            try:
                return insights.fetch(
                    self.logs, log_group, lambda_version,
                    insights.Window(int(start.timestamp()), int(end.timestamp())),
                    expired=lambda: waited[0] >= INSIGHTS_WAIT_SECONDS, sleep=sleep,
                    field="lambda_version",
                )  # fmt: skip
            except (RuntimeError, TimeoutError) as error:
                raise LiveUnavailableError(
                    f"{what} failed after {waited[0]:.0f} s: {error}"
                ) from None

    def outputs(self, stack: str) -> dict[str, str]:
        with _aws_errors(f"reading the outputs of stack {stack}"):
            return stack_outputs(self.cloudformation, stack)

    @staticmethod
    def function_name(outputs: Mapping[str, str]) -> str:
        # arn:aws:lambda:<region>:<account>:function:<name>:<alias>
        parts = outputs.get("AliasArn", "").split(":")
        if len(parts) != 8 or parts[5] != "function":
            raise LiveUnavailableError(
                f"stack output AliasArn={outputs.get('AliasArn')!r} is not an alias ARN"
            )
        return parts[6]

    def alias(self, function_name: str) -> Alias:
        with _aws_errors(f"reading alias {ALIAS_NAME} of {function_name}"):
            answer = self.lambda_client.get_alias(FunctionName=function_name, Name=ALIAS_NAME)
        weights = answer.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
        return Alias(str(answer["FunctionVersion"]), {str(k): float(v) for k, v in weights.items()})

    def provisioned_concurrency(self, function_name: str) -> dict[str, str]:
        """Qualifier -> "requested (status)" for every allocation of the function."""
        found: dict[str, str] = {}
        marker: dict[str, str] = {}
        with _aws_errors(f"listing provisioned concurrency of {function_name}"):
            while True:
                page = self.lambda_client.list_provisioned_concurrency_configs(
                    FunctionName=function_name, **marker
                )
                for config in page.get("ProvisionedConcurrencyConfigs", []):
                    qualifier = config["FunctionArn"].rsplit(":", 1)[1]
                    found[qualifier] = (
                        f"{config['RequestedProvisionedConcurrentExecutions']} "
                        f"({config.get('Status', '?')})"
                    )
                if not page.get("NextMarker"):
                    return found
                marker = {"Marker": page["NextMarker"]}

    def compare(
        self,
        *,
        function_name: str,
        namespace: str,
        sides: list[Side],
        start: dt.datetime,
        end: dt.datetime,
        task: str = "binary",
    ) -> list[Comparison]:
        """One value per side and metric over [start, end) (a single CloudWatch period)."""
        period = max(60, int((end - start).total_seconds()) // 60 * 60)
        resource = f"{function_name}:{ALIAS_NAME}"
        queries: list[dict[str, Any]] = []
        for index, side in enumerate(sides):
            lambda_dimensions = {
                "FunctionName": function_name,
                "Resource": resource,
                "ExecutedVersion": side.lambda_version,
            }
            wanted = [
                ("invocations", "AWS/Lambda", "Invocations", lambda_dimensions, "Sum"),
                ("errors", "AWS/Lambda", "Errors", lambda_dimensions, "Sum"),
                ("duration", "AWS/Lambda", "Duration", lambda_dimensions, "p99"),
            ]
            if side.model_version is not None:
                model = {"ModelVersion": side.model_version}
                wanted += [
                    ("servererrors", namespace, "ServerErrors", model, "Sum"),
                    ("latency", namespace, "InferenceLatency", model, "p99"),
                    ("probability", namespace, ANSWER_METRIC[task].name, model, "Average"),
                ]
            for key, metric_namespace, name, dimensions, statistic in wanted:
                queries.append(
                    {
                        "Id": f"{key}{index}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": metric_namespace,
                                "MetricName": name,
                                "Dimensions": [
                                    {"Name": k, "Value": v} for k, v in dimensions.items()
                                ],
                            },
                            "Period": period,
                            "Stat": statistic,
                        },
                    }
                )
        values: dict[str, list[float]] = {}
        token: dict[str, str] = {}
        with _aws_errors("reading CloudWatch metrics"):
            while True:
                page = self.cloudwatch.get_metric_data(
                    MetricDataQueries=queries, StartTime=start, EndTime=end, **token
                )
                for result in page["MetricDataResults"]:
                    values.setdefault(result["Id"], []).extend(result.get("Values", []))
                if not page.get("NextToken"):
                    break
                token = {"NextToken": page["NextToken"]}

        def pick(key: str, index: int, combine: Callable[[list[float]], float]) -> float | None:
            found = values.get(f"{key}{index}")
            return combine(found) if found else None

        def mean(found: list[float]) -> float:
            return sum(found) / len(found)

        # The window is one period, so each query has one value; if CloudWatch splits it
        # at a period boundary, sums add up, p99 takes the worse part, averages the mean.
        return [
            Comparison(
                side=side,
                invocations=pick("invocations", i, sum),
                errors=pick("errors", i, sum),
                server_errors=pick("servererrors", i, sum),
                duration_p99_ms=pick("duration", i, max),
                inference_latency_p99_ms=pick("latency", i, max),
                mean_probability=pick("probability", i, mean),
            )
            for i, side in enumerate(sides)
        ]


def from_environment(region: str | None) -> Live:
    """Clients from the default credential chain, or LiveUnavailableError saying what is missing."""
    import boto3
    from botocore.exceptions import BotoCoreError

    with _aws_errors("creating an AWS session"):
        session = boto3.Session(region_name=region) if region else boto3.Session()
        try:
            credentials = session.get_credentials()
        except BotoCoreError as error:  # e.g. a broken profile
            raise LiveUnavailableError(f"reading AWS credentials failed: {error}") from None
        if credentials is None:
            raise LiveUnavailableError(NO_CREDENTIALS)
        if session.region_name is None:
            raise LiveUnavailableError(
                "needs an AWS region (none found: set region in the environment's cdk.json "
                "block, AWS_REGION, or a region in your AWS profile)"
            )
        return Live(
            cloudformation=session.client("cloudformation"),
            lambda_client=session.client("lambda"),
            cloudwatch=session.client("cloudwatch"),
            logs=session.client("logs"),
        )

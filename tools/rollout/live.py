"""What is deployed: stack outputs, the live alias, provisioned concurrency, metrics.

Only this module talks to AWS. Every failure becomes ``LiveUnavailableError`` with a sentence
for the operator (no credentials, no region, no stack, no network), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stacks.settings import ALIAS_NAME, ANSWER_METRIC
from tools.stack_outputs import stack_outputs

NO_CREDENTIALS = (
    "needs AWS credentials (none found: no AWS_ACCESS_KEY_ID/AWS_PROFILE in the environment, "
    "no ~/.aws/credentials or ~/.aws/config profile, no SSO session, no container or "
    "instance role)"
)


class LiveUnavailableError(Exception):
    """AWS could not be asked; the message says why and what to do."""


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


# Logs Insights returns at most this many rows per query; each row is one request.
INSIGHTS_MAX_ROWS = 10_000
INSIGHTS_WAIT_SECONDS = 120
INSIGHTS_POLL_SECONDS = 1.0
# The handler's prediction line (inference/handler.py): one per answered request, with the
# first 500 probabilities of its batch and the Lambda version that answered.
PREDICTION_QUERY = (
    "fields @message\n"
    '| filter message = "prediction" and lambda_version = "{version}"\n'
    "| limit {limit}"
)


# Per task: the prediction line's field of per-row answers (inference/answers.py) and the
# EMF metric that summarizes them (stacks.settings.ANSWER_METRIC).
ANSWER_FIELD = {"binary": "probabilities", "multiclass": "predictions", "regression": "predictions"}


@dataclass(frozen=True)
class Predictions:
    """One side's logged answers, from its prediction log lines: probabilities (binary),
    class labels (multiclass) or values (regression)."""

    values: list[Any]
    requests: int  # log lines read: one per request
    truncated: bool  # Logs Insights stopped at INSIGHTS_MAX_ROWS lines


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

    def predictions(
        self,
        log_group: str,
        lambda_version: str,
        start: dt.datetime,
        end: dt.datetime,
        task: str = "binary",
    ) -> Predictions:
        """The answers ``lambda_version`` logged in [start, end), via Logs Insights."""
        if self.logs is None:
            raise LiveUnavailableError("needs a CloudWatch Logs client")
        if not lambda_version.isdigit():
            raise LiveUnavailableError(f"Lambda version {lambda_version!r} is not a number")
        what = f"querying the prediction logs of version {lambda_version} in {log_group}"
        with _aws_errors(what):
            query_id = self.logs.start_query(
                logGroupName=log_group,
                startTime=int(start.timestamp()),
                endTime=int(end.timestamp()),
                queryString=PREDICTION_QUERY.format(
                    version=lambda_version, limit=INSIGHTS_MAX_ROWS
                ),
                limit=INSIGHTS_MAX_ROWS,
            )["queryId"]
            waited = 0.0
            while True:
                answer = self.logs.get_query_results(queryId=query_id)
                status = answer["status"]
                if status == "Complete":
                    break
                if status not in ("Scheduled", "Running") or waited >= INSIGHTS_WAIT_SECONDS:
                    raise LiveUnavailableError(
                        f"{what} failed: the query ended {status} after {waited:.0f} s"
                    )
                self.sleep(INSIGHTS_POLL_SECONDS)
                waited += INSIGHTS_POLL_SECONDS
        found: list[Any] = []
        rows = answer.get("results", [])
        numeric = task != "multiclass"
        for row in rows:
            message = next((f["value"] for f in row if f.get("field") == "@message"), None)
            try:
                record = json.loads(message) if message else {}
            except json.JSONDecodeError:
                continue  # a line that is not the handler's JSON is not a prediction
            values = record.get(ANSWER_FIELD[task]) if isinstance(record, dict) else None
            if isinstance(values, list):
                found.extend(
                    (float(v) if numeric else v)
                    for v in values
                    if (isinstance(v, int | float) and not isinstance(v, bool))
                    or (not numeric and isinstance(v, str))
                )
        return Predictions(found, len(rows), len(rows) >= INSIGHTS_MAX_ROWS)

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

"""The drift monitor's image, both entry points, run the way Lambda runs them.

The task root is built from lambda_src/images/monitors/Dockerfile (build context: the
repository root); ``index.handler`` is its CMD and ``canary.handler`` the command the
canary evaluator's ImageConfig sets (read from the prod-canary template). Each runs one
scheduled event through the real runtime interface client with the environment the
stack sets, every AWS call answered by a moto server on loopback (``AWS_ENDPOINT_URL``).

Proves: both handlers import from the built task root with its pinned numpy, the copied
tools/ and training/ modules and the runtime's boto3; they read their settings, the
manifest (S3), query the log group (Logs Insights as moto implements it, on an empty log
group: the run judges 0 rows), read the alias (Lambda) and publish their metrics
(CloudWatch), and return their summary. Cannot prove: a run over real capture records
(what Logs Insights returns for them; tests/analysis and tests/infra cover the parsing and
the calls against the service models).
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.lambda_runtime import deployed, sandbox
from tests.lambda_runtime.conftest import Launch, drift_root

pytestmark = pytest.mark.integration

SCHEDULED = {
    "version": "0",
    "id": "0c1e1a9b-0000-0000-0000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": sandbox.ACCOUNT,
    "time": "2026-01-01T00:00:00Z",
    "region": sandbox.REGION,
    "resources": [f"arn:aws:events:{sandbox.REGION}:{sandbox.ACCOUNT}:rule/drift"],
    "detail": {},
}


def image_function(stack: str, prefix: str) -> sandbox.Function:
    root = drift_root()
    config = deployed.function(stack, prefix)
    handler = (config.command or root.cmd)[0]
    return sandbox.Function(
        name=config.logical_id,
        task_root=root.path,
        handler=handler,
        environment=config.environment,
        memory_mb=config.memory_mb,
        timeout_s=config.timeout_s,
        runtime="Image",
    )


def log_group(aws: Callable[[str], Any], name: str) -> None:
    logs = aws("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=name)


def run_scheduled(
    launch: Launch, aws: Callable[[str], Any], moto_endpoint: str, function: sandbox.Function
) -> Any:
    """One scheduled run of ``function`` against moto, its log group made first: the summary
    it returned."""
    log_group(aws, function.environment["LOG_GROUP"])
    with launch(function, extra_env={"AWS_ENDPOINT_URL": moto_endpoint}) as environment:
        outcome = environment.invoke(SCHEDULED)
        logs = environment.logs()
    assert outcome.kind == "response", (outcome, logs)
    return outcome.json()


def metrics(aws: Callable[[str], Any], namespace: str) -> set[str]:
    listed = aws("cloudwatch").list_metrics(Namespace=namespace)["Metrics"]
    return {metric["MetricName"] for metric in listed}


def test_drift_monitor_runs_one_schedule(
    launch: Launch,
    aws: Callable[[str], Any],
    model_store: Callable[[str, str], None],
    moto_endpoint: str,
) -> None:
    function = image_function("inference-dev", "DriftMonitorFunction")
    assert function.handler == "index.handler"  # the Dockerfile's CMD
    env = function.environment
    model_store(env["MODEL_BUCKET"], env["MANIFEST_KEY"])
    summary = run_scheduled(launch, aws, moto_endpoint, function)
    assert summary["model_version"] == env["MODEL_VERSION"] and summary["rows"] == 0
    assert "DriftRows" in metrics(aws, env["METRICS_NAMESPACE"])


def test_canary_evaluator_runs_one_schedule(
    launch: Launch, aws: Callable[[str], Any], moto_endpoint: str
) -> None:
    function = image_function("inference-prod-canary", "DriftMonitorCanaryEvaluator")
    assert function.handler == "canary.handler"  # the stack's ImageConfig.Command
    env = function.environment
    role = aws("iam").create_role(
        RoleName="inference", AssumeRolePolicyDocument='{"Version": "2012-10-17"}'
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {}\n")
    client = aws("lambda")
    client.create_function(
        FunctionName=env["FUNCTION_NAME"],
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
    )
    stable = client.publish_version(FunctionName=env["FUNCTION_NAME"])["Version"]
    candidate = client.publish_version(FunctionName=env["FUNCTION_NAME"])["Version"]
    client.create_alias(
        FunctionName=env["FUNCTION_NAME"],
        Name=env["ALIAS_NAME"],
        FunctionVersion=stable,
        RoutingConfig={"AdditionalVersionWeights": {candidate: 0.1}},
    )
    summary = run_scheduled(launch, aws, moto_endpoint, function)
    assert (summary["stable"], summary["candidate"], summary["samples"]) == (stable, candidate, 0)
    assert "CanarySamples" in metrics(aws, env["METRICS_NAMESPACE"])

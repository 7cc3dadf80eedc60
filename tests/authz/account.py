"""The account the deployed functions talk to: its state and its answers.

One ``Account`` lives through a whole walk of deploys: the provisioned concurrency each
version holds, the registered scalable targets and where the alias points, changed by
the reconciler's own calls and by each deploy's alias update. Answers are what the
service models say the operations return; botocore validates each one (see ``record``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore import xform_name

from tests.authz.record import Failure, body
from tests.authz.sar import ACCOUNT, PARTITION, REGION, Call

ARTIFACTS = Path(__file__).resolve().parents[2] / "model_artifacts"
WHEN = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
NOT_FOUND = {
    "lambda": Failure("ResourceNotFoundException", 404),
    "application-autoscaling": Failure("ObjectNotFoundException", 400),
    "s3": Failure("NoSuchKey", 404),
}


def local_file(key: str) -> Path:
    """``models/<model>/<version>/<content id>/<file>`` -> the committed artifact."""
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != "models":
        raise KeyError(key)
    return ARTIFACTS / parts[1] / parts[2] / parts[-1]


@dataclass
class Account:
    function_name: str = ""
    # Qualifier -> provisioned executions; qualifier -> (min, max) of its scalable target.
    provisioned: dict[str, int] = field(default_factory=dict)
    targets: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Version -> share of the alias's traffic; None before the alias exists.
    alias: dict[str, float] | None = None
    alias_name: str = "production"
    queries: dict[str, str] = field(default_factory=dict)  # query id -> log group
    # CodeDeploy: the deployment the hook is asked about.
    deployment: Mapping[str, Any] = field(default_factory=dict)
    # GetDeployment may leave the AppSpec's content out ("Required: No").
    omit_content: bool = False
    # Logs Insights queries never finish (the monitor runs out of time and stops them).
    queries_running: bool = False

    def function_arn(self, qualifier: str | None = None) -> str:
        arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def target_id(self, qualifier: str) -> str:
        # A scalable target's id is the service's own; stable per target here.
        digest = hashlib.sha256(f"{self.function_name}:{qualifier}".encode()).hexdigest()
        return digest[:32]

    # ------------------------------------------------------------------ answers

    def answer(self, call: Call) -> dict[str, Any] | Failure:
        method = f"_{call.service.replace('-', '_')}_{xform_name(call.operation)}"
        handler = getattr(self, method, None)
        if handler is None:
            raise AssertionError(f"the test account does not answer {call.action}")
        result: dict[str, Any] | Failure = handler(call.params)
        return result

    def _lambda_list_provisioned_concurrency_configs(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ProvisionedConcurrencyConfigs": [
                {
                    "FunctionArn": self.function_arn(q),
                    "RequestedProvisionedConcurrentExecutions": n,
                    "AvailableProvisionedConcurrentExecutions": n,
                    "AllocatedProvisionedConcurrentExecutions": n,
                    "Status": "READY",
                    "LastModified": "2026-12-07T00:00:00.000+0000",
                }
                for q, n in sorted(self.provisioned.items())
            ]
        }

    def _lambda_get_alias(self, p: Mapping[str, Any]) -> dict[str, Any] | Failure:
        if self.alias is None:
            return NOT_FOUND["lambda"]
        primary = max(self.alias, key=lambda v: self.alias[v] if self.alias else 0)
        extra = {v: w for v, w in self.alias.items() if v != primary}
        answer: dict[str, Any] = {
            "AliasArn": self.function_arn(self.alias_name),
            "Name": self.alias_name,
            "FunctionVersion": primary,
        }
        if extra:
            answer["RoutingConfig"] = {"AdditionalVersionWeights": extra}
        return answer

    def _lambda_put_provisioned_concurrency_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        n = p["ProvisionedConcurrentExecutions"]
        self.provisioned[str(p["Qualifier"])] = n
        return {"RequestedProvisionedConcurrentExecutions": n, "Status": "IN_PROGRESS"}

    def _lambda_get_provisioned_concurrency_config(
        self, p: Mapping[str, Any]
    ) -> dict[str, Any] | Failure:
        n = self.provisioned.get(str(p["Qualifier"]))
        if n is None:
            return Failure("ProvisionedConcurrencyConfigNotFoundException", 404)
        return {"RequestedProvisionedConcurrentExecutions": n, "Status": "READY"}

    def _lambda_delete_provisioned_concurrency_config(
        self, p: Mapping[str, Any]
    ) -> dict[str, Any] | Failure:
        if self.provisioned.pop(str(p["Qualifier"]), None) is None:
            return NOT_FOUND["lambda"]
        return {}

    def _lambda_invoke(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {"StatusCode": 200, "Payload": body(json.dumps(self.invoke(p)).encode())}

    def invoke(self, p: Mapping[str, Any]) -> Any:
        raise AssertionError(f"no invocation expected here: {p['FunctionName']}")

    def _application_autoscaling_describe_scalable_targets(
        self, p: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "ScalableTargets": [
                {
                    "ServiceNamespace": "lambda",
                    "ResourceId": f"function:{self.function_name}:{q}",
                    "ScalableDimension": "lambda:function:ProvisionedConcurrency",
                    "MinCapacity": low,
                    "MaxCapacity": high,
                    "RoleARN": f"arn:{PARTITION}:iam::{ACCOUNT}:role/aws-service-role/x",
                    "CreationTime": WHEN,
                }
                for q, (low, high) in sorted(self.targets.items())
            ]
        }

    def _application_autoscaling_register_scalable_target(
        self, p: Mapping[str, Any]
    ) -> dict[str, Any]:
        qualifier = str(p["ResourceId"]).rsplit(":", 1)[1]
        self.targets[qualifier] = (p["MinCapacity"], p["MaxCapacity"])
        return {}

    def _application_autoscaling_deregister_scalable_target(
        self, p: Mapping[str, Any]
    ) -> dict[str, Any] | Failure:
        qualifier = str(p["ResourceId"]).rsplit(":", 1)[1]
        if self.targets.pop(qualifier, None) is None:
            return NOT_FOUND["application-autoscaling"]
        return {}

    def _application_autoscaling_put_scaling_policy(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {"PolicyARN": f"arn:{PARTITION}:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:x"}

    def _s3_get_object(self, p: Mapping[str, Any]) -> dict[str, Any] | Failure:
        try:
            data = local_file(str(p["Key"])).read_bytes()
        except (KeyError, FileNotFoundError):
            return NOT_FOUND["s3"]
        return {"Body": body(data), "ContentLength": len(data)}

    def _logs_start_query(self, p: Mapping[str, Any]) -> dict[str, Any]:
        query_id = f"query-{len(self.queries)}"
        self.queries[query_id] = str(p["logGroupName"])
        return {"queryId": query_id}

    def _logs_get_query_results(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {"status": "Running" if self.queries_running else "Complete", "results": []}

    def _logs_stop_query(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {"success": True}

    def _cloudwatch_put_metric_data(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _codedeploy_get_deployment(self, p: Mapping[str, Any]) -> dict[str, Any]:
        info = dict(self.deployment)
        if self.omit_content:
            info["revision"] = {"revisionType": "AppSpecContent", "appSpecContent": {}}
        return {"deploymentInfo": info}

    def _codedeploy_get_application_revision(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "applicationName": p["applicationName"],
            "revision": self.deployment["revision"],
        }

    def _codedeploy_put_lifecycle_event_hook_execution_status(
        self, p: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {"lifecycleEventHookExecutionId": p["lifecycleEventHookExecutionId"]}

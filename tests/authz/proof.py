"""Each call against the policies IAM reads for it; each service's access to our resources.

``identity_cases``: a function's call is allowed when its role's policies allow the
action on every ARN the Service Authorization Reference names for it (``sar``), with the
condition keys the call carries. ``service_cases``: what AWS services do with the stacks'
resources on their own (CloudWatch alarms publishing to the encrypted topic, EventBridge
and CodeDeploy invoking functions, Logs feeding Firehose, Firehose writing to S3, a
caller of the Function URL) against the resource policy or the role it uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.authz.functions import Made
from tests.authz.iam import Decision, Request, Statement, evaluate, statements
from tests.authz.sar import ACCOUNT, Call, request_context, resource_arns
from tests.authz.world import World

DOCS = Path(__file__).resolve().parents[2] / "docs"
STREAM = "2026/12/07/[$LATEST]0123456789abcdef"


@dataclass(frozen=True)
class Case:
    principal: str  # a function's logical ID, or a service principal
    role: str  # the role (logical ID) or resource policy consulted
    action: str
    resource: str
    why: str
    decision: Decision
    context: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        verdict = "allowed" if self.decision.allowed else "DENIED"
        by = self.decision.allowed_by or self.decision.denied_by
        return (
            f"{verdict}: {self.principal} ({self.why}) {self.action} on {self.resource} "
            f"[{self.role}]; statements: {', '.join(s.source for s in by) or 'none match'}"
        )


def identity_cases(world: World, made: Iterable[Made]) -> list[Case]:
    cases = []
    for item in made:
        policies = world.identity_policies(item.role)
        context = request_context(item.call)
        for arn in resource_arns(item.call):
            decision = evaluate(policies, Request(item.call.action, arn, context))
            cases.append(
                Case(item.function, item.role, item.call.action, arn, item.why, decision, context)
            )
    return cases


def lambda_runtime_calls(world: World) -> list[Made]:
    """What Lambda does with each function's execution role (see ``functions``)."""
    made = []
    for function in world.of_type("AWS::Lambda::Function"):
        props = world.props(function)
        role = world.role_of_function(function)
        group = props.get("LoggingConfig", {}).get("LogGroup")
        group_name = (
            world.resolve(group) if group else f"/aws/lambda/{world.function_name(function)}"
        )
        for operation in ("CreateLogStream", "PutLogEvents"):
            call = Call("logs", operation, {"logGroupName": group_name, "logStreamName": STREAM})
            made.append(Made(function, role, call, "Lambda writes the function's logs"))
        if props.get("TracingConfig", {}).get("Mode") == "Active":
            for operation in ("PutTraceSegments", "PutTelemetryRecords"):
                made.append(Made(function, role, Call("xray", operation, {}), "active tracing"))
    for config in world.of_type("AWS::Lambda::EventInvokeConfig").values():
        props = world.resolve(config["Properties"])
        function = _function_named(world, str(props["FunctionName"]))
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination is None or function is None:
            continue
        role = world.role_of_function(function)
        call = _destination_call(str(destination))
        made.append(Made(function, role, call, "on-failure destination of an async invocation"))
    return made


def _function_named(world: World, name: str) -> str | None:
    for function in world.of_type("AWS::Lambda::Function"):
        if (
            world.function_name(function) == name.split(":")[0]
            or world.resolve({"Fn::GetAtt": [function, "Arn"]}) == name
        ):
            return function
    return None


def _destination_call(arn: str) -> Call:
    service, name = arn.split(":")[2], arn.split(":")[5]
    if service == "sqs":
        url = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/{name}"
        return Call("sqs", "SendMessage", {"QueueUrl": url, "MessageBody": "{}"})
    return Call("sns", "Publish", {"TopicArn": arn, "Message": "{}"})


def upload_calls(world: World) -> list[Made]:
    """CDK's BucketDeployment: the source asset read, the destination prefix synced."""
    made = []
    for resource in world.of_type("Custom::CDKBucketDeployment").values():
        props = world.resolve(resource["Properties"])
        function = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        role = world.role_of_function(function)
        for bucket, key in zip(props["SourceBucketNames"], props["SourceObjectKeys"], strict=True):
            call = Call("s3", "GetObject", {"Bucket": bucket, "Key": key})
            made.append(Made(function, role, call, "model upload: read the asset"))
        destination = props["DestinationBucketName"]
        prefix = props.get("DestinationBucketKeyPrefix", "")
        made.append(Made(function, role, Call("s3", "ListBucket", {"Bucket": destination}),
                         "model upload: sync lists the destination"))  # fmt: skip
        call = Call("s3", "PutObject", {"Bucket": destination, "Key": f"{prefix}manifest.json"})
        made.append(Made(function, role, call, "model upload: sync writes the files"))
    return made


def _service(
    principal: str, policies: list[Statement], action: str, resource: str, context: dict[str, str],
    label: str, why: str,
) -> Case:  # fmt: skip
    request = Request(action, resource, context, principal={"Service": principal})
    return Case(principal, label, action, resource, why, evaluate(policies, request))


def documented_caller_policy() -> dict[str, object]:
    """The caller policy docs/calling.md tells users to grant."""
    text = (DOCS / "calling.md").read_text()
    block = re.search(r"## Who may call it.*?```json\n(.*?)```", text, re.DOTALL)
    assert block is not None, "docs/calling.md has no caller policy"
    loaded: dict[str, object] = json.loads(block.group(1))
    return loaded


def caller_cases(world: World) -> list[Case]:
    """The documented caller policy, for the stack's alias, calling the Function URL."""
    (alias_id,) = world.of_type("AWS::Lambda::Alias")
    alias_arn = str(world.ref(alias_id))
    function_name = alias_arn.split(":")[6]
    policy = json.loads(
        json.dumps(documented_caller_policy()).replace("FUNCTION-NAME", function_name)
    )
    found = statements("docs/calling.md caller policy", {"Statement": [policy]})
    cases = []
    for action in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction"):
        call = Call("lambda", action.split(":")[1], {"FunctionName": alias_arn})
        for arn in resource_arns(call):
            context = {"lambda:FunctionUrlAuthType": "AWS_IAM"}
            decision = evaluate(found, Request(action, arn, context))
            cases.append(Case("caller", "docs/calling.md", action, arn, "Function URL", decision))
    return cases

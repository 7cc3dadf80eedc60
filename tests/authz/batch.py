"""Batch scoring in the authorization proof: the state machine's role and the operator.

The committed cdk.json leaves ``batch_scoring`` off, so the rollout walks never deploy the
state machine: here each environment is synthesized with it on (two configured buckets),
and every call a run makes is evaluated on the ARN IAM checks:

* Step Functions assumes the role (``states.amazonaws.com``), and with it the Distributed
  Map reads the input object (``s3:GetObject``; ``s3:ListBucket`` on its bucket), starts
  its child workflows as executions of the machine itself (``states:StartExecution``),
  describes and stops them, invokes the pinned version (``lambda:InvokeFunction`` on the
  qualified ARN: Lambda checks the ARN the request names) and writes the results with
  multipart uploads (``s3:PutObject``, ``s3:ListMultipartUploadParts``,
  ``s3:AbortMultipartUpload``, ``s3:GetObject``) (Step Functions developer guide, "IAM
  policies for using Distributed Map states"); it delivers logs and traces;
* the operator of ``python -m tools.batch`` makes its calls with the policy
  docs/configuration.md documents.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import tempfile
from pathlib import Path

from stacks.config import committed_context
from stacks.constructs.batch_scoring import LOG_DELIVERY_ACTIONS
from stacks.settings import ALIAS_NAME
from tests.authz.functions import Made
from tests.authz.iam import Request, evaluate, statements
from tests.authz.proof import DOCS, Case, identity_cases
from tests.authz.sar import Call, resource_arns
from tests.authz.services import _assume
from tests.authz.walk import StepCases
from tests.authz.world import World

INPUT_BUCKET, OUTPUT_BUCKET = "churn-tables", "churn-scores"
# A run as python -m tools.batch starts it: its names, the version it pins, a map run.
RUN_ID, VERSION, MAP_RUN_ID = "run-20261207", "7", "0123abcd-4567-89ef-0123-456789abcdef"
INPUT_KEY, OUTPUT_PREFIX = "tables/customers.csv", "scores/run-20261207"
# An Express child's execution ARN ends in <execution id>:<express id>.
EXPRESS_ID = "89abcdef-0123-4567-89ab-cdef01234567"
RESULT_KEY = f"{OUTPUT_PREFIX}/{MAP_RUN_ID}/SUCCEEDED_0.json"
BLOCK = {"enabled": True, "input_buckets": [INPUT_BUCKET], "output_buckets": [OUTPUT_BUCKET]}


@functools.cache
def batch_world(env: str) -> World:
    """The inference stack of ``env`` with batch scoring on, as the proof sees it."""
    from tests.infra.conftest import run_synth  # synth only when the proof asks for it

    context = copy.deepcopy(committed_context())
    context["env"] = env
    context["environments"][env]["batch_scoring"] = BLOCK
    with tempfile.TemporaryDirectory() as outdir:
        result = run_synth(Path(outdir), context)
    stack = next(n for n in result.templates if n.endswith("-inference"))
    template = result.template("inference")
    versions = {v: int(VERSION) for v in result.version_ids()}
    return World(stack, template, versions)


def machine_ids(world: World) -> tuple[str, str, str]:
    """(state machine logical ID, its role's logical ID, its name)."""
    (machine,) = world.of_type("AWS::StepFunctions::StateMachine")
    props = world.props(machine)
    return machine, props["RoleArn"]["Fn::GetAtt"][0], str(props["StateMachineName"])


def _function_arn(world: World) -> str:
    (function,) = [
        f for f in world.of_type("AWS::Lambda::Function") if f.startswith("InferenceFunction")
    ]
    return str(world.get_att(function, "Arn"))


def _arn(world: World, resource: str) -> str:
    return world.arn("states", resource)


def role_calls(world: World) -> list[Made]:
    machine, role, name = machine_ids(world)
    calls = [
        (Call("s3", "GetObject", {"Bucket": INPUT_BUCKET, "Key": INPUT_KEY}), "ItemReader"),
        (Call("s3", "ListBucket", {"Bucket": INPUT_BUCKET}), "ItemReader"),
        (Call("states", "StartExecution", {}, ids={"StateMachineName": name}),
         "Distributed Map starts a child workflow"),
        (Call("states", "DescribeExecution", {},
              ids={"StateMachineName": f"{name}/ScoreCsv", "ExecutionId": MAP_RUN_ID,
                   "ExpressId": EXPRESS_ID}),
         "Distributed Map follows a child workflow"),
        (Call("states", "StopExecution", {},
              ids={"StateMachineName": f"{name}/ScoreCsv", "ExecutionId": MAP_RUN_ID}),
         "Distributed Map stops a child workflow"),
        (Call("lambda", "Invoke", {"FunctionName": f"{_function_arn(world)}:{VERSION}"}),
         "a child invokes the pinned version"),
        *[
            (Call("s3", op, {"Bucket": OUTPUT_BUCKET, "Key": RESULT_KEY}), "ResultWriter")
            for op in ("PutObject", "GetObject", "ListMultipartUploadParts",
                       "AbortMultipartUpload")
        ],
        *[(Call("logs", a.split(":")[1], {}), "log delivery") for a in LOG_DELIVERY_ACTIONS],
        (Call("xray", "PutTraceSegments", {}), "active tracing"),
        (Call("xray", "PutTelemetryRecords", {}), "active tracing"),
    ]  # fmt: skip
    return [Made(machine, role, call, f"batch run: {why}") for call, why in calls]


def documented_operator_policy() -> dict[str, object]:
    """The operator policy docs/configuration.md tells users to grant."""
    text = (DOCS / "configuration.md").read_text()
    block = re.search(r"### Batch scoring.*?```json\n(.*?)```", text, re.DOTALL)
    assert block is not None, "docs/configuration.md has no batch-scoring operator policy"
    loaded: dict[str, object] = json.loads(block.group(1))
    return loaded


def operator_cases(world: World) -> list[Case]:
    _, _, name = machine_ids(world)
    function_name = _function_arn(world).split(":")[6]
    policy = (
        json.dumps(documented_operator_policy())
        .replace("STACK-NAME", world.stack)
        .replace("STATE-MACHINE-NAME", name)
        .replace("FUNCTION-NAME", function_name)
        .replace("INPUT-BUCKET", INPUT_BUCKET)
        .replace("OUTPUT-BUCKET", OUTPUT_BUCKET)
    )
    found = statements("docs/configuration.md operator policy", json.loads(policy))
    execution = {"StateMachineName": name, "ExecutionId": RUN_ID}
    calls = [
        (Call("cloudformation", "DescribeStacks", {},
              ids={"StackName": world.stack, "Id": "0123abcd"}), "start: the stack's outputs"),
        (Call("lambda", "GetAlias", {"FunctionName": function_name, "Name": ALIAS_NAME}),
         "start: the alias's stable version"),
        (Call("lambda", "GetFunctionConfiguration",
              {"FunctionName": function_name, "Qualifier": VERSION}), "start: the version exists"),
        (Call("lambda", "ListVersionsByFunction", {"FunctionName": function_name}),
         "start: the versions it may name"),
        (Call("s3", "GetObject", {"Bucket": INPUT_BUCKET, "Key": INPUT_KEY}),
         "start: the input's header"),
        (Call("states", "StartExecution", {}, ids={"StateMachineName": name}), "start"),
        (Call("states", "DescribeExecution", {}, ids=execution), "status, wait"),
        (Call("states", "ListMapRuns", {}, ids=execution), "status, wait"),
        (Call("states", "DescribeMapRun", {},
              ids={"StateMachineName": name, "MapRunLabel": "ScoreCsv", "MapRunId": MAP_RUN_ID}),
         "status, wait: items processed and failed"),
        (Call("states", "RedriveExecution", {}, ids=execution), "redrive"),
        (Call("s3", "ListBucket", {"Bucket": OUTPUT_BUCKET}), "fetch: the results"),
        (Call("s3", "GetObject", {"Bucket": OUTPUT_BUCKET, "Key": RESULT_KEY}),
         "fetch: the results"),
    ]  # fmt: skip
    cases = []
    for call, why in calls:
        # The reference lists DescribeExecution's two types (a Standard execution, an
        # Express one) as required: a run is a Standard execution, so its ARN is that.
        standard = world.arn("states", f"execution:{name}:{RUN_ID}")
        arns = [standard] if call.operation == "DescribeExecution" else resource_arns(call)
        for arn in arns:
            decision = evaluate(found, Request(call.action, arn, {}))
            cases.append(Case("operator", "docs/configuration.md", call.action, arn,
                              f"python -m tools.batch {why}", decision))  # fmt: skip
    return cases


BATCH_RUNS = (("batch scoring", "dev"), ("batch scoring", "prod"))


def batch_cases(env: str) -> list[StepCases]:
    world = batch_world(env)
    machine, role, _ = machine_ids(world)
    cases = [
        _assume(world, role, "states.amazonaws.com", f"runs {machine}", {}),
        *identity_cases(world, role_calls(world)),
        *operator_cases(world),
    ]
    return [StepCases("batch scoring on", world.stack, cases)]

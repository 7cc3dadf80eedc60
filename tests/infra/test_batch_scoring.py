"""The batch-scoring state machine (issue 25): its cdk.json block, its synthesis in dev and
prod with batch on, its role, and its definition against the Amazon States Language."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stacks.blocks import MAX_BATCH_CONCURRENCY
from stacks.config import committed_context, load_config
from stacks.constructs.batch_scoring import state_machine_name
from stacks.settings import MAX_ROWS_PER_INVOCATION, ConfigError
from tests.authz.world import World
from tests.infra.conftest import Synth, artifacts_with, run_synth, validation_findings
from tests.infra.test_checks import CFN_LINT

REPO = Path(__file__).resolve().parents[2]
BUCKETS = {"input_buckets": ["churn-tables"], "output_buckets": ["churn-scores"]}


def batch_context(env: str, **block: Any) -> dict[str, Any]:
    """The committed context with ``env`` selected and its batch_scoring block set."""
    context = copy.deepcopy(committed_context())
    context["env"] = env
    context["environments"][env]["batch_scoring"] = block
    return context


@pytest.fixture(scope="module")
def batch_on(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    return {
        env: run_synth(
            tmp_path_factory.mktemp(f"cdk-out-batch-{env}"),
            batch_context(
                env,
                enabled=True,
                max_concurrency=250,
                rows_per_invocation=400,
                tolerated_failure_percentage=3,
                **BUCKETS,
            ),
        )
        for env in ("dev", "prod")
    }


def machine(result: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = result.resources("inference", "AWS::StepFunctions::StateMachine").items()
    return found


def resolved_definition(result: Synth) -> dict[str, Any]:
    """The DefinitionString with its Fn::Join, Ref and GetAtt evaluated into the ARNs
    CloudFormation would give them (the authorization proof's World)."""
    name = next(n for n in result.templates if n.endswith("-inference"))
    world = World(name, result.template("inference"), {})
    _, props = machine(result)
    text = world.resolve(props["Properties"]["DefinitionString"])
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def asl_validator(definition: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "definition.asl.json"
    path.write_text(json.dumps(definition))
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(REPO / "node_modules" / ".bin" / "asl-validator"), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


# ---------------------------------------------------------------------------- the block


def test_batch_scoring_is_off_by_default_in_every_committed_model() -> None:
    for env in ("dev", "prod"):
        for config in load_config({**committed_context(), "env": env}).models:
            assert config.batch_scoring.enabled is False
            assert config.batch_scoring.rows_per_invocation == 500
            assert config.batch_scoring.max_concurrency == 100


def test_the_block_is_parsed_into_its_settings() -> None:
    block = {"enabled": "true", "max_concurrency": "10000", "rows_per_invocation": 1000,
             "tolerated_failure_percentage": 100, **BUCKETS}  # fmt: skip
    config = load_config(batch_context("dev", **block))
    settings = config.batch_scoring
    assert settings.enabled and settings.max_concurrency == MAX_BATCH_CONCURRENCY
    assert settings.rows_per_invocation == 1000
    assert settings.tolerated_failure_percentage == 100
    assert settings.input_buckets == ("churn-tables",)
    assert settings.output_buckets == ("churn-scores",)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"enable": True}, "environments.dev.batch_scoring.enable"),
        ({"max_concurrency": 0}, "environments.dev.batch_scoring.max_concurrency=0"),
        ({"max_concurrency": 10_001}, "environments.dev.batch_scoring.max_concurrency=10001"),
        ({"tolerated_failure_percentage": 101},
         "environments.dev.batch_scoring.tolerated_failure_percentage=101"),
        ({"tolerated_failure_percentage": 2.5},
         "environments.dev.batch_scoring.tolerated_failure_percentage=2.5"),
        ({"tolerated_failure_percentage": -1},
         "environments.dev.batch_scoring.tolerated_failure_percentage=-1"),
        ({"rows_per_invocation": 0}, "environments.dev.batch_scoring.rows_per_invocation=0"),
        # dev's function.max_batch_size is 1000: the handler refuses a larger batch.
        ({"rows_per_invocation": 1001},
         "rows_per_invocation=1001 is not allowed: at most function.max_batch_size=1000"),
        ({"input_buckets": ["Not_A_Bucket"]},
         "environments.dev.batch_scoring.input_buckets=['Not_A_Bucket']"),
        ({"output_buckets": "churn-scores"},
         "environments.dev.batch_scoring.output_buckets='churn-scores'"),
        ({"enabled": True, "output_buckets": ["churn-scores"]},
         "environments.dev.batch_scoring.input_buckets=[] is not allowed with "
         "environments.dev.batch_scoring.enabled=true"),
        ({"enabled": True, "input_buckets": ["churn-tables"]},
         "environments.dev.batch_scoring.output_buckets=[]"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_key_and_value(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(batch_context("dev", **block))
    assert message in str(refused.value)


def test_rows_per_invocation_is_bounded_by_the_state_payload_limit() -> None:
    context = batch_context("dev", rows_per_invocation=MAX_ROWS_PER_INVOCATION + 1)
    context["environments"]["dev"]["function"]["max_batch_size"] = 100_000
    with pytest.raises(ConfigError) as refused:
        load_config(context)
    message = str(refused.value)
    assert f"rows_per_invocation={MAX_ROWS_PER_INVOCATION + 1} is not allowed" in message
    assert "256 KiB" in message
    # One row fewer fits both limits.
    context["environments"]["dev"]["batch_scoring"]["rows_per_invocation"] -= 1
    assert load_config(context).batch_scoring.rows_per_invocation == MAX_ROWS_PER_INVOCATION


def test_a_timeout_an_express_child_cannot_hold_is_refused_only_with_batch_on() -> None:
    context = batch_context("dev", enabled=True, **BUCKETS)
    context["environments"]["dev"]["function"]["timeout_seconds"] = 110
    with pytest.raises(ConfigError) as refused:
        load_config(context)
    assert "function.timeout_seconds=110 is not allowed" in str(refused.value)
    assert "use at most 109" in str(refused.value)
    context["environments"]["dev"]["function"]["timeout_seconds"] = 109
    assert load_config(context).batch_scoring.enabled
    context["environments"]["dev"]["function"]["timeout_seconds"] = 900
    context["environments"]["dev"]["batch_scoring"]["enabled"] = False
    assert not load_config(context).batch_scoring.enabled


def test_a_further_model_merges_its_block_over_the_environments(tmp_path: Path) -> None:
    context = batch_context("prod", enabled=True, **BUCKETS)
    context["environments"]["prod"]["models"] = {
        "fraud": {"rollout": {"model_version": "v1"}, "batch_scoring": {"enabled": False}}
    }
    config = load_config(context, artifacts_root=artifacts_with(tmp_path, "fraud"))
    churn = config.model_named("churn")
    assert churn.batch_scoring.enabled
    (fraud,) = config.additional_models
    assert not fraud.batch_scoring.enabled
    assert fraud.batch_scoring.input_buckets == ("churn-tables",)


# ---------------------------------------------------------------------------- the stacks


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_batch_on_synthesizes_a_standard_machine_with_express_children(
    batch_on: dict[str, Synth], env: str
) -> None:
    result = batch_on[env]
    _, resource = machine(result)
    props = resource["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["StateMachineName"] == state_machine_name(f"sklearn-serving-{env}-inference")
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
    definition = resolved_definition(result)
    choice = definition["States"][definition["StartAt"]]
    assert [c["StringEquals"] for c in choice["Choices"]] == ["csv", "jsonl", "parquet"]
    readers = {}
    for option in choice["Choices"]:
        state = definition["States"][option["Next"]]
        readers[option["StringEquals"]] = state["ItemReader"]["ReaderConfig"]["InputType"]
        assert state["ItemProcessor"]["ProcessorConfig"] == {
            "Mode": "DISTRIBUTED",
            "ExecutionType": "EXPRESS",
        }
        assert state["ItemBatcher"]["MaxItemsPerBatch"] == 400
        assert state["ItemBatcher"]["MaxInputBytesPerBatch"] == 256 * 1024
        assert state["ItemBatcher"]["BatchInput"]["batch_scoring"] is True
        assert state["MaxConcurrency"] == 250
        assert state["ToleratedFailurePercentage"] == 3
        assert state["ResultWriter"]["Parameters"] == {
            "Bucket.$": "$.output.bucket",
            "Prefix.$": "$.output.prefix",
        }
        (task,) = state["ItemProcessor"]["States"].values()
        # The version comes from the run, never the alias: one model scores a whole run.
        assert task["Parameters"]["FunctionName.$"].startswith(
            f"States.Format('arn:aws:lambda:eu-west-1:123456789012:function:"
            f"sklearn-serving-{env}-inference-InferenceFunction"
        )
        assert task["Parameters"]["FunctionName.$"].endswith(":{}', $.BatchInput.model_version)")
        retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
        assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException",
                "Sandbox.Timedout"} <= retried  # fmt: skip
        assert any(r.get("BackoffRate", 1) > 1 for r in task["Retry"])
    assert readers == {"csv": "CSV", "jsonl": "JSONL", "parquet": "PARQUET"}
    outputs = result.template("inference")["Outputs"]
    assert "BatchScoringStateMachineArn" in outputs


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_batch_on_passes_cdk_nag(batch_on: dict[str, Synth], env: str) -> None:
    assert validation_findings(batch_on[env].directory) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_role_reaches_only_the_function_versions_and_the_configured_buckets(
    batch_on: dict[str, Synth], env: str
) -> None:
    result = batch_on[env]
    name = next(n for n in result.templates if n.endswith("-inference"))
    world = World(name, result.template("inference"), {})
    role_id = machine(result)[1]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    granted: dict[str, set[str]] = {}
    denied: set[str] = set()
    for policy in result.resources("inference", "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in world.resolve(policy["Properties"]["PolicyDocument"])["Statement"]:
            if statement["Effect"] == "Deny":
                denied.update(statement["Resource"])
                continue
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                resources = statement["Resource"]
                granted.setdefault(action, set()).update(
                    [resources] if isinstance(resources, str) else resources
                )
    (invoke,) = granted["lambda:InvokeFunction"]
    assert invoke.startswith("arn:aws:lambda:eu-west-1:123456789012:function:")
    assert invoke.endswith(":*") and "InferenceFunction" in invoke
    # Of <function>:*, the alias and $LATEST are denied: a run scores with one version.
    function = invoke[: -len(":*")]
    assert denied == {function, f"{function}:production", f"{function}:$LATEST"}
    assert granted["s3:GetObject"] == {
        "arn:aws:s3:::churn-tables/*",
        "arn:aws:s3:::churn-scores/*",
    }
    assert granted["s3:PutObject"] == {"arn:aws:s3:::churn-scores/*"}
    assert granted["s3:ListBucket"] == {"arn:aws:s3:::churn-tables"}
    machine_name = state_machine_name(name)
    assert granted["states:StartExecution"] == {
        f"arn:aws:states:eu-west-1:123456789012:stateMachine:{machine_name}"
    }
    s3_or_lambda = {a for a in granted if a.startswith(("s3:", "lambda:"))}
    assert s3_or_lambda == {"lambda:InvokeFunction", "s3:GetObject", "s3:ListBucket",
                            "s3:PutObject", "s3:ListMultipartUploadParts",
                            "s3:AbortMultipartUpload"}  # fmt: skip


def test_a_long_stack_name_gives_a_machine_name_step_functions_accepts() -> None:
    long = f"sklearn-serving-staging-inference-{'m' * 40}"
    name = state_machine_name(long)
    assert len(name) <= 80 and name != state_machine_name(f"{long}x")
    assert state_machine_name("sklearn-serving-dev-inference") == (
        "sklearn-serving-dev-inference-batch-scoring"
    )


# ---------------------------------------------------------------------------- ASL


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_synthesized_definition_is_valid_amazon_states_language(
    batch_on: dict[str, Synth], env: str, tmp_path: Path
) -> None:
    checked = asl_validator(resolved_definition(batch_on[env]), tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "is valid" in checked.stdout


def test_the_validator_refuses_a_broken_definition(
    batch_on: dict[str, Synth], tmp_path: Path
) -> None:
    """The check above can fail: a Choice that goes to a state that does not exist, and a
    Map without its processor's StartAt."""
    broken = resolved_definition(batch_on["dev"])
    broken["States"]["Input format"]["Default"] = "Nowhere"
    checked = asl_validator(broken, tmp_path)
    assert checked.returncode != 0
    assert "Nowhere" in checked.stdout + checked.stderr
    broken = resolved_definition(batch_on["dev"])
    del broken["States"]["Score csv"]["ItemProcessor"]["StartAt"]
    assert asl_validator(broken, tmp_path).returncode != 0


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cfn_lint_finds_nothing_with_batch_on(batch_on: dict[str, Synth], env: str) -> None:
    templates = sorted(str(p) for p in batch_on[env].directory.glob("*.template.json"))
    lint = subprocess.run(
        [CFN_LINT, "--config-file", str(REPO / ".cfnlintrc.yaml"), *templates],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

"""Several models in one environment: one inference stack per model, one model store.

The second model here is the churn v1 artifact renamed "fraud" (a manifest-level copy):
enough for synth, which reads manifests and checksums only.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stacks.config import load_config
from stacks.settings import ConfigError, inference_stack_name
from tests.infra.conftest import Synth, artifacts_with, cdk_context, run_synth

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifacts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_with(tmp_path_factory.mktemp("artifacts"), "fraud")


def with_models(env: str, models: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    context = copy.deepcopy(cdk_context())
    context["environments"][env]["models"] = dict(models)
    return {**context, "env": env, **overrides}


FRAUD = {"fraud": {"rollout": {"model_version": "v1"}}}


@pytest.fixture(scope="module")
def one_model(tmp_path_factory: pytest.TempPathFactory, artifacts_root: Path) -> Synth:
    return run_synth(
        tmp_path_factory.mktemp("one"), {**cdk_context(), "env": "prod"},
        artifacts_root=artifacts_root,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory, artifacts_root: Path) -> Synth:
    models = {
        "fraud": {
            "runtime": "sklearn",
            "function": {"memory_mb": 1024},
            "provisioned_concurrency": {"total": 2, "autoscaling": None},
            "rollout": {"model_version": "v1"},
        }
    }
    return run_synth(
        tmp_path_factory.mktemp("two"), with_models("prod", models), artifacts_root=artifacts_root
    )


def test_adding_a_model_changes_no_existing_stack_template(
    one_model: Synth, two_models: Synth
) -> None:
    first = inference_stack_name("prod")
    assert set(two_models.templates) == {
        *one_model.templates,
        inference_stack_name("prod", "fraud"),
    }
    assert two_models.templates[first] == one_model.templates[first]
    # The model store only gains the new model's upload: nothing it had changes.
    store = "sklearn-serving-prod-model-store"
    before = copy.deepcopy(one_model.templates[store]["Resources"])
    after = copy.deepcopy(two_models.templates[store]["Resources"])
    # BucketDeployment tags the bucket per upload (as every new model version does).
    (bucket,) = [
        k for k, v in before.items() if v["Type"] == "AWS::S3::Bucket" and "ModelStoreBucket" in k
    ]
    tags_before = before[bucket]["Properties"].pop("Tags")
    tags_after = after[bucket]["Properties"].pop("Tags")
    assert [t for t in tags_after if t not in tags_before] == [
        {"Key": t["Key"], "Value": "true"}
        for t in tags_after
        if t["Key"].startswith("aws-cdk:cr-owned:models/fraud/v1/")
    ]
    assert {k: v for k, v in after.items() if k in before} == before
    added = {v["Type"] for k, v in after.items() if k not in before}
    # Each BucketDeployment brings its own AWS CLI layer (CDK's construct).
    assert added == {"Custom::CDKBucketDeployment", "AWS::Lambda::LayerVersion"}


def test_each_model_has_its_own_function_alias_capacity_and_monitoring(
    two_models: Synth,
) -> None:
    fraud = two_models.templates[inference_stack_name("prod", "fraud")]["Resources"]
    churn = two_models.templates[inference_stack_name("prod")]["Resources"]

    def of_type(resources: Mapping[str, Any], type_: str) -> list[dict[str, Any]]:
        return [r["Properties"] for r in resources.values() if r["Type"] == type_]

    def inference(resources: Mapping[str, Any]) -> dict[str, Any]:
        (function,) = [
            f
            for f in of_type(resources, "AWS::Lambda::Function")
            if "MODEL_NAME" in f.get("Environment", {}).get("Variables", {})
        ]
        return function

    function = inference(fraud)
    variables = function["Environment"]["Variables"]
    assert (variables["MODEL_NAME"], variables["MODEL_VERSION"]) == ("fraud", "v1")
    assert variables["MODEL_RUNTIME"] == "sklearn"
    assert variables["MODEL_KEY"].startswith("models/fraud/v1/")
    # Its own namespace: model metrics carry only ModelVersion, both models have a v1.
    assert variables["METRICS_NAMESPACE"] == "SklearnLambdaServing/prod/fraud"
    assert function["MemorySize"] == 1024
    assert inference(churn)["MemorySize"] == 2048
    assert [a["Name"] for a in of_type(fraud, "AWS::Lambda::Alias")] == ["production"]
    (dashboard,) = of_type(fraud, "AWS::CloudWatch::Dashboard")
    assert dashboard["DashboardName"] == "sklearn-serving-prod-fraud"
    alarm_names = [a["AlarmName"] for a in of_type(fraud, "AWS::CloudWatch::Alarm")]
    assert alarm_names and all(
        name.startswith("sklearn-serving-prod-fraud-") for name in alarm_names
    )
    churn_alarms = {a["AlarmName"] for a in of_type(churn, "AWS::CloudWatch::Alarm")}
    assert not churn_alarms & set(alarm_names)


def test_every_physical_name_is_unique_across_the_environment(two_models: Synth) -> None:
    named: dict[str, str] = {}
    keys = ("FunctionName", "AlarmName", "DashboardName", "BucketName", "TopicName")
    for stack, template in two_models.templates.items():
        for logical_id, resource in template["Resources"].items():
            for key in keys:
                value = resource.get("Properties", {}).get(key)
                if isinstance(value, str):
                    where = f"{stack}/{logical_id}"
                    assert value not in named, f"{value} named twice: {named[value]}, {where}"
                    named[value] = where


def test_a_model_inherits_the_environment_and_overrides_block_by_block(
    artifacts_root: Path,
) -> None:
    models = {
        "fraud": {
            "provisioned_concurrency": {"total": 2},
            "alarms": {"latency_p99_ms": 900},
            "rollout": {"model_version": "v1"},
        }
    }
    config = load_config(with_models("prod", models), artifacts_root=artifacts_root)
    churn, fraud = config.models
    assert (churn.model.model_name, fraud.model.model_name) == ("churn", "fraud")
    assert fraud.provisioned_concurrency.total == 2
    # The rest of the block is the environment's.
    assert fraud.provisioned_concurrency.autoscaling == churn.provisioned_concurrency.autoscaling
    assert fraud.alarms.latency_p99_ms == 900
    assert fraud.alarms.errors_threshold == churn.alarms.errors_threshold
    assert churn.alarms.latency_p99_ms == 500
    assert fraud.model.runtime == churn.model.runtime
    assert fraud.termination_protection is churn.termination_protection is True
    assert fraud.rollout.model_version == "v1"


def test_command_line_rollout_keys_move_only_the_model_named(artifacts_root: Path) -> None:
    canary = {"model_version": "v2", "stable_version": "3", "canary_weight": "0.1"}
    context = with_models("dev", FRAUD, model="fraud", **canary)
    churn, fraud = load_config(context, artifacts_root=artifacts_root).models
    assert (fraud.rollout.model_version, fraud.rollout.canary_weight) == ("v2", 0.1)
    assert (churn.rollout.model_version, churn.rollout.canary_weight) == ("v1", 0.0)
    # Without -c model=, they move the environment's first model, as in a one-model app.
    churn, fraud = load_config(
        with_models("dev", FRAUD, **canary), artifacts_root=artifacts_root
    ).models
    assert (churn.rollout.model_version, fraud.rollout.model_version) == ("v2", "v1")


@pytest.mark.parametrize(
    ("models", "overrides", "message"),
    [
        ({"fraud": {"runtime": "compiled"}}, {}, r"models\.fraud\.rollout is missing"),
        (
            {"fraud": {"rollout": {"model_version": "v1"}, "account": "123456789012"}},
            {},
            r"unknown key\(s\) environments\.dev\.models\.fraud\.account",
        ),
        ({"churn": {"rollout": {"model_version": "v1"}}}, {}, "already the environment's"),
        ({"Fraud!": {"rollout": {"model_version": "v1"}}}, {}, r"models key 'Fraud!'"),
        (FRAUD, {"model": "nope"}, r"model='nope' is not a model of environment 'dev'.*fraud"),
        (
            {"fraud": {"rollout": {"model_version": "v9"}}},
            {},
            r"model_version='v9' has no artifact.*fraud",
        ),
        (
            {
                "fraud": {
                    "rollout": {"model_version": "v1"},
                    "function": {"metrics_namespace": "SklearnLambdaServing/dev"},
                }
            },
            {},
            "both use function.metrics_namespace='SklearnLambdaServing/dev'",
        ),
        (
            {"fraud": {"rollout": {"model_version": "v1"}, "capture": {"retention_days": 7}}},
            {},
            "capture.retention_days is not allowed",
        ),
        (
            {"fraud": {"rollout": {"model_version": "v1", "canary_weight": 2}}},
            {},
            r"environments\.dev\.models\.fraud\.rollout\.canary_weight",
        ),
    ],
)
def test_a_bad_model_entry_is_refused_naming_it(
    artifacts_root: Path, models: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(with_models("dev", models, **overrides), artifacts_root=artifacts_root)


def test_a_canary_between_models_of_different_tasks_is_refused(tmp_path: Path) -> None:
    shutil.copytree(REPO / "model_artifacts" / "churn", tmp_path / "churn")
    manifest_path = tmp_path / "churn" / "v2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    (manifest["task"], manifest["target"]["classes"]) = ("multiclass", [0, 1, 2])
    manifest_path.write_text(json.dumps(manifest))
    context = {
        **cdk_context(),
        "env": "dev",
        "model_version": "v2",
        "stable_version": "3",
        "canary_weight": "0.1",
    }
    context["environments"] = copy.deepcopy(context["environments"])
    context["environments"]["dev"]["rollout"]["stable_model_version"] = "v1"
    with pytest.raises(ConfigError, match=r"v2 is a multiclass model but .* v1 is binary"):
        load_config(context, artifacts_root=tmp_path)
    # The same canary between two binary versions is fine.
    manifest_path.write_text(json.dumps({**manifest, "task": "binary"}))
    assert load_config(context, artifacts_root=tmp_path).stable_model is not None


def test_a_model_without_a_compiled_form_is_refused_with_the_reason(tmp_path: Path) -> None:
    artifacts_with(tmp_path, "svm", versions=("v1",))
    manifest_path = tmp_path / "svm" / "v1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["artifacts"]["compiled"]
    manifest["compiled_runtime"] = {
        "supported": False,
        "reason": "the compiled runtime does not support the estimator SVC",
    }
    manifest_path.write_text(json.dumps(manifest))
    models = {"svm": {"rollout": {"model_version": "v1"}}}
    with pytest.raises(
        ConfigError,
        match=r"runtime='compiled' is not available for svm v1: .* \(not compiled: the "
        r"compiled runtime does not support the estimator SVC\).*\(set \"runtime\": \"sklearn\"",
    ):
        load_config(with_models("dev", models), artifacts_root=tmp_path)
    models["svm"]["runtime"] = "sklearn"
    assert load_config(with_models("dev", models), artifacts_root=tmp_path).models[
        1
    ].model.file == ("model.skops")

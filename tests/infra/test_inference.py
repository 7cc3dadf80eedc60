"""Inference stack: function, versions, alias, provisioned concurrency, warmer, URL,
dashboard, alarms and outputs, asserted on the synthesized templates."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from stacks.config import load_config
from tests.infra.conftest import Synth, cdk_context

SynthContext = Callable[[Mapping[str, Any]], Synth]
ALIAS = "AWS::Lambda::Alias"
PC = "Custom::ProvisionedConcurrency"


def only(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (value,) = resources.values()
    return value


def inference_function(synth: Synth) -> dict[str, Any]:
    functions = synth.resources("inference", "AWS::Lambda::Function")
    (fn,) = [
        f
        for f in functions.values()
        if "MODEL_KEY" in json.dumps(f["Properties"].get("Environment", {}))
    ]
    return fn


def version_ref(synth: Synth) -> dict[str, list[str]]:
    (logical_id,) = synth.version_ids()
    return {"Fn::GetAtt": [logical_id, "Version"]}


def reconciler_properties(synth: Synth, phase: str) -> dict[str, Any]:
    (resource,) = [
        r for r in synth.resources("inference", PC).values() if r["Properties"]["Phase"] == phase
    ]
    properties: dict[str, Any] = resource["Properties"]
    return properties


def allocations(synth: Synth, phase: str) -> list[dict[str, Any]]:
    """Qualifier and executions of each allocation (Maximum and Weight are tested apart)."""
    return [
        {"Qualifier": a["Qualifier"], "Executions": a["Executions"]}
        for a in reconciler_properties(synth, phase)["Allocations"]
    ]


# ---------------------------------------------------------------- function and image


def test_environment_pins_model_identity(dev: Synth) -> None:
    config = load_config(cdk_context())
    env = inference_function(dev)["Properties"]["Environment"]["Variables"]
    assert env["MODEL_NAME"] == "churn"
    assert env["MODEL_VERSION"] == "v1"
    assert env["MODEL_RUNTIME"] == "compiled"
    assert env["MODEL_KEY"] == f"models/churn/v1/{config.model.content_id}/model.compiled.npz"
    assert env["MODEL_SHA256"] == config.model.sha256
    assert env["MAX_BATCH_SIZE"] == "1000"
    # Left out at the handler's default (100): a deployed function keeps its version.
    assert "MAX_EXPLAIN_ROWS" not in env
    assert env["METRICS_NAMESPACE"] == "SklearnLambdaServing/dev"
    assert env["MODEL_BUCKET"]["Fn::Join"][1][0] == "sklearn-serving-dev-models-"


def test_function_settings_come_from_config(dev: Synth, prod: Synth) -> None:
    for synth, memory, retention, reserved in ((dev, 1024, 14, 10), (prod, 2048, 90, 50)):
        props = inference_function(synth)["Properties"]
        assert props["MemorySize"] == memory
        assert props["Timeout"] == 30
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["ReservedConcurrentExecutions"] == reserved
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = synth.template("inference")["Resources"][group]
        assert log_group["Properties"]["RetentionInDays"] == retention


def test_reserved_concurrency_and_x86_follow_config(synth_context: SynthContext) -> None:
    context = cdk_context()
    context["environments"]["dev"]["function"].update(
        {"architecture": "x86_64", "reserved_concurrency": 5}
    )
    result = synth_context(context)
    props = inference_function(result)["Properties"]
    assert props["Architectures"] == ["x86_64"]
    assert props["ReservedConcurrentExecutions"] == 5
    (image,) = result.image_assets().values()
    assert image["source"]["platform"] == "linux/amd64", "the image follows the architecture"


def test_image_is_built_from_lambda_src_for_the_function_architecture(dev: Synth) -> None:
    (image,) = dev.image_assets().values()
    assert image["source"]["platform"] == "linux/arm64"
    assert image["source"]["dockerBuildArgs"] == {"MODEL_RUNTIME": "compiled"}
    staged = dev.directory / image["source"]["directory"]
    assert (staged / "Dockerfile").is_file()
    assert not list(staged.rglob("__pycache__")), "caches are excluded from the image context"


def test_role_reads_only_this_models_prefix(dev: Synth) -> None:
    policies = dev.resources("inference", "AWS::IAM::Policy")
    fn_role = inference_function(dev)["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [p for p in policies.values() if p["Properties"]["Roles"] == [{"Ref": fn_role}]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _list(s["Action"]))]
    assert len(s3) == 1
    assert s3[0]["Action"] == "s3:GetObject"
    assert s3[0]["Resource"]["Fn::Join"][1] == [
        "arn:",
        {"Ref": "AWS::Partition"},
        ":s3:::sklearn-serving-dev-models-",
        {"Ref": "AWS::AccountId"},
        "-",
        {"Ref": "AWS::Region"},
        "/models/churn/*",
    ]
    for statement in statements:
        if statement["Resource"] == "*":
            assert set(_list(statement["Action"])) == {
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
            }, "the only '*' is X-Ray's, which has no resource-level permissions"
    role = dev.template("inference")["Resources"][fn_role]
    assert "ManagedPolicyArns" not in role["Properties"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------- versions and alias


def test_versions_are_retained(dev: Synth, prod_canary: Synth) -> None:
    for synth in (dev, prod_canary):
        versions = synth.resources("inference", "AWS::Lambda::Version")
        assert len(versions) == 1
        (version,) = versions.values()
        assert version["DeletionPolicy"] == "Retain"
        assert version["UpdateReplacePolicy"] == "Retain"
        # Provisioned concurrency here would be create-only: a weight change would replace it.
        assert "ProvisionedConcurrencyConfig" not in version["Properties"]


def test_without_stable_all_traffic_goes_to_the_candidate(dev: Synth) -> None:
    alias = only(dev.resources("inference", ALIAS))["Properties"]
    assert alias["Name"] == "production"
    assert alias["FunctionVersion"] == version_ref(dev)
    assert "RoutingConfig" not in alias
    assert "ProvisionedConcurrencyConfig" not in alias


def test_canary_routes_weight_to_candidate_and_rest_to_stable(prod_canary: Synth) -> None:
    alias = only(prod_canary.resources("inference", ALIAS))["Properties"]
    assert alias["FunctionVersion"] == "7"
    assert alias["RoutingConfig"] == {
        "AdditionalVersionWeights": [
            {"FunctionVersion": version_ref(prod_canary), "FunctionWeight": 0.1}
        ]
    }
    assert "ProvisionedConcurrencyConfig" not in alias, "Lambda rejects PC on a weighted alias"


def test_stable_with_zero_weight_serves_only_stable(synth: Callable[..., Synth]) -> None:
    rolled_back = synth(env="prod", model_version="v2", stable_version="7", canary_weight="0")
    alias = only(rolled_back.resources("inference", ALIAS))["Properties"]
    assert alias["FunctionVersion"] == "7"
    assert "RoutingConfig" not in alias
    assert allocations(rolled_back, "settle") == [{"Qualifier": "7", "Executions": "4"}]


# ---------------------------------------------------------- provisioned concurrency


def test_prod_puts_all_pc_on_the_candidate_version(prod: Synth) -> None:
    expected = [{"Qualifier": version_ref(prod), "Executions": "4"}]
    assert allocations(prod, "scale_up") == expected
    assert allocations(prod, "settle") == expected


def test_canary_splits_pc_by_weight_across_both_versions(prod_canary: Synth) -> None:
    expected = [
        {"Qualifier": version_ref(prod_canary), "Executions": "1"},
        {"Qualifier": "7", "Executions": "3"},
    ]
    assert allocations(prod_canary, "scale_up") == expected
    assert allocations(prod_canary, "settle") == expected


def test_pc_ramps_with_the_weight(synth: Callable[..., Synth]) -> None:
    half = synth(env="prod", model_version="v2", stable_version="7", canary_weight="0.5")
    assert [a["Executions"] for a in allocations(half, "settle")] == ["2", "2"]


def test_alias_moves_only_after_scale_up_and_before_settle(prod_canary: Synth) -> None:
    resources = prod_canary.template("inference")["Resources"]
    (alias_id,) = prod_canary.resources("inference", ALIAS)
    pcs = prod_canary.resources("inference", PC)
    scale_up = next(k for k, v in pcs.items() if v["Properties"]["Phase"] == "scale_up")
    settle = next(k for k, v in pcs.items() if v["Properties"]["Phase"] == "settle")
    assert scale_up in resources[alias_id]["DependsOn"]
    assert alias_id in resources[settle]["DependsOn"]


def test_dev_without_pc_still_reconciles_to_nothing(dev: Synth) -> None:
    # An empty allocation releases whatever an earlier configuration provisioned.
    assert allocations(dev, "settle") == []


def test_reconciler_may_touch_only_this_functions_qualifiers(prod: Synth) -> None:
    functions = prod.resources("inference", "AWS::Lambda::Function")
    (inference_id,) = [
        k for k, f in functions.items() if "MODEL_KEY" in json.dumps(f["Properties"])
    ]
    policies = prod.resources("inference", "AWS::IAM::Policy")
    statements = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any("ProvisionedConcurrency" in a for a in _list(s["Action"]))
    ]
    assert {json.dumps(s["Resource"]) for s in statements} == {
        json.dumps({"Fn::GetAtt": [inference_id, "Arn"]}),
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [inference_id, "Arn"]}, ":*"]]}),
    }


def test_autoscaling_is_the_reconcilers_per_version_not_cloudformations(
    prod_canary: Synth,
) -> None:
    # A CloudFormation scalable target per version would pass from the candidate's
    # resource to the stable's on the next canary (see tests/transitions).
    template = prod_canary.assertions("inference")
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 0)
    for phase in ("scale_up", "settle"):
        properties = reconciler_properties(prod_canary, phase)
        assert properties["Autoscaling"] == {"TargetUtilization": "0.7"}
        assert properties["Allocations"] == [
            {"Qualifier": version_ref(prod_canary), "Executions": "1", "Maximum": "2",
             "Weight": "0.1"},
            {"Qualifier": "7", "Executions": "3", "Maximum": "18", "Weight": "0.9"},
        ]  # fmt: skip


def test_without_autoscaling_the_reconciler_registers_no_targets(
    synth: Callable[..., Synth],
) -> None:
    dev = synth(env="dev")
    assert "Autoscaling" not in reconciler_properties(dev, "scale_up")
    statements = [
        s
        for p in dev.resources("inference", "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    scaling = {
        action
        for s in statements
        for action in _list(s["Action"])
        if action.startswith("application-autoscaling:")
    }
    # Listing and deregistering stay: a release deregisters leftover targets first.
    assert scaling == {
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DeregisterScalableTarget",
    }


def test_reconciler_may_register_only_lambda_scalable_targets(prod: Synth) -> None:
    statements = [
        s
        for p in prod.resources("inference", "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    writes = [s for s in statements if "application-autoscaling:RegisterScalableTarget" in
              _list(s["Action"])]  # fmt: skip
    (register,) = writes
    assert register["Condition"] == {
        "StringEquals": {
            "application-autoscaling:service-namespace": "lambda",
            "application-autoscaling:scalable-dimension": "lambda:function:ProvisionedConcurrency",
        }
    }
    assert "scalable-target/*" in json.dumps(register["Resource"])
    (linked_role,) = [s for s in statements if s["Action"] == "iam:CreateServiceLinkedRole"]
    assert linked_role["Condition"] == {
        "StringLike": {"iam:AWSServiceName": "lambda.application-autoscaling.amazonaws.com"}
    }


# -------------------------------------------------------------------------- warmer


def warmer_rules(synth: Synth) -> dict[str, dict[str, Any]]:
    """The warm-up schedule (the drift monitor has a schedule of its own)."""
    return {
        k: r
        for k, r in synth.resources("inference", "AWS::Events::Rule").items()
        if "Warm-up" in r["Properties"].get("Description", "")
    }


def warmer_permissions(synth: Synth) -> list[dict[str, Any]]:
    rules = warmer_rules(synth)
    return [
        p["Properties"]
        for p in synth.resources("inference", "AWS::Lambda::Permission").values()
        if p["Properties"].get("SourceArn", {}).get("Fn::GetAtt", [None])[0] in rules
    ]


def test_dev_warms_the_candidate_version_directly(dev: Synth) -> None:
    rule = only(warmer_rules(dev))["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    assert json.loads(target["Input"]) == {"_warmup": True}
    assert target["Arn"] == {"Ref": next(iter(dev.version_ids()))}
    (permission,) = warmer_permissions(dev)
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": next(iter(dev.version_ids()))}


def test_canary_warms_each_version_not_the_alias(dev_canary: Synth) -> None:
    rule = only(warmer_rules(dev_canary))["Properties"]
    arns = [json.dumps(t["Arn"]) for t in rule["Targets"]]
    assert len(arns) == 2
    assert json.dumps({"Ref": next(iter(dev_canary.version_ids()))}) in arns
    assert any(arn.endswith('":7"]]}') for arn in arns), "the stable version by number"
    assert len(warmer_permissions(dev_canary)) == 2


def test_prod_warmer_is_off_where_pc_covers_traffic(prod: Synth) -> None:
    assert warmer_rules(prod) == {}


def test_warmer_can_be_forced_on_with_its_own_rate(synth_context: SynthContext) -> None:
    context = cdk_context()
    context["environments"]["prod"]["warmer"] = {"enabled": True, "rate_minutes": 1}
    result = synth_context({**context, "env": "prod"})
    rule = only(warmer_rules(result))["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 minute)"


# ------------------------------------------------------------------------ endpoint


def test_function_url_on_alias_with_iam_auth(dev: Synth) -> None:
    url = only(dev.resources("inference", "AWS::Lambda::Url"))["Properties"]
    assert url["AuthType"] == "AWS_IAM"
    assert url["Qualifier"] == "production"
    permissions = dev.resources("inference", "AWS::Lambda::Permission")
    assert not [p for p in permissions.values() if p["Properties"]["Principal"] == "*"]


def test_unauthenticated_url_only_when_configured(synth_context: SynthContext) -> None:
    context = cdk_context()
    context["environments"]["dev"]["endpoint"] = {"auth": "NONE"}
    result = synth_context(context)
    url = only(result.resources("inference", "AWS::Lambda::Url"))["Properties"]
    assert url["AuthType"] == "NONE"


# ---------------------------------------------------------------------- monitoring


def dashboard_widgets(synth: Synth) -> list[dict[str, Any]]:
    """The dashboard body as JSON, with each CloudFormation reference as a readable name."""
    dashboard = only(synth.resources("inference", "AWS::CloudWatch::Dashboard"))
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else _placeholder(p) for p in parts)
    widgets: list[dict[str, Any]] = json.loads(text)["widgets"]
    return widgets


def _placeholder(token: dict[str, Any]) -> str:
    if "Ref" in token:
        return f"<{token['Ref']}>"
    if "Fn::GetAtt" in token:
        return f"<{'.'.join(token['Fn::GetAtt'])}>"
    return "<token>"


def graph(widgets: list[dict[str, Any]], title: str) -> list[list[Any]]:
    (widget,) = [w for w in widgets if w["properties"].get("title") == title]
    metrics: list[list[Any]] = widget["properties"]["metrics"]
    return metrics


def test_dashboard_shows_stable_and_candidate_side_by_side(prod_canary: Synth) -> None:
    widgets = dashboard_widgets(prod_canary)
    candidate = f"<{next(iter(prod_canary.version_ids()))}.Version>"
    function = "<InferenceFunction05D34FA4>"
    per_executed_version = (
        ("Invocations", "Invocations", "Sum"),
        ("Errors", "Errors", "Sum"),
        ("Duration p50 (ms)", "Duration", "p50"),
        ("Duration p99 (ms)", "Duration", "p99"),
    )
    per_version_resource = (
        ("Concurrent executions", "ConcurrentExecutions", "Maximum"),
        ("Provisioned concurrency utilization", "ProvisionedConcurrencyUtilization", "Maximum"),
        ("Provisioned concurrency spillover", "ProvisionedConcurrencySpilloverInvocations", "Sum"),
    )
    for title, metric, stat in per_executed_version + per_version_resource:
        stable_line, candidate_line = graph(widgets, title)[:2]
        for line, version, label in (
            (stable_line, "7", "stable (version 7)"),
            (candidate_line, candidate, "candidate (model v2)"),
        ):
            assert line[:2] == ["AWS/Lambda", metric], title
            dims = dict(zip(line[2:-1:2], line[3:-1:2], strict=True))
            if (title, metric, stat) in per_executed_version:
                # Invocation metrics: per version that ran a request through the alias.
                assert dims["ExecutedVersion"] == version, title
                assert dims["Resource"] == f"{function}:production", title
            else:
                # Concurrency metrics have no ExecutedVersion; they are per version Resource.
                assert "ExecutedVersion" not in dims, title
                assert dims["Resource"] == f"{function}:{version}", title
            assert line[-1]["stat"] == stat and line[-1]["label"] == label
    alias_line, function_line = graph(widgets, "Throttles")
    assert alias_line[:6] == ["AWS/Lambda", "Throttles", "FunctionName", function, "Resource",
                              f"{function}:production"]  # fmt: skip
    assert function_line[:4] == ["AWS/Lambda", "Throttles", "FunctionName", function]
    assert len(function_line) == 5, "the whole function: no other dimension"


def test_dashboard_shows_handler_metrics_per_model_version(dev: Synth) -> None:
    widgets = dashboard_widgets(dev)
    for title, metric, stat in (
        ("Inference latency p99 (ms)", "InferenceLatency", "p99"),
        ("Mean predicted probability", "PredictionProbability", "Average"),
        ("Cold starts", "ColdStart", "Sum"),
        ("Model load time p99 (ms)", "ModelLoadTime", "p99"),
        ("Predictions", "Predictions", "Sum"),
    ):
        ((expression,),) = [[m[0]["expression"]] for m in graph(widgets, title)]
        assert expression == (
            f"SEARCH('{{SklearnLambdaServing/dev,ModelVersion}} "
            f"MetricName=\"{metric}\"', '{stat}', 60)"
        )


def test_alarms_and_their_thresholds(dev: Synth) -> None:
    template = dev.assertions("inference")
    # latency, errors, throttles; feature and prediction drift (capture is on in dev); the
    # drift monitor's failures and failed runs, capture delivery (test_monitor_health.py)
    template.resource_count_is("AWS::CloudWatch::Alarm", 8)
    topic = {"Ref": next(iter(dev.resources("inference", "AWS::SNS::Topic")))}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": "sklearn-serving-dev-churn-latency-p99",
            "Namespace": "SklearnLambdaServing/dev",
            "MetricName": "InferenceLatency",
            "Dimensions": [{"Name": "ModelVersion", "Value": "v1"}],
            "ExtendedStatistic": "p99",
            "Threshold": 500,
            "EvaluationPeriods": 5,
            "DatapointsToAlarm": 3,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [topic],
        },
    )
    errors = errors_alarm(dev)
    assert errors["AlarmName"] == "sklearn-serving-dev-churn-errors"
    assert errors["Threshold"] == 5 and errors["EvaluationPeriods"] == 1
    assert errors["ComparisonOperator"] == "GreaterThanThreshold"
    assert errors["AlarmActions"] == [topic]
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": "sklearn-serving-dev-churn-throttles",
            "MetricName": "Throttles",
            "Statistic": "Sum",
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [topic],
        },
    )


def test_alarm_thresholds_follow_the_environment_settings(synth_context: SynthContext) -> None:
    context = cdk_context()
    context["environments"]["dev"]["alarms"].update(
        latency_p99_ms=250, latency_evaluation_minutes=10, latency_breaching_minutes=4,
        errors_threshold=0, errors_period_minutes=1, throttles_threshold=20,
    )  # fmt: skip
    result = synth_context(context)
    alarms = {
        a["Properties"]["AlarmName"].rsplit("-churn-", 1)[1]: a["Properties"]
        for a in result.resources("inference", "AWS::CloudWatch::Alarm").values()
    }
    latency = alarms["latency-p99"]
    assert (latency["Threshold"], latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (
        250, 10, 4,
    )  # fmt: skip
    assert alarms["errors"]["Threshold"] == 0
    assert {
        q["MetricStat"]["Period"] for q in alarms["errors"]["Metrics"] if "MetricStat" in q
    } == {60}
    assert alarms["throttles"]["Threshold"] == 20


def errors_alarm(synth: Synth, name: str = "errors") -> dict[str, Any]:
    (alarm,) = [
        a["Properties"]
        for a in synth.resources("inference", "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"].endswith(f"-{name}")
    ]
    return alarm


def error_series(alarm: dict[str, Any]) -> tuple[str, dict[str, tuple[str, str, dict[str, Any]]]]:
    """The alarm's expression and, per id, (namespace, metric name, dimensions)."""
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    series = {}
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            stat = query["MetricStat"]
            assert (stat["Stat"], stat["Period"], query["ReturnData"]) == ("Sum", 300, False)
            metric = stat["Metric"]
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            series[query["Id"]] = (metric["Namespace"], metric["MetricName"], dimensions)
    return expression, series


FUNCTION_REF = {"Ref": "InferenceFunction05D34FA4"}


def test_errors_alarm_counts_the_handlers_5xx_answers_of_every_version(dev: Synth) -> None:
    # The handler answers 503/500 itself, so Lambda's Errors alone stays 0 for a broken model.
    expression, series = error_series(errors_alarm(dev))
    assert expression == "FILL(errors, 0) + FILL(answers5xx, 0)"
    namespace, name, dimensions = series["errors"]
    assert (namespace, name) == ("AWS/Lambda", "Errors")
    assert json.dumps(dimensions["Resource"]).endswith(':production"]]}')
    assert "ExecutedVersion" not in dimensions, "through the alias: both versions"
    assert series["answers5xx"] == (
        "SklearnLambdaServing/dev",
        "ServerErrors",
        {"FunctionName": FUNCTION_REF},
    )


@pytest.mark.parametrize(
    "recorded", [True, False], ids=["stable model recorded", "started with -c"]
)
def test_a_manual_canary_alarms_on_the_errors_of_both_sides(
    synth: Callable[..., Synth], synth_context: SynthContext, recorded: bool
) -> None:
    # A canary started with -c does not record the stable side's model: the alarm must
    # still count the 5xx answers of the stable version, which takes 90 % of the traffic.
    if recorded:
        context = cdk_context()
        context["environments"]["prod"]["rollout"].update(
            model_version="v2", stable_version=7, canary_weight=0.1, stable_model_version="v1"
        )
        result = synth_context({**context, "env": "prod"})
    else:
        result = synth(env="prod", model_version="v2", stable_version="7", canary_weight="0.1")
    _, series = error_series(errors_alarm(result))
    assert series["answers5xx"][2] == {"FunctionName": FUNCTION_REF}, "every model version"


def test_errors_graph_names_both_models_when_the_stable_model_is_recorded(
    synth_context: SynthContext,
) -> None:
    context = cdk_context()
    context["environments"]["dev"]["function"]["metrics_namespace"] = "Churn/Serving"
    context["environments"]["dev"]["rollout"].update(
        model_version="v2", stable_version=7, canary_weight=0.1, stable_model_version="v1"
    )
    result = synth_context(context)
    *_, stable_5xx, candidate_5xx = graph(dashboard_widgets(result), "Errors")
    for line, model, label in (
        (stable_5xx, "v1", "5xx, stable (model v1)"),
        (candidate_5xx, "v2", "5xx, candidate (model v2)"),
    ):
        assert line[:4] == ["Churn/Serving", "ServerErrors", "ModelVersion", model]
        assert line[-1]["stat"] == "Sum" and line[-1]["label"] == label


def test_errors_graph_shows_5xx_answers_of_every_model_without_a_recorded_stable(
    prod_canary: Synth,
) -> None:
    *_, server_errors = graph(dashboard_widgets(prod_canary), "Errors")
    assert server_errors[0]["expression"] == (
        "SEARCH('{SklearnLambdaServing/prod,ModelVersion} MetricName=\"ServerErrors\"', 'Sum', 60)"
    )
    assert server_errors[0]["label"] == "5xx, model ${PROP('Dim.ModelVersion')}"


def test_alarm_email_is_optional(dev: Synth, synth_context: SynthContext) -> None:
    dev.assertions("inference").resource_count_is("AWS::SNS::Subscription", 0)
    context = cdk_context()
    context["environments"]["dev"]["alarms"] = {"email": "oncall@example.com"}
    synth_context(context).assertions("inference").has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )


def test_alarm_topic_is_encrypted_and_tls_only(dev: Synth) -> None:
    topic = only(dev.resources("inference", "AWS::SNS::Topic"))["Properties"]
    assert "KmsMasterKeyId" in topic
    dev.assertions("inference").has_resource_properties(
        "AWS::KMS::Key", {"EnableKeyRotation": True}
    )


# ------------------------------------------------------------------------- outputs


def test_outputs(prod_canary: Synth) -> None:
    outputs = prod_canary.template("inference")["Outputs"]
    assert set(outputs) >= {
        "EndpointUrl",
        "AliasArn",
        "PublishedVersion",
        "ModelVersion",
        "DashboardName",
    }
    assert outputs["PublishedVersion"]["Value"] == version_ref(prod_canary)
    assert outputs["ModelVersion"]["Value"] == "v2"
    assert outputs["DashboardName"]["Value"] == "sklearn-serving-prod-churn"
    assert outputs["EndpointUrl"]["Value"]["Fn::GetAtt"][1] == "FunctionUrl"


def test_max_explain_rows_reaches_the_function_when_an_environment_sets_it(
    synth_context: Callable[[Mapping[str, Any]], Synth],
) -> None:
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev"]["function"]["max_explain_rows"] = 20
    template = synth_context({**context, "env": "dev"})
    env = inference_function(template)["Properties"]["Environment"]["Variables"]
    assert env["MAX_EXPLAIN_ROWS"] == "20"
    context["environments"]["dev"]["function"]["max_explain_rows"] = 0
    with pytest.raises(Exception, match=r"function\.max_explain_rows"):
        synth_context({**context, "env": "dev"})

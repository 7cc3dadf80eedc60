"""Every dashboard line and every alarm reads a metric on a dimension set that is published.

CloudWatch accepts a widget or an alarm on any dimension set, and shows an empty graph or
never fires when nothing is published there. The tables of what Lambda and the handler
publish live in stacks/constructs/lambda_metrics.py with their sources; the handler's own
EMF output is the source for its metrics (checked below against the real emitter).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from stacks.constructs.lambda_metrics import (
    HANDLER_DIMENSIONS,
    LAMBDA_NAMESPACE,
    NAMESPACE_DIMENSIONS,
    PER_PROVISIONED_RESOURCE,
    PUBLISHED_DIMENSIONS,
    SERVICE_DIMENSIONS,
)
from stacks.settings import ALIAS_NAME, ANSWER_METRIC
from tests.infra.conftest import CANARY, Synth
from tools.transitions.changes import State, resolve

CONFIGURATIONS = {
    "dev": {"env": "dev"},
    "prod": {"env": "prod"},
    "prod-canary": {"env": "prod", **CANARY},
}
SEARCH = re.compile(
    r"SEARCH\('\{(?P<namespace>[^,}]+)(?P<dims>(?:,[^,}]+)*)\} MetricName=\"(?P<name>[^\"]+)\""
)


def dashboard_lines(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every metric line and SEARCH on the dashboard."""
    (dashboard,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    body = json.loads(resolve(dashboard["Properties"]["DashboardBody"], template, State()))
    for widget in body["widgets"]:
        previous: list[Any] = []
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], dict):
                yield from _searches(line[0]["expression"])
                continue
            # "." repeats the previous line's value at that position.
            values = [previous[i] if v == "." else v for i, v in enumerate(line[:-1])]
            previous = values
            namespace, name, *pairs = values
            yield namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))


def _searches(expression: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    for match in SEARCH.finditer(expression):
        dims = [d for d in match["dims"].split(",") if d]
        yield match["namespace"], match["name"], dict.fromkeys(dims, "<search>")


def alarm_metrics(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resolve(resource["Properties"], template, State())
        if "MetricName" in properties:
            yield (
                properties["Namespace"],
                properties["MetricName"],
                {d["Name"]: d["Value"] for d in properties.get("Dimensions", [])},
            )
        for query in properties.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                yield (
                    metric["Namespace"],
                    metric["MetricName"],
                    {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
                )


def problems(template: dict[str, Any], namespace: str) -> list[str]:
    found = []
    for where, lines in (("dashboard", dashboard_lines), ("alarm", alarm_metrics)):
        for metric_namespace, name, dimensions in lines(template):
            keys = frozenset(dimensions)
            if metric_namespace == LAMBDA_NAMESPACE:
                published = PUBLISHED_DIMENSIONS.get(name, frozenset())
            elif metric_namespace == namespace:
                published = NAMESPACE_DIMENSIONS.get(name, frozenset())
            elif metric_namespace in SERVICE_DIMENSIONS:
                published = SERVICE_DIMENSIONS[metric_namespace].get(name, frozenset())
            else:
                found.append(f"{where}: {name} in unknown namespace {metric_namespace}")
                continue
            if keys not in published:
                found.append(f"{where}: {name} is not published on {sorted(keys)}")
            # The alias never carries provisioned concurrency; versions do.
            resource = dimensions.get("Resource", "<search>")
            if name in PER_PROVISIONED_RESOURCE and resource.endswith(f":{ALIAS_NAME}"):
                found.append(f"{where}: {name} on {resource}, which has no provisioned concurrency")
    return found


@pytest.mark.infra
@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_every_widget_and_alarm_reads_a_published_dimension_set(
    synth: Callable[..., Synth], configuration: str
) -> None:
    result = synth(**CONFIGURATIONS[configuration])
    namespace = f"SklearnLambdaServing/{CONFIGURATIONS[configuration]['env']}"
    assert problems(result.template("inference"), namespace) == []


@pytest.mark.infra
def test_automated_mode_searches_only_published_dimension_sets(
    synth_context: Callable[[dict[str, Any]], Synth],
) -> None:
    from tests.infra.conftest import cdk_context

    context = cdk_context()
    context["environments"]["prod"]["rollout"]["mode"] = "automated"
    template = synth_context({**context, "env": "prod"}).template("inference")
    searched = [line for line in dashboard_lines(template) if "<search>" in line[2].values()]
    assert searched, "automated mode graphs versions by SEARCH"
    assert problems(template, "SklearnLambdaServing/prod") == []


def test_the_check_catches_a_widget_on_an_unpublished_dimension_set() -> None:
    # Provisioned-concurrency utilisation per ExecutedVersion behind an alias without
    # provisioned concurrency: the widget the first release drew, always empty.
    body = {
        "widgets": [{"properties": {"metrics": [[
            "AWS/Lambda", "ProvisionedConcurrencyUtilization", "FunctionName", "F",
            "Resource", "F:production", "ExecutedVersion", "7", {"stat": "Maximum"},
        ], [".", "ConcurrentExecutions", ".", ".", ".", ".", ".", ".", {}]]}}]
    }  # fmt: skip
    template = {
        "Resources": {
            "D": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardBody": json.dumps(body)},
            }
        }
    }
    assert problems(template, "ns") == [
        "dashboard: ProvisionedConcurrencyUtilization is not published on "
        "['ExecutedVersion', 'FunctionName', 'Resource']",
        "dashboard: ProvisionedConcurrencyUtilization on F:production, which has no "
        "provisioned concurrency",
        "dashboard: ConcurrentExecutions is not published on "
        "['ExecutedVersion', 'FunctionName', 'Resource']",
    ]


def test_the_monitor_table_names_the_evaluators_and_the_drift_monitors_metrics() -> None:
    # The names fixed for issue 22: per candidate (or served) model version only, so the
    # harm alarm that rolls back and the graphs beside it read the series published.
    model_version = frozenset({frozenset({"ModelVersion"})})
    for name in ("CanarySamples", "CanaryRequests", "PredictionShiftPSI", "CanaryHarm",
                 "DriftRows", "DriftRequests", "MaxFeaturePSI", "DriftedFeatures",
                 "PredictionPSI"):  # fmt: skip
        assert NAMESPACE_DIMENSIONS[name] == model_version, name
    assert NAMESPACE_DIMENSIONS["FeaturePSI"] == {frozenset({"ModelVersion", "Feature"})}


def test_the_handler_table_matches_what_the_handler_emits() -> None:
    from inference import metrics

    for name, dimension_sets in HANDLER_DIMENSIONS.items():
        function_name = "fn" if frozenset({"FunctionName"}) in dimension_sets else None
        (document,) = metrics.documents(
            "ns", "v1", [metrics.Metric(name, metrics.COUNT, 1)], function_name=function_name
        )
        emitted = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]  # type: ignore[index]
        assert {frozenset(d) for d in emitted} == set(dimension_sets), name


@pytest.mark.parametrize(
    ("task", "classes", "outputs"),
    [
        ("binary", (0, 1), np.array([0.25, 0.75])),
        ("multiclass", ("a", "b", "c"), np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])),
        ("regression", None, np.array([151.5, 80.25])),
    ],
)
def test_the_answer_metric_the_stacks_graph_is_the_one_the_handler_emits(
    task: str, classes: tuple[object, ...] | None, outputs: Any
) -> None:
    from inference import answers

    emitted = answers.answers(task, classes, outputs, rows=2, batch=True).metric.name
    assert emitted == ANSWER_METRIC[task].name
    assert emitted in HANDLER_DIMENSIONS

"""The canary evaluator: the candidate's prediction shift against the stable side, from the
two versions' capture records, under botocore's Stubber (Lambda, CloudWatch Logs, CloudWatch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from botocore.stub import Stubber

from monitors import canary
from serving.insights import query
from tests.infra.test_drift_monitor import stubbed_clients

SETTINGS = canary.Settings(
    function_name="fn", alias_name="production", log_group="/aws/fn", model_version="v2",
    namespace="SklearnLambdaServing/prod", window_minutes=30, min_rows=200,
)  # fmt: skip


@pytest.fixture
def stubbed() -> Iterator[tuple[dict[str, Any], dict[str, Stubber]]]:
    yield from stubbed_clients("lambda", "logs", "cloudwatch")


def alias(stubbers: dict[str, Stubber], weights: dict[str, float]) -> None:
    answer: dict[str, Any] = {"FunctionVersion": "7", "Name": "production"}
    if weights:
        answer["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    stubbers["lambda"].add_response(
        "get_alias", answer, {"FunctionName": "fn", "Name": "production"}
    )


def side(stubbers: dict[str, Stubber], version: str, records: list[dict[str, Any]]) -> None:
    """``version``'s capture records, as the evaluator's Logs Insights query finds them."""
    results = [[{"field": "@message", "value": json.dumps({"capture": 1, "features": {"x": 1.0},
                                                           **r})}] for r in records]  # fmt: skip
    stubbers["logs"].add_response(
        "start_query", {"queryId": f"q{version}"},
        {"logGroupName": "/aws/fn", "startTime": 1_000_000 - 1800, "endTime": 1_000_000,
         "queryString": query(version, field="lambda_version"), "limit": 10_000},
    )  # fmt: skip
    stubbers["logs"].add_response(
        "get_query_results", {"status": "Complete", "results": results}, {"queryId": f"q{version}"}
    )


def scored(probabilities: np.ndarray) -> list[dict[str, Any]]:
    return [{"probability": float(p)} for p in probabilities]


def published(stubbers: dict[str, Stubber], seen: dict[str, float]) -> None:
    class Capture:
        def __eq__(self, other: object) -> bool:
            assert isinstance(other, list)
            seen.update({d["MetricName"]: d["Value"] for d in other})
            return True

    stubbers["cloudwatch"].add_response(
        "put_metric_data", {}, {"Namespace": SETTINGS.namespace, "MetricData": Capture()}
    )


def run(clients: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = canary.run(
        SETTINGS, lambda_client=clients["lambda"], logs=clients["logs"],
        cloudwatch=clients["cloudwatch"], now=1_000_000, expired=lambda: False,
        sleep=lambda _: None,
    )  # fmt: skip
    return summary


def evaluate(
    stubbed: Any,
    stable: list[dict[str, Any]],
    candidate: list[dict[str, Any]],
    *,
    weight: float = 0.1,
) -> tuple[dict[str, Any], dict[str, float]]:
    """One run with version 8 on ``weight`` beside version 7, each side having captured these
    records: the evaluator's summary and the metrics it published."""
    clients, stubbers = stubbed
    alias(stubbers, {"8": weight})
    side(stubbers, "7", stable)
    side(stubbers, "8", candidate)
    seen: dict[str, float] = {}
    published(stubbers, seen)
    return run(clients), seen


@pytest.mark.parametrize(("shift", "high"), [(0.0, False), (0.3, True)])
def test_a_candidate_that_predicts_differently_gets_a_high_psi(
    stubbed: Any, shift: float, high: bool
) -> None:
    rng = np.random.default_rng(1)
    summary, seen = evaluate(
        stubbed, scored(rng.beta(2, 5, 1500)), scored(np.clip(rng.beta(2, 5, 400) + shift, 0, 1))
    )
    assert (summary["stable"], summary["candidate"], seen["CanarySamples"]) == ("7", "8", 400)
    assert (seen["PredictionShiftPSI"] > 0.25) is high


def test_too_few_candidate_rows_publish_only_the_sample_count(stubbed: Any) -> None:
    rng = np.random.default_rng(2)
    stable, candidate = scored(rng.uniform(0, 1, 1000)), scored(rng.uniform(0, 1, 50))
    _, seen = evaluate(stubbed, stable, candidate, weight=0.05)
    assert seen == {"CanarySamples": 50}


def test_one_version_behind_the_alias_publishes_nothing(stubbed: Any) -> None:
    clients, stubbers = stubbed
    alias(stubbers, {})
    assert run(clients) == {"canary": None}


def classes(rng: np.random.Generator, rows: int, shares: list[float]) -> list[dict[str, Any]]:
    labels = rng.choice(["ant", "bee", "cat"], rows, p=shares)
    return [{"prediction": str(v), "probabilities": [0.4, 0.3, 0.3]} for v in labels]


@pytest.mark.parametrize(("shares", "high"), [([0.6, 0.3, 0.1], False), ([0.2, 0.3, 0.5], True)])
def test_multiclass_sides_are_compared_on_predicted_class_frequencies(
    stubbed: Any, shares: list[float], high: bool
) -> None:
    rng = np.random.default_rng(4)
    stable = classes(rng, 1500, [0.6, 0.3, 0.1])
    summary, seen = evaluate(stubbed, stable, classes(rng, 400, shares))
    assert summary["report"]["task"] == "multiclass" and seen["CanarySamples"] == 400
    assert (seen["PredictionShiftPSI"] > 0.25) is high


def values(predictions: Any) -> list[dict[str, Any]]:
    return [{"prediction": float(v)} for v in predictions]


@pytest.mark.parametrize(("shift", "high"), [(0.0, False), (15.0, True)])
def test_regression_sides_are_compared_on_value_bins(
    stubbed: Any, shift: float, high: bool
) -> None:
    rng = np.random.default_rng(5)
    stable = values(rng.normal(100, 20, 1500))
    summary, seen = evaluate(stubbed, stable, values(rng.normal(100 + shift, 20, 400)))
    assert summary["report"]["task"] == "regression"
    assert (seen["PredictionShiftPSI"] > 0.25) is high


def test_too_few_regression_rows_publish_only_the_sample_count(stubbed: Any) -> None:
    summary, seen = evaluate(stubbed, values(range(1000)), values(range(20)))
    assert summary["report"]["verdict"] == "too few requests to judge"
    assert seen == {"CanarySamples": 20}


# ---------------------------------------------------------------------------- templates

from collections.abc import Callable  # noqa: E402

from tests.infra.conftest import CANARY, Synth  # noqa: E402
from tests.infra.test_monitor_health import automated_prod_alarms  # noqa: E402


def evaluators(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        k: f["Properties"]
        for k, f in synth.resources("inference", "AWS::Lambda::Function").items()
        if "ALIAS_NAME" in json.dumps(f["Properties"].get("Environment", {}))
    }


def test_a_manual_canary_is_evaluated_every_five_minutes_and_pages(
    synth: Callable[..., Synth],
) -> None:
    result = synth(env="prod", **CANARY)
    ((evaluator_id, evaluator),) = evaluators(result).items()
    variables = evaluator["Environment"]["Variables"]
    assert (variables["MODEL_VERSION"], variables["ALIAS_NAME"], variables["WINDOW_MINUTES"]) == (
        "v2", "production", "30",
    )  # fmt: skip
    rules = [r["Properties"] for r in result.resources("inference", "AWS::Events::Rule").values()
             if evaluator_id in json.dumps(r)]  # fmt: skip
    assert [r["ScheduleExpression"] for r in rules] == ["rate(5 minutes)"]
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in result.resources("inference", "AWS::CloudWatch::Alarm").values()
    }
    shift = alarms["sklearn-serving-prod-churn-prediction-shift"]
    assert (shift["MetricName"], shift["Threshold"], shift["Period"]) == (
        "PredictionShiftPSI", 0.25, 300,
    )  # fmt: skip


def test_a_steady_deploy_has_no_canary_to_evaluate(prod: Synth) -> None:
    assert evaluators(prod) == {}


def test_automated_mode_rolls_back_on_harm_not_on_the_prediction_shift(
    synth_context: Callable[[dict[str, Any]], Synth],
) -> None:
    watched, names = automated_prod_alarms(synth_context)
    assert "sklearn-serving-prod-churn-canary-harm" in watched
    assert "sklearn-serving-prod-churn-prediction-shift" in names - watched

"""The canary evaluator: the canary rule over the two versions' capture records since the
canary began, under botocore's Stubber (Lambda, CloudWatch Logs, CloudWatch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from botocore.stub import Stubber

from monitors import canary
from serving.canary import DEFAULT_MIN_REQUESTS
from serving.insights import request_query
from tests.infra.test_drift_monitor import stubbed_clients

NOW = 1_000_000
STARTED = NOW - 2 * 3600  # the candidate's first capture record: 2 hours ago
SETTINGS = canary.Settings(
    function_name="fn", alias_name="production", log_group="/aws/fn", model_version="v2",
    namespace="SklearnLambdaServing/prod", min_requests=50,
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


def first_record(
    stubbers: dict[str, Stubber], at: int | None, record: dict[str, Any] | None = None
) -> None:
    """The candidate's oldest capture record in the look-back, at epoch ``at`` (None: none);
    ``record``'s fields give its task (default: a binary one)."""
    moment = np.datetime64(at, "s").astype("datetime64[ms]") if at is not None else None
    message = json.dumps({"capture": 1, **(record or {"probability": 0.5, "prediction": 1})})
    results = [] if moment is None else [
        [{"field": "@timestamp", "value": str(moment).replace("T", " ")},
         {"field": "@message", "value": message}]
    ]  # fmt: skip
    stubbers["logs"].add_response(
        "start_query", {"queryId": "qfirst"},
        {"logGroupName": "/aws/fn", "startTime": NOW - canary.LOOKBACK_HOURS * 3600,
         "endTime": NOW, "queryString": canary.first_record_query("8"), "limit": 1},
    )  # fmt: skip
    stubbers["logs"].add_response(
        "get_query_results", {"status": "Complete", "results": results}, {"queryId": "qfirst"}
    )


def request_stats(records: list[dict[str, Any]], task: str) -> list[list[dict[str, str]]]:
    """What Logs Insights answers ``request_query(version, task)`` on these capture records:
    per group (request; binary and multiclass: request and predicted label) count(*), avg,
    min, and count(probability) (the records that have the field)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        key = (
            (r["request_id"],) if task == "regression" else (r["request_id"], str(r["prediction"]))
        )
        groups.setdefault(key, []).append(r)
    results = []
    for key, rows in groups.items():
        found = {"request_id": key[0], "rows": str(len(rows))}
        if task != "regression":
            found["prediction"] = key[1]
        if task == "binary":
            found["mean_probability"] = repr(float(np.mean([r["probability"] for r in rows])))
            found["lowest"] = repr(float(min(r["probability"] for r in rows)))
        else:
            found["binary_rows"] = str(sum("probability" in r for r in rows))
        if task == "regression":
            found["mean_value"] = repr(float(np.mean([float(r["prediction"]) for r in rows])))
        results.append([{"field": k, "value": v} for k, v in found.items()])
    return results


def side(
    stubbers: dict[str, Stubber], version: str, records: list[dict[str, Any]], task: str = ""
) -> None:
    """``version``'s capture records since the canary began, as the evaluator's per-request
    query finds them (``task``: the candidate's, which the query is written for)."""
    task = task or canary.prediction_of(records[0])[0]
    stubbers["logs"].add_response(
        "start_query", {"queryId": f"q{version}"},
        {"logGroupName": "/aws/fn", "startTime": STARTED, "endTime": NOW,
         "queryString": request_query(version, task), "limit": 10_000},
    )  # fmt: skip
    stubbers["logs"].add_response(
        "get_query_results",
        {"status": "Complete", "results": request_stats(records, task)},
        {"queryId": f"q{version}"},
    )


def requests(
    rng: np.random.Generator, count: int, rows: int, answer: Any, name: str = "r"
) -> list[dict[str, Any]]:
    """``count`` requests of ``rows`` rows; ``answer(rng, rows)`` the fields of each row."""
    return [
        {"request_id": f"{name}{i}", **fields} for i in range(count) for fields in answer(rng, rows)
    ]


def scored(rate: float, spread: float = 0.3) -> Any:
    """Binary rows: a request-level positive tendency around ``rate`` (rows correlated)."""

    def answer(rng: np.random.Generator, rows: int) -> list[dict[str, Any]]:
        level = np.clip(rate + rng.normal(0, 0.1), 0.01, 0.99)
        positive = rng.uniform(size=rows) < level
        probability = np.where(positive, 0.5 + spread * rng.uniform(size=rows),
                               0.5 - spread * rng.uniform(size=rows))  # fmt: skip
        # As the handler writes them: the label answered at 0.5 beside the probability.
        return [{"probability": float(p), "prediction": int(p >= 0.5)} for p in probability]

    return answer


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
        cloudwatch=clients["cloudwatch"], now=NOW, expired=lambda: False,
        sleep=lambda _: None,
    )  # fmt: skip
    return summary


def evaluate(
    stubbed: Any, stable: list[dict[str, Any]], candidate: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, float]]:
    """One run with version 8 beside version 7, each side having captured these records
    since the canary began: the evaluator's summary and the metrics it published."""
    clients, stubbers = stubbed
    alias(stubbers, {"8": 0.1})
    first_record(stubbers, STARTED, candidate[0])
    side(stubbers, "7", stable, canary.prediction_of(candidate[0])[0])
    side(stubbers, "8", candidate)
    seen: dict[str, float] = {}
    published(stubbers, seen)
    return run(clients), seen


def test_a_healthy_canary_is_judged_from_its_start_and_not_harmful(stubbed: Any) -> None:
    rng = np.random.default_rng(1)
    stable = requests(rng, 900, 5, scored(0.22), "s")
    candidate = requests(rng, 220, 5, scored(0.22), "c")
    summary, seen = evaluate(stubbed, stable, candidate)
    assert (summary["stable"], summary["candidate"], summary["since"]) == ("7", "8", STARTED)
    assert (seen["CanarySamples"], seen["CanaryRequests"], seen["CanaryHarm"]) == (1100, 220, 0)
    assert seen["PredictionShiftPSI"] < 0.1
    assert summary["report"]["verdict"] == "promote"


def test_a_shift_of_the_positive_rate_is_harm(stubbed: Any) -> None:
    rng = np.random.default_rng(2)
    stable = requests(rng, 900, 5, scored(0.22), "s")
    summary, seen = evaluate(stubbed, stable, requests(rng, 220, 5, scored(0.40), "c"))
    assert seen["CanaryHarm"] == 1 and summary["report"]["verdict"] == "roll back"


def test_a_better_calibrated_candidate_pages_but_is_no_harm(stubbed: Any) -> None:
    """Same positives at the threshold, probabilities squeezed toward it: PSI high (a page
    and a hold), positive rate unchanged (no rollback)."""
    rng = np.random.default_rng(3)
    stable = requests(rng, 900, 5, scored(0.22, spread=0.45), "s")
    candidate = requests(rng, 220, 5, scored(0.22, spread=0.1), "c")
    summary, seen = evaluate(stubbed, stable, candidate)
    assert seen["PredictionShiftPSI"] > 0.25 and seen["CanaryHarm"] == 0
    assert summary["report"]["verdict"] == "hold" and summary["report"]["page"]


def test_many_rows_from_few_requests_are_too_few_to_judge(stubbed: Any) -> None:
    """4,000 candidate rows from 40 requests: the unit is the request, so no verdict."""
    rng = np.random.default_rng(4)
    stable = requests(rng, 400, 20, scored(0.22), "s")  # under one query's 10,000 rows
    _, seen = evaluate(stubbed, stable, requests(rng, 40, 100, scored(0.5), "c"))
    assert seen == {"CanarySamples": 4000, "CanaryRequests": 40}


def test_no_candidate_record_yet_publishes_zero_requests(stubbed: Any) -> None:
    clients, stubbers = stubbed
    alias(stubbers, {"8": 0.1})
    first_record(stubbers, None)
    seen: dict[str, float] = {}
    published(stubbers, seen)
    assert run(clients)["report"] is None
    assert seen == {"CanarySamples": 0, "CanaryRequests": 0}


def test_one_version_behind_the_alias_publishes_nothing(stubbed: Any) -> None:
    clients, stubbers = stubbed
    alias(stubbers, {})
    assert run(clients) == {"canary": None}


def classes(shares: list[float]) -> Any:
    def answer(rng: np.random.Generator, rows: int) -> list[dict[str, Any]]:
        labels = rng.choice(["ant", "bee", "cat"], rows, p=shares)
        return [{"prediction": str(v), "probabilities": [0.4, 0.3, 0.3]} for v in labels]

    return answer


@pytest.mark.parametrize(("shares", "harm"), [([0.6, 0.3, 0.1], 0), ([0.4, 0.3, 0.3], 1)])
def test_multiclass_harm_is_a_shift_of_the_class_mix(
    stubbed: Any, shares: list[float], harm: int
) -> None:
    rng = np.random.default_rng(5)
    stable = requests(rng, 900, 4, classes([0.6, 0.3, 0.1]), "s")
    summary, seen = evaluate(stubbed, stable, requests(rng, 220, 4, classes(shares), "c"))
    assert summary["report"]["task"] == "multiclass" and seen["CanaryRequests"] == 220
    assert seen["CanaryHarm"] == harm


def values(mean: float) -> Any:
    def answer(rng: np.random.Generator, rows: int) -> list[dict[str, Any]]:
        level = rng.normal(mean, 20)
        return [{"prediction": float(v)} for v in rng.normal(level, 5, rows)]

    return answer


@pytest.mark.parametrize(("mean", "harm"), [(100.0, 0), (110.0, 1)])
def test_regression_harm_is_a_shift_of_the_mean_prediction(
    stubbed: Any, mean: float, harm: int
) -> None:
    rng = np.random.default_rng(6)
    stable = requests(rng, 900, 3, values(100.0), "s")
    summary, seen = evaluate(stubbed, stable, requests(rng, 220, 3, values(mean), "c"))
    assert summary["report"]["task"] == "regression" and seen["CanaryHarm"] == harm


def test_sides_of_different_tasks_are_refused(stubbed: Any) -> None:
    rng = np.random.default_rng(7)
    clients, stubbers = stubbed
    alias(stubbers, {"8": 0.1})
    candidate = requests(rng, 60, 2, values(1.0), "c")
    first_record(stubbers, STARTED, candidate[0])
    side(stubbers, "7", requests(rng, 60, 2, scored(0.2), "s"), "regression")
    side(stubbers, "8", candidate)
    with pytest.raises(ValueError, match="the stable side's capture records are not regression"):
        run(clients)


def test_a_start_query_still_running_when_time_is_up_is_stopped(stubbed: Any) -> None:
    clients, stubbers = stubbed
    alias(stubbers, {"8": 0.1})
    stubbers["logs"].add_response("start_query", {"queryId": "qfirst"})
    stubbers["logs"].add_response("get_query_results", {"status": "Running", "results": []},
                                  {"queryId": "qfirst"})  # fmt: skip
    stubbers["logs"].add_response("stop_query", {"success": True}, {"queryId": "qfirst"})
    with pytest.raises(TimeoutError, match="query qfirst still Running; stopped it"):
        canary.run(SETTINGS, lambda_client=clients["lambda"], logs=clients["logs"],
                   cloudwatch=clients["cloudwatch"], now=NOW, expired=lambda: True,
                   sleep=lambda _: None)  # fmt: skip


def test_the_minimum_requests_come_from_the_environment() -> None:
    env = {"LOG_GROUP": "/aws/fn", "MODEL_VERSION": "v2", "METRICS_NAMESPACE": "N",
           "FUNCTION_NAME": "fn", "ALIAS_NAME": "production"}  # fmt: skip
    assert canary.Settings.from_env(env).min_requests == canary.DEFAULT_MIN_REQUESTS
    assert canary.Settings.from_env({**env, "MIN_REQUESTS": "80"}).min_requests == 80


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
    assert (variables["MODEL_VERSION"], variables["ALIAS_NAME"], variables["MIN_REQUESTS"]) == (
        "v2", "production", str(DEFAULT_MIN_REQUESTS),
    )  # fmt: skip
    assert "WINDOW_MINUTES" not in variables  # each run reads the canary since it began
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


def test_the_query_texts_are_written_out() -> None:
    """The Stubber answers above are matched against these functions' own output; here the
    text Logs Insights receives is spelled out, so a change to it is seen."""
    assert canary.first_record_query("8") == (
        'fields @timestamp, @message | filter capture = 1 and lambda_version = "8" '
        "| sort @timestamp asc | limit 1"
    )
    assert request_query("8", "binary") == (
        'filter capture = 1 and lambda_version = "8" | stats count(*) as rows, '
        "avg(probability) as mean_probability, min(probability) as lowest "
        "by request_id, prediction"
    )
    with pytest.raises(ValueError, match=r"lambda_version '8\" or 1=1' is not a version name"):
        request_query('8" or 1=1', "binary")

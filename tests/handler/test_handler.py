"""The handler end to end with the v1 artifact from disk: answers, status codes, logs, metrics."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from inference import handler as handler_module
from inference import model_loader
from tests.handler.conftest import (
    ARTIFACTS,
    Deserialized,
    FakeLambdaContext,
    emf_lines,
    http_body,
    load_event,
    local_env,
    log_lines,
    unavailable_reason,
    valid_record,
)

Invoke = Callable[..., dict[str, Any]]
Configure = Callable[[dict[str, str]], Any]


def expected_probabilities(*records: dict[str, Any]) -> list[float]:
    """P(churn) straight from the pipeline, bypassing the handler."""
    payload = joblib.load(ARTIFACTS / "v1" / "model.joblib")
    names = [feature["name"] for feature in payload["features"]]
    X = np.array([[float(r[name]) for name in names] for r in records])
    return [float(p) for p in payload["pipeline"].predict_proba(X)[:, 1]]


# --- answers for each event shape -------------------------------------------------------


def test_function_url_single_record(serving: Invoke) -> None:
    context = FakeLambdaContext()
    response = serving(load_event("function_url_v2.json"), context)
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    body = http_body(response)
    [probability] = expected_probabilities(valid_record())
    assert body == {
        "prediction": int(probability >= 0.5),
        "probability": pytest.approx(probability, abs=1e-12),
        "model_name": "churn",
        "model_version": "v1",
        "lambda_version": "7",
        "request_id": context.aws_request_id,
    }


def test_function_url_base64_batch_keeps_input_order(serving: Invoke) -> None:
    response = serving(load_event("function_url_v2_base64_batch.json"))
    body = http_body(response)
    records = load_event("direct_batch.json")["instances"]
    expected = expected_probabilities(*records)
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(expected, abs=1e-12)
    assert [p["prediction"] for p in body["predictions"]] == [int(p >= 0.5) for p in expected]
    # The two sample customers differ enough that order mistakes would show.
    assert expected[0] != pytest.approx(expected[1], abs=0.05)
    assert (body["model_version"], body["lambda_version"]) == ("v1", "7")


def test_rest_api_v1_single_record(serving: Invoke) -> None:
    response = serving(load_event("rest_api_v1.json"))
    assert response["statusCode"] == 200
    assert http_body(response)["probability"] == pytest.approx(
        expected_probabilities(valid_record())[0], abs=1e-12
    )


def test_direct_invocation_returns_a_dict_with_status(serving: Invoke) -> None:
    response = serving(load_event("direct_single.json"))
    assert response["statusCode"] == 200
    assert "headers" not in response and "body" not in response
    assert response["probability"] == pytest.approx(expected_probabilities(valid_record())[0])
    batch = serving(load_event("direct_batch.json"))
    assert batch["statusCode"] == 200
    assert len(batch["predictions"]) == 2


def test_request_id_falls_back_to_the_http_request_id(serving: Invoke) -> None:
    event = load_event("function_url_v2.json")
    response = handler_module.handler(event, None)
    assert http_body(response)["request_id"] == event["requestContext"]["requestId"]


# --- warm-up --------------------------------------------------------------------------


def test_warmup_returns_at_once_without_prediction_logs_or_metrics(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response = serving(load_event("warmup.json"))
    assert response == {
        "statusCode": 200,
        "warmup": True,
        "model_loaded": True,
        "model_name": "churn",
        "model_version": "v1",
        "lambda_version": "7",
    }
    out = capsys.readouterr().out
    assert emf_lines(out) == []
    assert log_lines(out, "prediction") == []
    assert len(log_lines(out, "warm-up")) == 1


def test_warmup_body_over_http_is_an_ordinary_bad_request(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("function_url_v2.json")
    event["body"] = json.dumps({"_warmup": True})
    response = serving(event)
    assert response["statusCode"] == 400
    assert "_warmup: unknown field" in http_body(response)["error"]["message"]
    assert log_lines(capsys.readouterr().out, "warm-up") == []


@pytest.mark.parametrize(
    "event",
    [
        {**valid_record(), "_warmup": True},
        {"instances": [valid_record()], "_warmup": True},
        {"_warmup": True, "note": "x"},
    ],
)
def test_warmup_mixed_with_anything_else_is_a_400_not_a_dropped_prediction(
    serving: Invoke, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    response = serving(event)
    assert response["statusCode"] == 400
    assert response["error"]["code"] == "invalid_request"
    assert response["error"]["message"].startswith("'_warmup' is allowed only alone")
    out = capsys.readouterr().out
    assert log_lines(out, "warm-up") == [] and log_lines(out, "prediction") == []


def test_warmup_retries_a_failed_load(
    fresh_environment: Configure, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", MODEL_PATH=str(model_file)))
    first = handler_module.handler({"_warmup": True}, FakeLambdaContext())
    assert "cannot read MODEL_PATH" in unavailable_reason(first, capsys.readouterr().out)
    assert (first["warmup"], first["model_loaded"]) == (True, False)
    model_file.write_bytes((ARTIFACTS / "v1" / "model.joblib").read_bytes())
    second = handler_module.handler({"_warmup": True}, FakeLambdaContext())
    assert (second["statusCode"], second["model_loaded"]) == (200, True)


# --- client errors in every shape -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("not json", 400, "not valid JSON"),
        ("", 400, "empty"),
        ("[]", 400, "must be a JSON object"),
        (json.dumps({**valid_record(), "tenure_months": -1}), 400, "tenure_months"),
        (json.dumps({"instances": [valid_record()] * 3}), 413, "MAX_BATCH_SIZE=2"),
        (json.dumps({"pad": "x" * 3000}), 413, "MAX_BODY_BYTES=2048"),
    ],
)
def test_client_errors_are_json_4xx(
    fresh_environment: Configure, body: str, status: int, fragment: str
) -> None:
    fresh_environment(local_env("v1", MAX_BATCH_SIZE="2", MAX_BODY_BYTES="2048"))
    event = load_event("function_url_v2.json")
    event["body"] = body
    response = handler_module.handler(event, FakeLambdaContext())
    assert response["statusCode"] == status
    error = http_body(response)["error"]
    assert fragment in error["message"]
    assert error["code"] in {"invalid_request", "invalid_input", "payload_too_large"}


def test_validation_error_in_a_rest_batch_names_row_and_field(serving: Invoke) -> None:
    event = load_event("rest_api_v1.json")
    bad = {**valid_record(), "monthly_charges": "NaN"}
    event["body"] = json.dumps({"instances": [valid_record(), bad]})
    response = serving(event)
    assert response["statusCode"] == 400
    error = http_body(response)["error"]
    assert error["message"] == ('instances[1].monthly_charges: must be a number, got string "NaN"')
    assert error["details"] == [{"field": "monthly_charges", "row": 1, "message": error["message"]}]


def test_nan_literal_in_json_is_rejected_by_name(serving: Invoke) -> None:
    event = load_event("function_url_v2.json")
    event["body"] = event["body"].replace('"monthly_charges": 80.5', '"monthly_charges": NaN')
    response = serving(event)
    assert response["statusCode"] == 400
    assert http_body(response)["error"]["message"] == (
        "monthly_charges: must be a finite number, got NaN"
    )


def test_get_is_405_with_allow_header(serving: Invoke) -> None:
    event = load_event("function_url_v2.json")
    event["requestContext"]["http"]["method"] = "GET"
    response = serving(event)
    assert response["statusCode"] == 405
    assert response["headers"]["allow"] == "POST"


def test_direct_invocation_errors_are_dicts(serving: Invoke) -> None:
    response = serving({"tenure_months": 1})
    assert response["statusCode"] == 400
    assert response["error"]["code"] == "invalid_input"


def test_client_errors_emit_no_metrics_but_one_log_line(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    serving({"tenure_months": 1})
    out = capsys.readouterr().out
    assert emf_lines(out) == []
    [line] = log_lines(out)
    assert (line["message"], line["status"]) == ("request rejected", 400)


# --- genuine bugs: 500 ----------------------------------------------------------------


Outputs = Callable[[Any], Any]


@pytest.fixture
def broken(ready_v1: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[Outputs], None]:
    """``broken(outputs)``: serve v1 warm with a model answering ``outputs(X)``."""

    def serve(outputs: Outputs) -> None:
        model = types.SimpleNamespace(
            model_name="churn",
            model_version="v1",
            features=[],
            outputs=lambda X, unknown=None: outputs(X),
            task="binary",
            classes=(0, 1),
        )
        loaded = model_loader.LoadedModel(**{**ready_v1.loaded.__dict__, "model": model})
        state = handler_module.Ready(ready_v1.settings, loaded)
        monkeypatch.setattr(handler_module, "_state", state)

    return serve


def explode(X: Any) -> Any:
    raise ZeroDivisionError("secret internal detail")


def test_a_bug_is_500_with_a_generic_message_and_a_logged_stack(
    broken: Callable[[Outputs], None], capsys: pytest.CaptureFixture[str]
) -> None:
    broken(explode)
    context = FakeLambdaContext()
    response = handler_module.handler(load_event("function_url_v2.json"), context)
    assert response["statusCode"] == 500
    body = http_body(response)
    assert body["error"] == {"code": "internal_error", "message": "internal error"}
    assert body["request_id"] == context.aws_request_id
    assert "secret" not in response["body"]
    [line] = log_lines(capsys.readouterr().out, "request failed")
    assert line["level"] == "ERROR"
    assert "ZeroDivisionError: secret internal detail" in line["exception"]
    assert line["request_id"] == context.aws_request_id


@pytest.mark.parametrize(
    "bad_output",
    [lambda X: np.zeros((len(X), 2)), lambda X: np.full(len(X), 1.5), lambda X: np.full(1, 0.5)],
)
def test_a_runtime_answering_nonsense_is_500_not_a_prediction(
    broken: Callable[[Outputs], None], bad_output: Outputs
) -> None:
    broken(bad_output)
    response = handler_module.handler(load_event("direct_batch.json"), FakeLambdaContext())
    assert response["statusCode"] == 500
    assert "predictions" not in response


# --- observability ---------------------------------------------------------------------


def test_one_structured_log_line_per_prediction(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    context = FakeLambdaContext()
    response = serving(load_event("direct_batch.json"), context)
    [line] = log_lines(capsys.readouterr().out)
    assert line["message"] == "prediction"
    assert line["level"] == "INFO"
    assert line["request_id"] == context.aws_request_id
    assert (line["model_version"], line["lambda_version"]) == ("v1", "7")
    assert line["rows"] == 2
    assert line["probabilities"] == [p["probability"] for p in response["predictions"]]
    assert line["latency_ms"] >= line["predict_ms"] > 0
    assert line["cold_start"] is False


def test_emf_document_follows_the_specification(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response = serving(load_event("direct_single.json"))
    [doc] = emf_lines(capsys.readouterr().out)
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "SklearnLambdaServing"
    assert directive["Dimensions"] == [["ModelVersion"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "InferenceLatency": "Milliseconds",
        "Predictions": "Count",
        "PredictionProbability": "None",
    }
    assert doc["ModelVersion"] == "v1"
    assert doc["Predictions"] == 1
    assert doc["PredictionProbability"] == response["probability"]
    assert doc["InferenceLatency"] > 0
    assert isinstance(doc["_aws"]["Timestamp"], int)


def batch_served(
    serving: Invoke, capsys: pytest.CaptureFixture[str], rows: int
) -> tuple[dict[str, Any], str]:
    """A batch of ``rows`` records (tenure varying) through the warm handler: its answer and
    what it wrote."""
    records = [{**valid_record(), "tenure_months": month % 72} for month in range(rows)]
    response = serving({"instances": records})
    return response, capsys.readouterr().out


def test_a_large_batch_writes_one_emf_document_of_its_order_statistics(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response, out = batch_served(serving, capsys, 250)
    [doc] = emf_lines(out)
    assert doc["Predictions"] == 250
    answered = sorted(p["probability"] for p in response["predictions"])
    # 100 values: rank (2i + 1) * 250 // 200 of the sorted batch stands for its i-th 1 %.
    assert doc["PredictionProbability"] == [answered[(2 * i + 1) * 250 // 200] for i in range(100)]
    names = {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"InferenceLatency", "Predictions", "PredictionProbability"}


def test_a_batch_of_100_keeps_every_probability_in_order_in_emf(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response, out = batch_served(serving, capsys, 100)
    [doc] = emf_lines(out)
    assert doc["PredictionProbability"] == [p["probability"] for p in response["predictions"]]


def test_a_batch_log_line_summarises_every_row_and_shows_the_first(
    serving: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    response, out = batch_served(serving, capsys, 250)
    [line] = log_lines(out, "prediction")
    answered = [p["probability"] for p in response["predictions"]]
    labels = [p["prediction"] for p in response["predictions"]]
    assert line["rows"] == 250
    assert line["positives"] == sum(labels)
    assert line["probability_mean"] == pytest.approx(sum(answered) / 250, abs=1e-6)
    assert line["probability_min"] == pytest.approx(min(answered), abs=1e-6)
    assert line["probability_max"] == pytest.approx(max(answered), abs=1e-6)
    assert line["probability_p50"] == pytest.approx(float(np.median(answered)), abs=1e-6)
    assert line["probabilities"] == answered[:10]
    assert line["predictions"] == labels[:10]
    assert line["rows_not_logged"] == 240


def test_metrics_namespace_is_configurable(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", METRICS_NAMESPACE="Team/Churn"))
    handler_module.handler(valid_record(), FakeLambdaContext())
    namespaces = {
        d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in emf_lines(capsys.readouterr().out)
    }
    assert namespaces == {"Team/Churn"}


def test_cold_start_and_model_load_time_are_emitted_once(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1"))
    init_docs = emf_lines(capsys.readouterr().out)
    assert [d.get("ModelLoadTime", 0) > 0 for d in init_docs] == [True]
    handler_module.handler(valid_record(), FakeLambdaContext())
    handler_module.handler(valid_record(), FakeLambdaContext())
    out = capsys.readouterr().out
    assert [d.get("ColdStart") for d in emf_lines(out)] == [1, None]
    assert [line["cold_start"] for line in log_lines(out, "prediction")] == [True, False]


def test_warmup_consumes_the_cold_start(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1"))
    handler_module.handler({"_warmup": True}, FakeLambdaContext())
    handler_module.handler(valid_record(), FakeLambdaContext())
    assert all("ColdStart" not in d for d in emf_lines(capsys.readouterr().out))


def test_provisioned_concurrency_is_never_a_cold_start(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", AWS_LAMBDA_INITIALIZATION_TYPE="provisioned-concurrency"))
    handler_module.handler(valid_record(), FakeLambdaContext())
    assert all("ColdStart" not in d for d in emf_lines(capsys.readouterr().out))


# --- 5xx answers are counted: Lambda's Errors metric never sees a returned 5xx --------


def server_errors(out: str) -> list[dict[str, Any]]:
    return [doc for doc in emf_lines(out) if "ServerErrors" in doc]


def assert_one_server_error(
    out: str, model_version: str, status: int, namespace: str = "SklearnLambdaServing"
) -> None:
    # The stacks alarm on exactly this: <namespace> / ServerErrors / ModelVersion=<version>.
    [doc] = server_errors(out)
    assert doc["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": namespace,
            "Dimensions": [["ModelVersion"]],
            "Metrics": [{"Name": "ServerErrors", "Unit": "Count"}],
        }
    ]
    assert (doc["ModelVersion"], doc["ServerErrors"], doc["status"]) == (model_version, 1, status)


def test_server_errors_are_also_counted_per_function_for_the_errors_alarm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The alarm counts every version behind the alias by FunctionName, whichever model
    # each runs (a canary started with -c does not record the stable side's model).
    from inference import metrics

    metrics.emit(
        "ns", "v1", [metrics.Metric("ServerErrors", metrics.COUNT, 1)], function_name="fn-1"
    )
    [doc] = server_errors(capsys.readouterr().out)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ModelVersion"], ["FunctionName"]]
    assert (doc["ModelVersion"], doc["FunctionName"]) == ("v1", "fn-1")


def test_a_bug_emits_one_server_error(
    broken: Callable[[Outputs], None], capsys: pytest.CaptureFixture[str]
) -> None:
    broken(explode)
    capsys.readouterr()
    response = handler_module.handler(load_event("function_url_v2.json"), FakeLambdaContext())
    assert response["statusCode"] == 500
    assert_one_server_error(capsys.readouterr().out, "v1", 500)


@pytest.mark.parametrize("event", ["function_url_v2.json", "warmup.json"])
def test_model_unavailable_emits_one_server_error_besides_the_load_error(
    fresh_environment: Configure, event: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", MODEL_SHA256="0" * 64, METRICS_NAMESPACE="Custom"))
    capsys.readouterr()
    response = handler_module.handler(load_event(event), FakeLambdaContext())
    assert response["statusCode"] == 503
    out = capsys.readouterr().out
    assert_one_server_error(out, "v1", 503, namespace="Custom")
    assert [d["ModelLoadErrors"] for d in emf_lines(out) if "ModelLoadErrors" in d] == [1]


@pytest.mark.parametrize(
    ("namespace", "model_version", "counted_as"),
    [(None, "v1", "v1"), ("Custom", "v1", "v1"), (None, "", "unknown")],
)
def test_invalid_configuration_counts_server_errors_under_the_configured_version(
    fresh_environment: Configure,
    namespace: str | None,
    model_version: str,
    counted_as: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The stack's errors alarm watches MODEL_VERSION by name: a misconfigured function
    # must count there, not under a name no alarm watches.
    overrides = {"MODEL_RUNTIME": "onnx", "MODEL_VERSION": model_version}
    if namespace:
        overrides["METRICS_NAMESPACE"] = namespace
    state = fresh_environment(local_env("v1", **overrides))
    assert isinstance(state, handler_module.Unavailable) and state.settings is None
    capsys.readouterr()
    response = handler_module.handler(valid_record(), FakeLambdaContext())
    assert response["statusCode"] == 503
    assert_one_server_error(
        capsys.readouterr().out, counted_as, 503, namespace=namespace or "SklearnLambdaServing"
    )


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (load_event("function_url_v2.json"), 200),
        (load_event("warmup.json"), 200),
        ({"tenure_months": 1}, 400),
        ({"instances": [valid_record()] * 1001}, 413),
    ],
)
def test_answers_below_500_emit_no_server_errors(
    serving: Invoke, event: Any, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serving(event)["statusCode"] == status
    assert server_errors(capsys.readouterr().out) == []


# --- model unavailable: 503, then retry -------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"MODEL_PATH": ""}, "no model source"),
        ({"MODEL_RUNTIME": "onnx"}, "MODEL_RUNTIME='onnx' is not allowed"),
        ({"MODEL_SHA256": "abc"}, "MODEL_SHA256='abc' is not a SHA-256"),
        ({"MAX_BATCH_SIZE": "many"}, "MAX_BATCH_SIZE='many' is not an integer"),
        ({"MAX_BODY_BYTES": "10000000"}, "MAX_BODY_BYTES=10000000 is out of range"),
        ({"MODEL_BUCKET": "b", "MODEL_KEY": "k"}, "set only one source"),
        ({"MODEL_PATH": "", "MODEL_BUCKET": "b"}, "MODEL_KEY is not set"),
        ({"MODEL_PATH": "", "MODEL_BUCKET": "b", "MODEL_KEY": "k", "MODEL_SHA256": ""}, "pinned"),
        ({"MODEL_VERSION": "v2"}, "holds churn v1 but MODEL_VERSION is 'v2'"),
        ({"MODEL_NAME": "fraud"}, "holds model 'churn' but MODEL_NAME is 'fraud'"),
        ({"MODEL_SHA256": "0" * 64}, "checksum mismatch"),
        # Data capture's settings are checked with the rest.
        ({"CAPTURE_SAMPLE_RATE": "2"}, "CAPTURE_SAMPLE_RATE must be a number in [0, 1]"),
        ({"CAPTURE_SAMPLE_RATE": "often"}, "got 'often'"),
        ({"CAPTURE_SAMPLE_RATE": "nan"}, "CAPTURE_SAMPLE_RATE"),
        ({"CAPTURE_MAX_ROWS": "0"}, "CAPTURE_MAX_ROWS=0 is out of range"),
        ({"CAPTURE_MAX_ROWS": "1001"}, "CAPTURE_MAX_ROWS=1001 is out of range: allowed 1 to 1000"),
        ({"CAPTURE_MAX_ROWS": "lots"}, "CAPTURE_MAX_ROWS='lots' is not an integer"),
    ],
)
def test_unusable_configuration_or_model_is_503_with_the_reason_in_the_logs_only(
    fresh_environment: Configure,
    overrides: dict[str, str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = fresh_environment(local_env("v1", **overrides))
    assert isinstance(state, handler_module.Unavailable)
    response = handler_module.handler(load_event("function_url_v2.json"), FakeLambdaContext())
    assert fragment in unavailable_reason(response, capsys.readouterr().out)
    assert fragment not in response["body"]


def reason_for_unavailable(
    fresh_environment: Configure, capsys: pytest.CaptureFixture[str], **overrides: str
) -> str:
    """Init with v1's environment and ``overrides``, then a request: the reason its 503 logged."""
    fresh_environment(local_env("v1", **overrides))
    response = handler_module.handler(valid_record(), FakeLambdaContext())
    return unavailable_reason(response, capsys.readouterr().out)


def pinned(path: Path) -> dict[str, str]:
    """The artifact at ``path``, pinned by its own SHA-256."""
    return {"MODEL_PATH": str(path), "MODEL_SHA256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_checksum_mismatch_never_deserializes(
    fresh_environment: Configure,
    deserialized: Deserialized,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_file.write_bytes((ARTIFACTS / "v1" / "model.joblib").read_bytes() + b"\0")
    reason = reason_for_unavailable(fresh_environment, capsys, MODEL_PATH=str(model_file))
    assert reason.startswith(f"checksum mismatch for {model_file}")
    assert deserialized == []


def test_failed_load_is_retried_and_recovers(
    fresh_environment: Configure, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_environment(local_env("v1", MODEL_PATH=str(model_file)))
    assert handler_module.handler(valid_record(), FakeLambdaContext())["statusCode"] == 503
    assert handler_module.handler(valid_record(), FakeLambdaContext())["statusCode"] == 503
    model_file.write_bytes((ARTIFACTS / "v1" / "model.joblib").read_bytes())
    response = handler_module.handler(valid_record(), FakeLambdaContext())
    assert response["statusCode"] == 200
    assert isinstance(handler_module.current_state(), handler_module.Ready)
    out = capsys.readouterr().out
    assert len(log_lines(out, "model loaded")) == 1
    assert [d["ModelLoadErrors"] for d in emf_lines(out) if "ModelLoadErrors" in d] == [1, 1, 1]


def test_wrong_artifact_format_is_503(
    fresh_environment: Configure, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    joblib.dump({"format": "something-else/9"}, model_file)
    reason = reason_for_unavailable(fresh_environment, capsys, **pinned(model_file))
    assert "artifact format is 'something-else/9'" in reason


def test_artifact_from_another_sklearn_version_is_refused(
    fresh_environment: Configure,
    monkeypatch: pytest.MonkeyPatch,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sklearn.base

    payload = joblib.load(ARTIFACTS / "v1" / "model.joblib")
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "0.24.2")
        joblib.dump(payload, model_file)
    reason = reason_for_unavailable(fresh_environment, capsys, **pinned(model_file))
    assert "made with scikit-learn 0.24.2 but this image has" in reason


def test_local_file_without_pin_is_refused_unless_the_unsafe_opt_in_is_set(
    fresh_environment: Configure, deserialized: Deserialized, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = fresh_environment(local_env("v1", MODEL_SHA256=""))
    assert isinstance(refused, handler_module.Unavailable)
    assert "MODEL_SHA256 is not set: refusing to load" in refused.reason
    assert "UNSAFE_ALLOW_UNVERIFIED_MODEL=1" in refused.reason
    assert deserialized == [], "an unverified artifact must not be deserialized"
    capsys.readouterr()
    state = fresh_environment(local_env("v1", MODEL_SHA256="", UNSAFE_ALLOW_UNVERIFIED_MODEL="1"))
    assert isinstance(state, handler_module.Ready)
    assert deserialized == [len((ARTIFACTS / "v1" / "model.joblib").read_bytes())]
    assert state.loaded.verified is False
    [warning] = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "WARNING"]
    assert "without checksum verification" in warning["message"]


# --- runtime plug-in -------------------------------------------------------------------


def test_compiled_runtime_missing_from_the_image_is_a_clear_503(
    fresh_environment: Configure,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "inference.compiled_model", None)
    reason = reason_for_unavailable(fresh_environment, capsys, MODEL_RUNTIME="compiled")
    assert reason == "runtime 'compiled' is not available in this image"


def test_compiled_runtime_is_plugged_in_by_its_load_function(
    fresh_environment: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    def load(data: bytes) -> Any:
        seen.append(data)
        features = joblib.load(ARTIFACTS / "v1" / "model.joblib")["features"]
        return types.SimpleNamespace(
            model_name="churn",
            model_version="v1",
            features=features,
            outputs=lambda X, unknown=None: np.full(len(X), 0.25),
            task="binary",
            classes=(0, 1),
        )

    fake = types.ModuleType("inference.compiled_model")
    fake.load = load  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "inference.compiled_model", fake)
    fresh_environment(local_env("v1", MODEL_RUNTIME="compiled"))
    response = handler_module.handler(load_event("direct_batch.json"), FakeLambdaContext())
    assert response["predictions"] == [{"prediction": 0, "probability": 0.25}] * 2
    assert seen == [(ARTIFACTS / "v1" / "model.joblib").read_bytes()]

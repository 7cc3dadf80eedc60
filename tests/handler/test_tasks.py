"""Answers, log lines, EMF and capture for multiclass, regression and labelled binary models,
built with scikit-learn in the artifact format and served by the real handler."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import answers
from inference import handler as handler_module
from inference.events import Shape
from tests.handler import task_artifacts
from tests.handler.conftest import (
    FakeLambdaContext,
    capture_lines,
    emf_lines,
    http_body,
    log_lines,
)

RECORDS = [
    {"size": 1.5, "colour": "red", "count": 3},
    {"size": 9.0, "colour": "blue", "count": 90},
    {"size": 4.0, "colour": "green", "count": 50},
]
# The same rows as the model reads them: the colour's position in the schema list.
ENCODED = np.array([[1.5, 0.0, 3.0], [9.0, 2.0, 90.0], [4.0, 1.0, 50.0]])

Invoke = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, task_artifacts.Artifact]:
    directory = tmp_path_factory.mktemp("task-artifacts")
    return {
        task: task_artifacts.write(directory, task)
        for task in ("binary", "multiclass", "regression")
    }


@pytest.fixture
def serve_task(
    artifacts: dict[str, task_artifacts.Artifact],
    fresh_environment: Callable[[dict[str, str]], Any],
) -> Iterator[Callable[..., Invoke]]:
    def start(task: str, **env: str) -> Invoke:
        state = fresh_environment(artifacts[task].env(**env))
        assert isinstance(state, handler_module.Ready), state
        handler_module._cold = False

        def invoke(event: Any) -> dict[str, Any]:
            return handler_module.handler(event, FakeLambdaContext())

        return invoke

    yield start


def test_multiclass_answers_the_label_and_a_probability_per_class(
    serve_task: Callable[..., Invoke], artifacts: dict[str, task_artifacts.Artifact]
) -> None:
    invoke = serve_task("multiclass")
    pipeline = artifacts["multiclass"].pipeline
    expected = pipeline.predict_proba(ENCODED)
    answer = invoke(dict(RECORDS[1]))
    assert answer["statusCode"] == 200
    assert list(answer["probabilities"]) == ["ant", "bee", "cat"]
    alone = pipeline.predict_proba(ENCODED[1:2])[0]
    assert list(answer["probabilities"].values()) == alone.tolist()
    assert answer["prediction"] == ["ant", "bee", "cat"][int(alone.argmax())]
    assert answer["model_name"] == "multiclass-example"

    batch = invoke({"instances": RECORDS})["predictions"]
    assert [list(row["probabilities"].values()) for row in batch] == expected.tolist()
    assert [row["prediction"] for row in batch] == [
        ["ant", "bee", "cat"][i] for i in expected.argmax(axis=1)
    ]
    assert {row["prediction"] for row in batch} >= {"ant", "cat"}


def test_regression_answers_the_value(
    serve_task: Callable[..., Invoke], artifacts: dict[str, task_artifacts.Artifact]
) -> None:
    invoke = serve_task("regression")
    pipeline = artifacts["regression"].pipeline
    expected = pipeline.predict(ENCODED).tolist()
    single = invoke(dict(RECORDS[0]))
    assert {k: single[k] for k in ("statusCode", "prediction")} == {
        "statusCode": 200,
        "prediction": pipeline.predict(ENCODED[:1])[0],
    }
    assert "probability" not in single
    assert invoke({"instances": RECORDS})["predictions"] == [{"prediction": v} for v in expected]


def test_binary_with_labels_answers_the_label_and_p_of_the_second_class(
    serve_task: Callable[..., Invoke], artifacts: dict[str, task_artifacts.Artifact]
) -> None:
    invoke = serve_task("binary")
    p = artifacts["binary"].pipeline.predict_proba(ENCODED)[:, 1].tolist()
    batch = invoke({"instances": RECORDS})["predictions"]
    assert batch == [
        {"prediction": "malignant" if q >= 0.5 else "benign", "probability": q} for q in p
    ]
    assert {row["prediction"] for row in batch} == {"benign", "malignant"}


def test_an_http_caller_gets_the_same_multiclass_json(serve_task: Callable[..., Invoke]) -> None:
    invoke = serve_task("multiclass")
    event = {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST"}, "requestId": "r-1"},
        "headers": {"content-type": "application/json"},
        "body": json.dumps(RECORDS[0]),
        "isBase64Encoded": False,
    }
    body = http_body(invoke(event))
    direct = invoke(dict(RECORDS[0]))
    assert body["probabilities"] == direct["probabilities"]


def test_a_bad_categorical_value_is_a_400_naming_the_allowed_values(
    serve_task: Callable[..., Invoke],
) -> None:
    invoke = serve_task("regression")
    answer = invoke({"instances": [RECORDS[0], {**RECORDS[1], "colour": "purple"}]})
    assert answer["statusCode"] == 400
    assert answer["error"]["code"] == "invalid_input"
    assert answer["error"]["message"] == (
        'instances[1].colour: "purple" is not one of "red", "green", "blue"'
    )


def test_multiclass_log_line_and_emf_are_per_task(
    serve_task: Callable[..., Invoke], capsys: pytest.CaptureFixture[str]
) -> None:
    invoke = serve_task("multiclass")
    capsys.readouterr()
    answer = invoke({"instances": RECORDS * 5})
    out = capsys.readouterr().out
    (line,) = log_lines(out, "prediction")
    labels = [row["prediction"] for row in answer["predictions"]]
    assert line["class_counts"] == {c: labels.count(c) for c in set(labels)}
    # Most frequent first.
    assert list(line["class_counts"].values()) == sorted(line["class_counts"].values())[::-1]
    assert line["predictions"] == labels[:10]
    assert line["rows_not_logged"] == 5
    confidences = [max(row["probabilities"].values()) for row in answer["predictions"]]
    assert line["confidences"] == confidences[:10]
    assert line["confidence_min"] == round(min(confidences), 6)
    assert "probabilities" not in line and "positives" not in line
    (emf,) = emf_lines(out)
    names = [m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "PredictionConfidence" in names and "PredictionProbability" not in names
    assert emf["PredictionConfidence"] == confidences


def test_regression_log_line_and_emf_are_per_task(
    serve_task: Callable[..., Invoke], capsys: pytest.CaptureFixture[str]
) -> None:
    invoke = serve_task("regression")
    capsys.readouterr()
    answer = invoke({"instances": RECORDS})
    out = capsys.readouterr().out
    values = [row["prediction"] for row in answer["predictions"]]
    (line,) = log_lines(out, "prediction")
    assert line["rows"] == 3
    assert line["predictions"] == values
    assert line["value_max"] == float(f"{max(values):.7g}")
    assert line["value_p50"] == float(f"{sorted(values)[1]:.7g}")
    assert line["value_mean"] == pytest.approx(sum(values) / 3, rel=1e-6)
    (emf,) = emf_lines(out)
    names = [m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "PredictionValue" in names and "PredictionProbability" not in names
    assert emf["PredictionValue"] == values


@pytest.mark.parametrize("task", ["multiclass", "regression", "binary"])
def test_capture_keeps_the_request_s_categorical_value_and_the_task_s_answer(
    serve_task: Callable[..., Invoke], capsys: pytest.CaptureFixture[str], task: str
) -> None:
    invoke = serve_task(task, CAPTURE_SAMPLE_RATE="1")
    capsys.readouterr()
    answer = invoke({"instances": RECORDS})
    records = capture_lines(capsys.readouterr().out)
    assert [r["features"] for r in records] == RECORDS
    for record, row in zip(records, answer["predictions"], strict=True):
        assert record["prediction"] == row["prediction"]
        if task == "multiclass":
            assert record["probabilities"] == list(row["probabilities"].values())
            assert "probability" not in record
        elif task == "binary":
            assert record["probability"] == row["probability"]
        else:
            assert "probability" not in record and "probabilities" not in record


class Wrong:
    """A runtime whose outputs break the protocol for its task."""

    def __init__(self, inner: Any, outputs: Callable[[Any], Any]) -> None:
        self.inner, self._outputs = inner, outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def outputs(self, X: Any, unknown: Any = None) -> Any:
        return self._outputs(self.inner.outputs(X, unknown))


@pytest.mark.parametrize(
    ("task", "broken"),
    [
        ("multiclass", lambda p: p * 0.9),  # rows no longer sum to 1
        ("multiclass", lambda p: p[:, :2]),  # a class missing
        ("multiclass", lambda p: p[:, 0]),  # one column
        ("multiclass", lambda p: p[:1]),  # fewer rows
        ("regression", lambda v: np.where(v > v.min(), v, np.nan)),
        ("regression", lambda v: np.column_stack([v, v])),
        ("binary", lambda p: p + 1.0),
    ],
)
def test_a_runtime_output_that_breaks_the_protocol_is_a_500(
    serve_task: Callable[..., Invoke],
    capsys: pytest.CaptureFixture[str],
    task: str,
    broken: Callable[[Any], Any],
) -> None:
    import dataclasses

    serve_task(task)
    state = handler_module._state
    assert isinstance(state, handler_module.Ready)
    loaded = dataclasses.replace(state.loaded, model=Wrong(state.loaded.model, broken))
    handler_module._state = dataclasses.replace(state, loaded=loaded)
    answer = handler_module.handler({"instances": RECORDS}, FakeLambdaContext())
    assert answer["statusCode"] == 500
    assert answer["error"]["code"] == "internal_error"
    (failure,) = log_lines(capsys.readouterr().out, "request failed")
    assert "RuntimeError: runtime returned" in failure["exception"]


def test_a_tie_goes_to_the_first_class_in_class_order() -> None:
    answered = answers.answers(
        "multiclass", ("z", "a", "m"), np.array([[0.25, 0.375, 0.375]]), rows=1, batch=False
    )
    assert answered.body == {
        "prediction": "a",
        "probabilities": {"z": 0.25, "a": 0.375, "m": 0.375},
    }


def test_class_keys_are_strings_in_class_order() -> None:
    answered = answers.answers(
        "multiclass", (3, 1, 2), np.array([[0.2, 0.3, 0.5]]), rows=1, batch=True
    )
    assert answered.body == {
        "predictions": [{"prediction": 2, "probabilities": {"3": 0.2, "1": 0.3, "2": 0.5}}]
    }


def test_the_multiclass_log_line_counts_at_most_twenty_classes() -> None:
    k = 30
    proba = np.eye(k)[np.arange(60) % k]
    answered = answers.answers("multiclass", tuple(range(k)), proba, rows=60, batch=True)
    assert len(answered.log_fields["class_counts"]) == answers.LOG_MAX_CLASSES  # type: ignore[arg-type]
    assert answered.log_fields["classes_not_logged"] == k - answers.LOG_MAX_CLASSES
    assert len(json.dumps(answered.log_fields)) < 2000


def test_artifact_layout_is_what_serve_reads(
    artifacts: dict[str, task_artifacts.Artifact],
) -> None:
    path = artifacts["multiclass"].path
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["task"] == "multiclass"
    assert Path(path).name == manifest["artifacts"]["sklearn"]["file"]


OPERATING = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_operating_md_names_each_task_s_log_fields_and_metric(
    serve_task: Callable[..., Invoke], capsys: pytest.CaptureFixture[str], task: str
) -> None:
    invoke = serve_task(task)
    capsys.readouterr()
    invoke({"instances": RECORDS * 4})
    out = capsys.readouterr().out
    (line,) = log_lines(out, "prediction")
    (row,) = [
        cells
        for cells in (r.strip("|").split("|") for r in OPERATING.read_text().splitlines())
        if len(cells) == 3 and cells[0].strip() == task
    ]
    documented = set(re.findall(r"`(\w+)`", row[1]))
    common = {"request_id", "event_shape", "status", "model_name", "model_version"}
    common |= {"lambda_version", "latency_ms", "predict_ms", "rows", "cold_start"}
    common |= {"timestamp", "level", "message", "rows_not_logged"}
    # classes_not_logged appears only when more than 20 classes were predicted.
    assert set(line) - common == documented - {"classes_not_logged"}
    (emf,) = emf_lines(out)
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names - {"InferenceLatency", "Predictions"} == {row[2].split("`")[1]}


@pytest.fixture
def small_answer_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A small limit stands for Lambda's 6 MB (the rows' sizes do not depend on it)."""
    monkeypatch.setattr(answers, "ANSWER_LIMIT_BYTES", 20_000)
    yield


@pytest.mark.usefixtures("small_answer_limit")
def test_a_batch_whose_answer_would_pass_lambda_s_limit_is_a_413_before_predicting(
    serve_task: Callable[..., Invoke],
) -> None:
    invoke = serve_task("multiclass", MAX_BATCH_SIZE="1000")
    # The handler's envelope: the model's identity and the context's request id (a UUID).
    envelope = {**handler_module.identity(), "request_id": "0" * 36}
    classes = tuple(task_artifacts.MULTICLASS_CLASSES)
    most = answers.max_answer_rows("multiclass", classes, Shape.HTTP_V2, envelope)
    assert 50 < most < 1000

    def http(rows: int) -> dict[str, Any]:
        body = json.dumps({"instances": [RECORDS[i % 3] for i in range(rows)]})
        event = {
            "version": "2.0",
            "requestContext": {"http": {"method": "POST"}, "requestId": "r-1"},
            "headers": {"content-type": "application/json"},
            "body": body,
            "isBase64Encoded": False,
        }
        return invoke(event)

    fits = http(most)
    assert fits["statusCode"] == 200
    # How Lambda returns it: the whole response object as JSON, the body a string in it.
    assert len(json.dumps(fits)) <= 20_000
    refused = http(most + 1)
    assert refused["statusCode"] == 413
    assert f"send at most {most} instances" in http_body(refused)["error"]["message"]


def test_churn_s_batch_bound_is_the_stack_s() -> None:
    from serving.payload import MAX_BATCH_SIZE_LIMIT

    # The stack already bounds a binary 0/1 model's batches: the guard never refuses them.
    envelope = {"model_name": "churn", "model_version": "v1", "request_id": "r" * 64}
    for shape in Shape:
        assert answers.max_answer_rows("binary", (0, 1), shape, envelope) >= MAX_BATCH_SIZE_LIMIT


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from([*task_artifacts.COLOURS, "Red", " red", "red\u0000"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)


def test_any_categorical_value_through_the_handler_is_a_200_or_a_400_naming_it(
    serve_task: Callable[..., Invoke],
) -> None:
    invoke = serve_task("multiclass")

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(JSON_VALUES, st.integers(0, 2))
    def check(value: object, row: int) -> None:
        records = [dict(record) for record in RECORDS]
        records[row]["colour"] = value
        answer = invoke({"instances": records})
        if value in task_artifacts.COLOURS and isinstance(value, str):
            assert answer["statusCode"] == 200
        else:
            assert answer["statusCode"] == 400, answer
            assert answer["error"]["message"].startswith(f"instances[{row}].colour: ")
            assert len(answer["error"]["message"]) < 1024

    check()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_skops_artifact_the_stack_deploys_answers_as_the_joblib_one(
    task: str,
    tmp_path: Path,
    artifacts: dict[str, task_artifacts.Artifact],
    fresh_environment: Callable[[dict[str, str]], Any],
) -> None:
    deployed = task_artifacts.write(tmp_path, task, skops=True)
    state = fresh_environment(deployed.env())
    assert isinstance(state, handler_module.Ready), state
    answer = handler_module.handler({"instances": RECORDS}, FakeLambdaContext())
    expected = artifacts[task].pipeline
    outputs = expected.predict(ENCODED) if task == "regression" else expected.predict_proba(ENCODED)
    rows = answer["predictions"]
    if task == "multiclass":
        got = [list(row["probabilities"].values()) for row in rows]
    elif task == "binary":
        got, outputs = [row["probability"] for row in rows], outputs[:, 1]
    else:
        got = [row["prediction"] for row in rows]
    assert np.allclose(np.array(got, dtype=np.float64), outputs, rtol=0, atol=1e-12)

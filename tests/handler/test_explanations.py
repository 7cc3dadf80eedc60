"""Explanations through the handler (issue 26): ``"explain": true`` on a record or a batch.

Each row's answer carries its base and one contribution per schema feature, and they add
up to the model's raw output (local accuracy) on every golden row of churn, compiled again
in the current format. The refusals (a flag that is not a boolean, the sklearn runtime,
an archive that cannot explain, more rows than MAX_EXPLAIN_ROWS) name what is wrong; the
log line carries three feature names per logged row and no contribution; capture records
are those of the same request without the flag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from inference import config, explanations
from inference import handler as handler_module
from inference.compiled_pipeline import CompiledPipeline
from serving.reserved import EXPLAIN_KEY, RESERVED_FEATURE_NAMES
from tests.handler import task_artifacts
from tests.handler.conftest import (
    ARTIFACTS,
    FakeLambdaContext,
    capture_lines,
    http_body,
    json_lines,
    load_event,
    local_env,
    log_lines,
    valid_record,
)
from tests.training.compiled_archives import rewrite
from training.compile import compile_pipeline

Configure = Callable[[dict[str, str]], Any]
BOUND = 1e-9
CHURN_FEATURES = list(valid_record())
VERSION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference:7"


def churn_archive() -> bytes:
    """churn v2's pipeline compiled as training writes it today (format 3, with cover)."""
    payload = joblib.load(ARTIFACTS / "v2" / "model.joblib")
    return compile_pipeline(
        payload["pipeline"], model_name="churn", model_version="v2", features=payload["features"]
    )


def animals_archive() -> bytes:
    """A multiclass GBM with string labels and a one-hot categorical feature."""
    X = task_artifacts.data()
    score = X[:, 0] + 3.0 * X[:, 1] + 0.02 * X[:, 2]
    y = np.array(task_artifacts.MULTICLASS_CLASSES, dtype=object)[np.digitize(score, [5.0, 9.0])]
    estimator = GradientBoostingClassifier(n_estimators=12, max_depth=3, random_state=0)
    pipeline = task_artifacts._pipeline(estimator).fit(X, y)
    return compile_pipeline(
        pipeline,
        model_name="animals",
        model_version="v1",
        features=task_artifacts.FEATURES,
        task="multiclass",
        classes=task_artifacts.MULTICLASS_CLASSES,
    )


def compiled_env(path: Path, data: bytes, name: str, version: str, **extra: str) -> dict[str, str]:
    path.write_bytes(data)
    return {
        "MODEL_NAME": name,
        "MODEL_VERSION": version,
        "MODEL_PATH": str(path),
        "MODEL_SHA256": hashlib.sha256(data).hexdigest(),
        "MODEL_RUNTIME": "compiled",
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
        **extra,
    }


@pytest.fixture(scope="module")
def churn_bytes() -> bytes:
    return churn_archive()


@pytest.fixture
def churn(
    fresh_environment: Configure, tmp_path: Path, churn_bytes: bytes
) -> Callable[..., handler_module.Ready]:
    def start(**extra: str) -> handler_module.Ready:
        env = compiled_env(tmp_path / "churn.npz", churn_bytes, "churn", "v2", **extra)
        state = fresh_environment(env)
        assert isinstance(state, handler_module.Ready), state
        return state

    return start


def call(event: Any, invoked: str | None = None) -> dict[str, Any]:
    context = FakeLambdaContext(**({"invoked_function_arn": invoked} if invoked else {}))
    return handler_module.handler(event, context)


def raw_outputs(state: handler_module.Ready, X: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The model's raw output in the explanation's space, (rows, outputs)."""
    model = state.loaded.model
    assert isinstance(model, CompiledPipeline)
    raw = model.estimator.raw(model.preprocess.apply(X)).reshape(X.shape[0], -1)
    return raw[:, 1:] if model.task == "binary" and raw.shape[1] == 2 else raw


def error_message(answer: dict[str, Any]) -> str:
    body = http_body(answer) if "body" in answer else answer
    return str(body["error"]["message"])


def test_explain_is_a_reserved_feature_name() -> None:
    assert EXPLAIN_KEY == "explain"
    assert "explanations" in RESERVED_FEATURE_NAMES[EXPLAIN_KEY]
    for version in ("v1", "v2"):
        manifest = json.loads((ARTIFACTS / version / "manifest.json").read_text())
        assert EXPLAIN_KEY not in [feature["name"] for feature in manifest["features"]]


def test_every_golden_row_adds_up_to_the_model_s_raw_output_through_the_handler(
    churn: Callable[..., handler_module.Ready],
) -> None:
    golden = json.loads((ARTIFACTS / "v2" / "golden.json").read_text())
    state = churn(MAX_EXPLAIN_ROWS=str(golden["rows"]))
    names = [feature.name for feature in state.loaded.schema]
    X = np.asarray(golden["features"], dtype=np.float64)
    records = [dict(zip(names, row, strict=True)) for row in golden["features"]]
    answer = call({"instances": records, EXPLAIN_KEY: True})
    assert answer["statusCode"] == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == golden["rows"] == X.shape[0]
    raw = raw_outputs(state, X)[:, 0]
    for row, expected, prediction in zip(predictions, raw, predictions, strict=True):
        explanation = row["explanation"]
        assert explanation["space"] == "log_odds"
        assert list(explanation["contributions"]) == names  # schema order, every feature
        total = explanation["base"] + sum(explanation["contributions"].values())
        assert abs(total - expected) <= BOUND
        # The answer's probability is that log-odds through the logistic function.
        assert abs(1.0 / (1.0 + np.exp(-total)) - prediction["probability"]) <= 1e-12
    assert len({row["explanation"]["base"] for row in predictions}) == 1


@pytest.mark.parametrize("shape", ["direct", "http"])
def test_a_single_record_and_a_batch_carry_the_same_explanations(
    churn: Callable[..., handler_module.Ready], shape: str
) -> None:
    churn()
    record = valid_record()

    def ask(payload: dict[str, Any]) -> dict[str, Any]:
        if shape == "direct":
            return call(payload)
        event = load_event("function_url_v2.json")
        event["body"] = json.dumps(payload)
        answer = call(event)
        return {"statusCode": answer["statusCode"], **http_body(answer)}

    single = ask({**record, EXPLAIN_KEY: True})
    batch = ask({"instances": [record, record], EXPLAIN_KEY: True})
    plain = ask(record)
    off = ask({**record, EXPLAIN_KEY: False})
    assert single["statusCode"] == batch["statusCode"] == 200, (single, batch)
    first = batch["predictions"][0]
    assert first == batch["predictions"][1]
    assert (single["prediction"], single["probability"]) == (
        first["prediction"],
        first["probability"],
    )
    # The engine's sums may differ in the last bit between a 1-row and a 2-row query.
    ours, theirs = single["explanation"], first["explanation"]
    assert (ours["space"], ours["base"]) == (theirs["space"], theirs["base"])
    assert list(ours["contributions"]) == list(theirs["contributions"]) == CHURN_FEATURES
    for name, value in ours["contributions"].items():
        assert abs(value - theirs["contributions"][name]) <= 1e-15
    assert "explanation" not in plain and "explanation" not in off
    assert plain["probability"] == off["probability"] == single["probability"]


def test_a_multiclass_answer_has_a_base_and_contributions_per_class_label(
    fresh_environment: Configure, tmp_path: Path
) -> None:
    env = compiled_env(tmp_path / "animals.npz", animals_archive(), "animals", "v1")
    state = fresh_environment(env)
    assert isinstance(state, handler_module.Ready), state
    records = [
        {"size": 1.5, "colour": "red", "count": 3},
        {"size": 4.0, "colour": "green", "count": 50},
        {"size": 9.5, "colour": "blue", "count": 100},
    ]
    answer = call({"instances": records, EXPLAIN_KEY: True})
    assert answer["statusCode"] == 200, answer
    labels = task_artifacts.MULTICLASS_CLASSES
    X = np.array([[1.5, 0, 3], [4.0, 1, 50], [9.5, 2, 100]], dtype=np.float64)
    raw = raw_outputs(state, X)
    assert raw.shape == (3, 3)
    for row, expected in zip(answer["predictions"], raw, strict=True):
        explanation = row["explanation"]
        assert explanation["space"] == "log_odds"
        assert list(explanation["base"]) == labels
        assert list(explanation["contributions"]) == ["size", "colour", "count"]
        for index, label in enumerate(labels):
            total = explanation["base"][label] + sum(
                per_class[label] for per_class in explanation["contributions"].values()
            )
            assert abs(total - expected[index]) <= BOUND
    # The three rows are predicted three different classes: the explanation follows.
    assert [row["prediction"] for row in answer["predictions"]] == labels


@pytest.mark.parametrize(
    ("value", "shown"),
    [("yes", '"yes"'), (1, "1"), (None, "null"), ([True], "[true]"), ("x" * 100, '"' + "x" * 63)],
)
def test_an_explain_flag_that_is_not_a_boolean_is_a_400_naming_it(
    churn: Callable[..., handler_module.Ready], value: Any, shown: str
) -> None:
    churn()
    for payload in (
        {**valid_record(), EXPLAIN_KEY: value},
        {"instances": [valid_record()], EXPLAIN_KEY: value},
    ):
        answer = call(payload)
        assert answer["statusCode"] == 400, answer
        assert error_message(answer).startswith(f"'explain' must be true or false, got {shown}")
        assert len(error_message(answer)) < 150


def test_more_rows_than_max_explain_rows_is_a_413_naming_the_limit(
    churn: Callable[..., handler_module.Ready],
) -> None:
    churn(MAX_EXPLAIN_ROWS="3")
    assert call({"instances": [valid_record()] * 3, EXPLAIN_KEY: True})["statusCode"] == 200
    refused = call({"instances": [valid_record()] * 4, EXPLAIN_KEY: True})
    assert refused["statusCode"] == 413, refused
    assert "batch of 4 instances asks for explanations, more than MAX_EXPLAIN_ROWS=3" in (
        error_message(refused)
    )
    # Without explanations the same batch is answered.
    assert call({"instances": [valid_record()] * 4})["statusCode"] == 200


def test_the_default_limit_is_100_and_max_explain_rows_is_validated() -> None:
    base = {"MODEL_PATH": "/m", "UNSAFE_ALLOW_UNVERIFIED_MODEL": "1"}
    assert config.settings_from_env(base).max_explain_rows == 100 == config.DEFAULT_MAX_EXPLAIN_ROWS
    assert config.settings_from_env({**base, "MAX_EXPLAIN_ROWS": "250"}).max_explain_rows == 250
    for raw, expected in [
        ("0", "MAX_EXPLAIN_ROWS=0 is out of range: allowed 1 to 100000"),
        ("100001", "MAX_EXPLAIN_ROWS=100001 is out of range: allowed 1 to 100000"),
        ("ten", "MAX_EXPLAIN_ROWS='ten' is not an integer"),
    ]:
        with pytest.raises(config.ConfigError) as caught:
            config.settings_from_env({**base, "MAX_EXPLAIN_ROWS": raw})
        assert str(caught.value) == expected


def test_the_sklearn_runtime_answers_explain_with_a_400(fresh_environment: Configure) -> None:
    fresh_environment(local_env("v2"))
    answer = call({**valid_record(), EXPLAIN_KEY: True})
    assert answer["statusCode"] == 400, answer
    assert error_message(answer).startswith(
        "explanations need the compiled runtime: churn v2 is served by runtime 'sklearn'"
    )


def test_a_format_1_archive_answers_explain_with_a_400_naming_its_format(
    fresh_environment: Configure,
) -> None:
    manifest = json.loads((ARTIFACTS / "v2" / "manifest.json").read_text())
    compiled = manifest["artifacts"]["compiled"]
    assert compiled["format"] == "gbm-trees-npz/1"
    env = local_env(
        "v2",
        MODEL_RUNTIME="compiled",
        MODEL_PATH=str(ARTIFACTS / "v2" / compiled["file"]),
        MODEL_SHA256=compiled["sha256"],
    )
    fresh_environment(env)
    answer = call({**valid_record(), EXPLAIN_KEY: True})
    assert answer["statusCode"] == 400, answer
    assert "explanations are unavailable for churn v2: its compiled archive is format " in (
        error_message(answer)
    )
    assert "'gbm-trees-npz/1'" in error_message(answer)
    assert call(valid_record())["statusCode"] == 200


def test_an_archive_without_cover_answers_explain_with_a_400_saying_so(
    fresh_environment: Configure, tmp_path: Path, churn_bytes: bytes
) -> None:
    older = rewrite(churn_bytes, cover=None)
    fresh_environment(compiled_env(tmp_path / "old.npz", older, "churn", "v2"))
    answer = call({"instances": [valid_record()], EXPLAIN_KEY: True})
    assert answer["statusCode"] == 400, answer
    assert "explanations are unavailable for churn v2: " in error_message(answer)
    assert "no 'cover' array" in error_message(answer)


def test_the_log_line_names_three_features_per_row_and_capture_carries_nothing_new(
    churn: Callable[..., handler_module.Ready], capsys: pytest.CaptureFixture[str]
) -> None:
    churn(CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="1000")
    records = [{**valid_record(), "tenure_months": 5 * i} for i in range(12)]
    capsys.readouterr()
    explained = call({"instances": records, EXPLAIN_KEY: True})
    out = capsys.readouterr().out
    plain = call({"instances": records})
    plain_out = capsys.readouterr().out
    assert explained["statusCode"] == plain["statusCode"] == 200

    [line] = log_lines(out, "prediction")
    # Only the first rows are logged, as their probabilities are.
    assert len(line["top_features"]) == len(line["probabilities"]) == 10
    for names, row in zip(line["top_features"], explained["predictions"][:10], strict=True):
        contributions = row["explanation"]["contributions"]
        ranked = sorted(contributions, key=lambda name: -abs(contributions[name]))
        assert names == ranked[:3]
    assert isinstance(line["explain_ms"], float)
    text = "\n".join(json.dumps(entry) for entry in json_lines(out))
    assert "contributions" not in text and '"base"' not in text
    [plain_line] = log_lines(plain_out, "prediction")
    assert "top_features" not in plain_line

    def stable(records_: list[dict[str, Any]]) -> list[dict[str, Any]]:
        drop = {"request_id", "timestamp"}
        return [{k: v for k, v in r.items() if k not in drop} for r in records_]

    assert len(capture_lines(out)) == 12
    assert stable(capture_lines(out)) == stable(capture_lines(plain_out))


def test_the_gate_gets_explanations_and_logs_none(
    churn: Callable[..., handler_module.Ready], capsys: pytest.CaptureFixture[str]
) -> None:
    churn(CAPTURE_SAMPLE_RATE="1")
    capsys.readouterr()
    marked = call({"instances": [valid_record()], "_gate": True, EXPLAIN_KEY: True}, VERSION_ARN)
    out = capsys.readouterr().out
    assert marked["statusCode"] == 200, marked
    assert set(marked["predictions"][0]["explanation"]) == {"space", "base", "contributions"}
    [line] = json_lines(out)
    assert line["message"] == "gate request" and "top_features" not in line
    assert capture_lines(out) == []


def test_a_warm_up_ping_asking_for_explanations_is_refused_and_the_plain_ping_still_warms(
    churn: Callable[..., handler_module.Ready],
) -> None:
    churn()
    refused = call({"_warmup": True, EXPLAIN_KEY: True})
    assert refused["statusCode"] == 400
    assert "'_warmup' is allowed only alone" in error_message(refused)
    assert call({"_warmup": True}) == {
        "statusCode": 200,
        "warmup": True,
        "model_loaded": True,
        "model_name": "churn",
        "model_version": "v2",
        "lambda_version": "7",
    }


def test_explain_inside_a_batch_record_is_an_unknown_field(
    churn: Callable[..., handler_module.Ready],
) -> None:
    churn()
    answer = call({"instances": [{**valid_record(), EXPLAIN_KEY: True}]})
    assert answer["statusCode"] == 400, answer
    assert "explain" in error_message(answer)


def test_take_flag_leaves_other_payloads_alone() -> None:
    payload = {"instances": [1]}
    assert explanations.take_flag(payload) == (payload, False)
    assert explanations.take_flag([1, 2]) == ([1, 2], False)
    assert explanations.take_flag({"a": 1, EXPLAIN_KEY: True}) == ({"a": 1}, True)


def test_tools_serve_answers_explanations_over_http(
    monkeypatch: pytest.MonkeyPatch,
    fresh_environment: Configure,
    tmp_path: Path,
    churn_bytes: bytes,
) -> None:
    """``python -m tools.serve`` (``make serve``) over a version whose compiled archive
    explains: the local Function URL answers ``explain`` as the function does."""
    import shutil
    import threading
    import urllib.request

    from tools import local_server, serve

    version_dir = tmp_path / "churn" / "v2"
    version_dir.mkdir(parents=True)
    manifest = json.loads((ARTIFACTS / "v2" / "manifest.json").read_text())
    for entry in manifest["artifacts"].values():
        shutil.copy(ARTIFACTS / "v2" / entry["file"], version_dir / entry["file"])
    (version_dir / "model.compiled.npz").write_bytes(churn_bytes)
    manifest["artifacts"]["compiled"].update(
        format="sklearn-compiled-npz/3",
        sha256=hashlib.sha256(churn_bytes).hexdigest(),
        size_bytes=len(churn_bytes),
    )
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(serve, "ARTIFACTS", tmp_path)
    for name in (*serve.model_env("churn", "v2", "compiled"), "MODEL_BUCKET", "MODEL_KEY"):
        monkeypatch.setenv(name, "")  # restored as it was (set or not) after the test
        monkeypatch.delenv(name)
    assert serve.default_runtime("churn", "v2") == ("compiled", None)
    module = serve.load_handler(serve.model_env("churn", "v2", "compiled"))
    local = local_server.make_server("127.0.0.1", 0, module.handler, module.identity)
    thread = threading.Thread(target=local.serve_forever, daemon=True)
    thread.start()
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{local.server_address[1]}/",
            data=json.dumps({**valid_record(), EXPLAIN_KEY: True}).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            status, answer = response.status, json.loads(response.read())
    finally:
        local.shutdown()
        local.server_close()
        thread.join(timeout=30)
    assert status == 200, answer
    explanation = answer["explanation"]
    assert explanation["space"] == "log_odds" and list(explanation["contributions"]) == (
        CHURN_FEATURES
    )
    total = explanation["base"] + sum(explanation["contributions"].values())
    assert abs(1.0 / (1.0 + np.exp(-total)) - answer["probability"]) <= 1e-12


@pytest.mark.parametrize(
    ("task", "space"),
    [("regression", "value"), ("binary", "probability")],
    ids=["linear", "forest"],
)
def test_a_regressor_and_a_forest_explain_their_answer_itself(
    fresh_environment: Configure, tmp_path: Path, task: str, space: str
) -> None:
    """A regressor's value and a forest's probability are the explanation's own space: the
    answer's number is base plus the contributions."""
    from sklearn.ensemble import RandomForestClassifier

    X = task_artifacts.data()
    if task == "regression":
        pipeline = task_artifacts.fit("regression")
        classes = None
    else:
        y = task_artifacts.fit("binary").predict(X)
        forest = RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0)
        pipeline = task_artifacts._pipeline(forest).fit(X, y)
        classes = task_artifacts.BINARY_CLASSES
    data = compile_pipeline(
        pipeline,
        model_name="m",
        model_version="v1",
        features=task_artifacts.FEATURES,
        task=task,
        classes=classes,
    )
    state = fresh_environment(compiled_env(tmp_path / "m.npz", data, "m", "v1"))
    assert isinstance(state, handler_module.Ready), state
    colours = task_artifacts.COLOURS
    records = [
        {"size": float(row[0]), "colour": colours[int(row[1])], "count": int(row[2])}
        for row in X[:100]
    ]
    answer = call({"instances": records, EXPLAIN_KEY: True})
    assert answer["statusCode"] == 200, answer
    number = "prediction" if task == "regression" else "probability"
    for row in answer["predictions"]:
        explanation = row["explanation"]
        assert explanation["space"] == space
        assert list(explanation["contributions"]) == ["size", "colour", "count"]
        total = explanation["base"] + sum(explanation["contributions"].values())
        assert abs(total - row[number]) <= BOUND

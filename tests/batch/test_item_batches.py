"""The handler takes Step Functions' item batches and answers row by row.

The event shape is AWS's: with an ItemBatcher each child execution gets
``{"Items": [...], "BatchInput": {...}}`` (ItemBatcher (Map), AWS Step Functions Developer
Guide, https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html),
and a CSV ItemReader with ``CSVHeaderLocation: FIRST_ROW`` gives each row as an object
whose keys are the header's fields and whose values are all strings (ItemReader (Map),
https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from inference import handler as handler_module
from inference import item_batches
from inference.events import detect_shape
from inference.validation import Feature, parse_instances
from tests.handler.conftest import (
    FakeLambdaContext,
    capture_lines,
    emf_lines,
    local_env,
    log_lines,
    valid_record,
)

Configure = Callable[[dict[str, str]], Any]
VERSION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference:7"
ALIAS_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:churn-inference:production"


def csv_row(record: dict[str, Any]) -> dict[str, str]:
    """A row as the CSV ItemReader gives it: every value the cell's text."""
    return {name: str(value) for name, value in record.items()}


def event(items: list[Any], **batch_input: Any) -> dict[str, Any]:
    return {
        "Items": items,
        "BatchInput": {
            "batch_scoring": True,
            "run_id": "run-1",
            "model_version": "v1",
            "output_format": "csv",
            **batch_input,
        },
    }


def call(payload: Any, request_id: str = "b-1", invoked: str = VERSION_ARN) -> dict[str, Any]:
    context = FakeLambdaContext(aws_request_id=request_id, invoked_function_arn=invoked)
    return handler_module.handler(payload, context)


@pytest.fixture
def capture_all(fresh_environment: Configure) -> None:
    """v1, capturing every row of every online request (as dev does)."""
    fresh_environment(local_env("v1", CAPTURE_SAMPLE_RATE="1", CAPTURE_MAX_ROWS="1000"))
    handler_module.handler({"_warmup": True}, FakeLambdaContext())


def records(rows: int) -> list[dict[str, Any]]:
    return [{**valid_record(), "tenure_months": (7 * i) % 72} for i in range(rows)]


def test_csv_rows_get_the_endpoints_answers_row_for_row(
    capture_all: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = records(20)
    batch = call(event([csv_row(r) for r in rows], input_format="csv"))
    online = call({"instances": rows}, "online-1", ALIAS_ARN)
    assert batch["statusCode"] == 200
    assert [row["position"] for row in batch["rows"]] == list(range(20))
    stripped = [{k: v for k, v in row.items() if k != "position"} for row in batch["rows"]]
    assert stripped == online["predictions"]
    assert batch["run_id"] == "run-1" and batch["model_version"] == "v1"


def test_a_bad_row_gets_its_error_and_the_batch_goes_on(capture_all: None) -> None:
    rows = [csv_row(r) for r in records(4)]
    rows[1]["tenure_months"] = "abc"
    rows[2]["monthly_charges"] = "5000"  # over allowed.max
    rows[3]["num_products"] = ""  # an empty cell; the feature is not nullable
    answer = call(event(rows, input_format="csv"))
    good, text, high, empty = answer["rows"]
    assert "probability" in good and "error" not in good
    assert text["error"]["code"] == "invalid_input" and '"abc"' in text["error"]["message"]
    assert "tenure_months" in text["error"]["message"]
    assert "monthly_charges" in high["error"]["message"] and "5000" in high["error"]["message"]
    assert "not nullable" in empty["error"]["message"]
    # The endpoint's own words for the same record.
    online = call({**valid_record(), "monthly_charges": 5000}, "online-2", ALIAS_ARN)
    assert high["error"]["message"] == online["error"]["message"]


def test_batch_traffic_stays_out_of_online_logs_metrics_and_capture(
    capture_all: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [csv_row(r) for r in records(5)]
    rows[0]["tenure_months"] = "-1"
    capsys.readouterr()
    call(event(rows, input_format="csv", run_id="nightly-7"), "b-2")
    out = capsys.readouterr().out
    assert capture_lines(out) == []
    assert log_lines(out, "prediction") == []
    [line] = log_lines(out)
    assert line["message"] == "batch scored" and line["run_id"] == "nightly-7"
    assert (line["rows"], line["rows_refused"]) == (5, 1)
    assert "tenure_months" not in str(line)  # no value, no field of any row
    [document] = emf_lines(out)
    names = {m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"BatchRowsScored", "BatchRowsRefused"}
    assert (document["BatchRowsScored"], document["BatchRowsRefused"]) == (4, 1)
    # The run is a property, not a dimension: a run adds no metric stream.
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ModelVersion"]]
    assert document["run_id"] == "nightly-7"


def test_a_key_column_names_each_answer(capture_all: None) -> None:
    rows = [{**csv_row(r), "customer_id": f"c-{i}"} for i, r in enumerate(records(3))]
    answer = call(event(rows, input_format="csv", key_column="customer_id"))
    assert [row["key"] for row in answer["rows"]] == ["c-0", "c-1", "c-2"]
    assert all("position" not in row and "probability" in row for row in answer["rows"])
    missing = call(event([csv_row(valid_record())], input_format="csv", key_column="id"))
    assert "key column" in missing["rows"][0]["error"]["message"]


def test_indexed_items_carry_their_position_in_the_input(capture_all: None) -> None:
    items = [{"index": 1000 + i, "row": r} for i, r in enumerate(records(3))]
    answer = call(event(items))
    assert [row["position"] for row in answer["rows"]] == [1000, 1001, 1002]


def test_typed_rows_are_not_coerced(capture_all: None) -> None:
    """JSON Lines and Parquet rows keep their types: "12" is refused as the endpoint does."""
    row = {**valid_record(), "tenure_months": "12"}
    answer = call(event([row], input_format="jsonl"))
    assert "must be a number" in answer["rows"][0]["error"]["message"]


def test_only_a_version_invoked_by_number_may_send_a_batch(capture_all: None) -> None:
    refused = call(event(records(1)), invoked=ALIAS_ARN)
    assert refused["statusCode"] == 400
    assert "'production'" in refused["error"]["message"]


@pytest.mark.parametrize("mark", [False, "yes", 1])
def test_a_wrong_mark_is_refused(capture_all: None, mark: object) -> None:
    answer = call({"Items": records(1), "BatchInput": {"batch_scoring": mark}})
    assert answer["statusCode"] == 400 and "batch_scoring" in answer["error"]["message"]


def test_a_batch_over_the_functions_limit_is_refused(fresh_environment: Configure) -> None:
    fresh_environment(local_env("v1", MAX_BATCH_SIZE="10"))
    answer = call(event(records(11)))
    assert answer["statusCode"] == 400 and "MAX_BATCH_SIZE=10" in answer["error"]["message"]


def test_an_http_body_shaped_like_a_batch_is_not_one() -> None:
    body = {"Items": [], "BatchInput": {"batch_scoring": True}}
    http = {"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": "{}"}
    assert item_batches.is_item_batch(detect_shape(body), body)
    assert not item_batches.is_item_batch(detect_shape(http), {**http, **body})


NULLABLE = Feature("age", True, 0.0, 120.0, nullable=True)
NUMBER = Feature("score", False, 0.0, 1.0)
COLOUR = Feature("colour", True, 0.0, 2.0, ("red", "green", 7))


@pytest.mark.parametrize(
    ("feature", "cell", "value"),
    [
        (NULLABLE, "", None),
        (NULLABLE, "42", 42),
        (NULLABLE, "-3", -3),
        (NUMBER, "0.25", 0.25),
        (NUMBER, "1e-3", 0.001),
        (NUMBER, "nan", "nan"),  # stays text: refused as the endpoint refuses "nan"
        (NUMBER, "1_0", "1_0"),
        (NUMBER, " 1", " 1"),
        (COLOUR, "green", "green"),
        (COLOUR, "7", 7),  # an integer category from its digits
        (COLOUR, "blue", "blue"),
    ],
)
def test_a_csv_cell_is_read_by_its_features_type(
    feature: Feature, cell: str, value: object
) -> None:
    read = item_batches._read_cell(feature, cell)
    assert read == value and type(read) is type(value)


def test_an_empty_cell_of_a_nullable_feature_is_null() -> None:
    record = {"age": item_batches._read_cell(NULLABLE, "")}
    assert math.isnan(parse_instances(record, [NULLABLE], max_batch_size=1).X[0, 0])


def test_an_answer_of_500_bad_rows_fits_the_state_payload_limit(capture_all: None) -> None:
    """Step Functions passes a child's answer as state data (256 KiB at most): each row's
    error is its code and a cut message, never the per-field details."""
    worst = {f"unknown_field_{i}_" + "x" * 60: "y" * 200 for i in range(30)}
    worst.update({name: "z" * 500 for name in valid_record()})
    answer = call(event([worst] * 500, input_format="csv"))
    assert all(set(row["error"]) == {"code", "message"} for row in answer["rows"])
    assert len(answer["rows"][0]["error"]["message"]) <= 300 + len("... (9999 more characters)")
    assert len(json.dumps(answer).encode()) < 256 * 1024


def test_a_clean_csv_batch_is_scored_column_wise_with_the_row_paths_answers(
    fresh_environment: Configure,
) -> None:
    """v2 (all numeric features): a clean indexed CSV batch takes ``_score_clean``; its
    answers are ``_score``'s, bit for bit; a bad cell, a key column or bare rows do not."""
    from tests.batch.tables import churn_frame
    from tools.serve import default_runtime, model_env

    fresh_environment(model_env("churn", "v2", default_runtime("churn", "v2")[0]))
    handler_module.handler({"_warmup": True}, FakeLambdaContext())
    loaded = handler_module.current_state().loaded  # type: ignore[union-attr]
    schema, model = loaded.schema, loaded.model
    frame = churn_frame(300, seed=11).astype(str)
    rows = frame.to_dict("records")
    items = [{"index": 5_000 + i, "row": row} for i, row in enumerate(rows)]
    clean = item_batches._score_clean(items, schema, model)
    assert clean is not None and [row["position"] for row in clean] == list(range(5_000, 5_300))
    by_rows = item_batches._score(item_batches._rows(items, None), schema, model, True)
    assert clean == by_rows
    bad = [*items[:-1], {"index": 5_299, "row": {**rows[-1], "tenure_months": "1_0"}}]
    assert item_batches._score_clean(bad, schema, model) is None
    assert item_batches._score_clean(rows, schema, model) is None  # bare rows: by position
    answer = call(event(bad, input_format="csv"))
    assert answer["rows"][:-1] == clean[:-1] and "tenure_months" in str(answer["rows"][-1])

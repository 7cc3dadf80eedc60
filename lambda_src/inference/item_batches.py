"""Step Functions Distributed Map item batches: batch scoring, answered row by row.

An ItemBatcher invokes the function with ``{"Items": [...], "BatchInput": {...}}``
(https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html); the
state machine's BatchInput carries the mark ``"batch_scoring": true``, the run's id and
the output format. Each item is either a row object (the ItemReader's: a CSV row has the
header's fields as keys and every value a string) or ``{"index": N, "row": {...}}`` (an
ItemSelector that adds ``$$.Map.Item.Index``, so that each answer names its row's position
in the input). A ``key_column`` in BatchInput names a column that identifies each row: it
is answered as the row's ``key`` and is not a feature.

Each row is validated with the endpoint's rules (``parse_instances`` on the one record), a
CSV row's strings first read by its feature's type; a row that fails gets its error in
its answer and does not fail the batch. Like the traffic gate's, batch traffic writes no
prediction line, no online metric and no capture record: one line without values, and
the metrics ``BatchRowsScored`` and ``BatchRowsRefused`` per model version, with the run's
id as a property (a dimension per run would add metric streams, each billed, for every run).
Only a direct invocation of a published version by its qualified ARN, as the state
machine's children invoke, may carry the mark.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from inference import answers, logs, metrics
from inference.batch_matrix import valid_rows
from inference.errors import ErrorCode, RequestError, bad_request
from inference.events import Shape, check_version_invocation
from inference.limits import clip, echo
from inference.responses import error_body
from inference.validation import Feature, parse_instances, valid_batch

ITEMS_KEY = "Items"
BATCH_INPUT_KEY = "BatchInput"
MARK = "batch_scoring"
ROWS_SCORED = "BatchRowsScored"
ROW_MESSAGE_MAX_CHARS = 300
ROWS_REFUSED = "BatchRowsRefused"
# A CSV number as JSON writes one (no "nan", "inf", "1_000" or spaces, which float() takes).
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
# A whole column of them, one per line (one match per column of a batch).
_INTEGERS = re.compile(rf"(?:{_INTEGER.pattern}\n)*{_INTEGER.pattern}")
_NUMBERS = re.compile(rf"(?:{_NUMBER.pattern}\n)*{_NUMBER.pattern}")


def is_item_batch(shape: Shape, event: object) -> bool:
    """Whether ``event`` is an item batch: a direct invocation of exactly ``Items`` and a
    ``BatchInput`` that carries the batch-scoring mark (with any value: a wrong one is
    refused by ``answer``)."""
    return (
        shape is Shape.DIRECT
        and isinstance(event, Mapping)
        and set(event) == {ITEMS_KEY, BATCH_INPUT_KEY}
        and isinstance(event[BATCH_INPUT_KEY], Mapping)
        and MARK in event[BATCH_INPUT_KEY]
    )


def check_invocation(invoked_arn: object) -> None:
    """Refuse the mark unless a published version was invoked by number, as each Map child
    invokes: a caller granted the alias cannot keep its traffic out of the numbers."""
    check_version_invocation(
        invoked_arn,
        f"an item batch ({{{ITEMS_KEY!r}, {BATCH_INPUT_KEY!r}}} with {MARK!r})",
        "the batch-scoring state machine",
    )


def answer(
    event: Mapping[str, Any],
    state: Any,
    identity: Mapping[str, Any],
    request_id: str,
    started: float,
) -> dict[str, Any]:
    """``{"statusCode": 200, "rows": [...], "run_id", <identity>, "request_id"}``: one
    answer per item, in order; raises ``RequestError`` for a batch that is not one."""
    batch_input = event[BATCH_INPUT_KEY]
    if batch_input[MARK] is not True:
        raise bad_request(f"BatchInput {MARK!r} must be true, got {echo(str(batch_input[MARK]))}")
    items = event[ITEMS_KEY]
    if not isinstance(items, list) or not items:
        raise bad_request(f"{ITEMS_KEY!r} must be a non-empty array of rows")
    max_rows = state.settings.max_batch_size
    if len(items) > max_rows:
        raise bad_request(
            f"an item batch of {len(items)} rows exceeds MAX_BATCH_SIZE={max_rows}: "
            "lower the state machine's rows per invocation"
        )
    run_id = batch_input.get("run_id")
    key_column = batch_input.get("key_column")
    if key_column is not None and not isinstance(key_column, str):
        raise bad_request(f"BatchInput 'key_column' must be a string, got {echo(str(key_column))}")
    csv = batch_input.get("input_format") == "csv"
    loaded = state.loaded
    schema: Sequence[Feature] = loaded.schema
    predict_started = time.perf_counter()
    scored = _score_clean(items, schema, loaded.model) if csv and key_column is None else None
    if scored is None:
        scored = _score(_rows(items, key_column), schema, loaded.model, csv)
    predict_ms = (time.perf_counter() - predict_started) * 1000
    refused = sum(1 for row in scored if "error" in row)
    _account(state, identity, request_id, run_id, len(scored), refused, started, predict_ms)
    return {
        "statusCode": 200,
        "rows": scored,
        "run_id": run_id,
        **identity,
        "request_id": request_id,
    }


class _Row:
    __slots__ = ("error", "ident", "record")

    def __init__(self, ident: dict[str, Any], record: Any, error: dict[str, Any] | None) -> None:
        self.ident, self.record, self.error = ident, record, error


def _rows(items: list[Any], key_column: str | None) -> list[_Row]:
    out = []
    for offset, item in enumerate(items):
        position: Any = offset
        record = item
        if type(item) is dict and len(item) == 2 and "index" in item and "row" in item:
            position, record = item["index"], item["row"]
        ident: dict[str, Any] = {"position": position}
        if type(record) is not dict and not isinstance(record, Mapping):
            error = _error(f"row must be an object, got {type(record).__name__}")
            out.append(_Row(ident, None, error))
            continue
        if key_column is not None:
            if key_column not in record:
                out.append(_Row(ident, None, _error(f"key column {echo(key_column)} is missing")))
                continue
            ident = {"key": record[key_column]}
            record = {name: value for name, value in record.items() if name != key_column}
        out.append(_Row(ident, record, None))
    return out


def _read_cells(records: list[Any], schema: Sequence[Feature]) -> list[dict[str, Any]]:
    """``_read_cell`` on every cell of ``records``."""
    by_name = {feature.name: feature for feature in schema}
    return [
        {name: _read_cell(by_name.get(name), value) for name, value in record.items()}
        for record in records
    ]


def _read_columns(records: list[Any], schema: Sequence[Feature]) -> list[Any] | None:
    """The common case of ``_read_cells``, a column at a time, as rows of the schema's
    values in order (for ``valid_rows``, without a dict per row): every row holds exactly the
    numeric features, each cell a number as JSON writes one (one regular-expression match
    per column). None otherwise, and the caller reads cell by cell. An integer written
    "12.0" becomes 12.0 here, 12 there: the same matrix; only a refused row's message
    shows the value, and refused rows are read cell by cell."""
    names = [feature.name for feature in schema]
    if any(feature.values is not None for feature in schema):
        return None
    expected = dict.fromkeys(names).keys()
    try:
        # In C: a non-dict row (TypeError), or one with other keys, takes the slow path.
        if not all(map(expected.__eq__, map(dict.keys, records))):
            return None
        get = itemgetter(*names)
        # itemgetter of one name gives the value itself, of more a tuple.
        rows = map(get, records)
        cells = [list(rows)] if len(names) == 1 else list(zip(*rows, strict=True))
    except TypeError:
        return None
    columns: list[list[int] | list[float]] = []
    for values in cells:
        try:
            joined = "\n".join(values)  # TypeError unless every cell is a string
        except TypeError:
            return None
        if _INTEGERS.fullmatch(joined):
            columns.append(list(map(int, values)))
        elif _NUMBERS.fullmatch(joined):
            columns.append(list(map(float, values)))
        else:
            return None
    return list(zip(*columns, strict=True))


def _row_error(exc: RequestError) -> dict[str, Any]:
    """A refused row's error: the endpoint's code and message (which names the first
    problem and counts the rest), without the per-field details, cut to
    ROW_MESSAGE_MAX_CHARS: a child's answer must fit Step Functions' 256 KiB state payload
    whatever its rows hold (500 rows of the longest error: about 210 KB)."""
    return {"code": exc.code.value, "message": clip(exc.message, ROW_MESSAGE_MAX_CHARS)}


def _error(message: str) -> dict[str, Any]:
    error: dict[str, Any] = error_body(ErrorCode.INVALID_INPUT, message)["error"]
    return error


def _read_cell(feature: Feature | None, value: object) -> object:
    """A CSV cell (a string) as its feature's JSON value: an empty cell is null, a number
    one when it is written as JSON writes one, a categorical value as written (an integer
    category from its digits); anything else stays the string, which validation refuses
    with the endpoint's message naming it."""
    if feature is None or not isinstance(value, str):
        return value
    if value == "":
        return None
    if feature.values is not None:
        if feature.code_of(value) is None and _INTEGER.fullmatch(value):
            number = int(value)
            if feature.code_of(number) is not None or int in feature.value_types:
                return number
        return value
    if _INTEGER.fullmatch(value):
        return int(value)
    if _NUMBER.fullmatch(value):
        real = float(value)
        return real if math.isfinite(real) else value
    return value


_ITEM_KEYS = {"index": None, "row": None}.keys()
_index, _row = itemgetter("index"), itemgetter("row")


def _score_clean(
    items: list[Any], schema: Sequence[Feature], model: Any
) -> list[dict[str, Any]] | None:
    """``_score`` for the common CSV batch, without a Python object per row until the
    answers: every item ``{"index": N, "row": {...}}`` (no key column) and every row clean
    (``_read_columns`` and ``valid_rows`` take it). None otherwise: ``_score`` then answers,
    and names every problem; on the batches both take, both answer alike."""
    try:
        # In C: a non-dict item raises TypeError; an item with other keys fails the test.
        if not all(map(_ITEM_KEYS.__eq__, map(dict.keys, items))):
            return None
    except TypeError:
        return None
    picked = _read_columns(list(map(_row, items)), schema)
    fast = valid_rows(picked, schema) if picked is not None else None
    if fast is None:
        return None
    X, unknown = fast
    outputs = model.outputs(X, unknown=unknown)
    classes = tuple(model.classes) if model.classes is not None else None
    answered = answers.answers(model.task, classes, outputs, rows=len(items), batch=True)
    return [
        {"position": position, **predicted}
        for position, predicted in zip(
            map(_index, items), answered.body["predictions"], strict=True
        )
    ]


def _score(
    rows: list[_Row], schema: Sequence[Feature], model: Any, csv: bool
) -> list[dict[str, Any]]:
    good = [row for row in rows if row.error is None]
    records = [row.record for row in good]
    fast = None
    if records:
        if csv:
            picked = _read_columns(records, schema)
            fast = valid_rows(picked, schema) if picked is not None else None
        else:
            fast = valid_batch(records, schema)
        if fast is None and csv:
            for row, record in zip(good, _read_cells(records, schema), strict=True):
                row.record = record
    if fast is not None:
        X, unknown = fast
        valid = good
    else:
        valid, matrix, unknown = [], [], {}
        for row in good:
            try:
                one = parse_instances(row.record, schema, max_batch_size=1)
            except RequestError as exc:
                row.error = _row_error(exc)
                continue
            for (_, column), value in one.unknown.items():
                unknown[(len(valid), column)] = value
            valid.append(row)
            matrix.append(one.X[0])
        X = np.array(matrix, dtype=np.float64).reshape(len(valid), len(schema))
    by_row: dict[int, dict[str, Any]] = {}
    if valid:
        outputs = model.outputs(X, unknown=unknown)
        classes = tuple(model.classes) if model.classes is not None else None
        answered = answers.answers(model.task, classes, outputs, rows=len(valid), batch=True)
        by_row = {
            id(row): predicted
            for row, predicted in zip(valid, answered.body["predictions"], strict=True)
        }
    return [
        {**row.ident, "error": row.error}
        if row.error is not None
        else {**row.ident, **by_row[id(row)]}
        for row in rows
    ]


def _account(
    state: Any,
    identity: Mapping[str, Any],
    request_id: str,
    run_id: object,
    rows: int,
    refused: int,
    started: float,
    predict_ms: float,
) -> None:
    """One line without values, and the batch metrics: never the online ones."""
    settings = state.settings
    run = clip(str(run_id)) if run_id is not None else None
    line = logs.entry(
        "INFO",
        "batch scored",
        request_id=request_id,
        event_shape="item-batch",
        status=200,
        **identity,
        run_id=run,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        predict_ms=round(predict_ms, 3),
        rows=rows,
        rows_refused=refused,
    )
    documents = metrics.documents(
        settings.metrics_namespace,
        state.loaded.model_version,
        [
            metrics.Metric(ROWS_SCORED, metrics.COUNT, rows - refused),
            metrics.Metric(ROWS_REFUSED, metrics.COUNT, refused),
        ],
        properties={
            "run_id": run,
            "request_id": request_id,
            "lambda_version": settings.lambda_version,
        },
    )
    logs.write_lines([line, *documents])

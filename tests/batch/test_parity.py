"""Local batch scoring gives the endpoint's answers row for row.

A generated churn table goes through ``python -m tools.batch run`` (CSV, two workers, the
state machine's batching) and, in batches of 1,000, through the handler's Function URL
path; every probability and label must be the same float and value, and each bad row's
error the endpoint's message for that record. 10,000 rows here (about 10 s); the issue's
100,000: ``BATCH_PARITY_ROWS=100000`` (measured: see docs/batch-scoring.md).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inference import handler as handler_module
from tests.batch.tables import churn_frame
from tools.batch.__main__ import main
from tools.serve import model_env

ROWS = int(os.environ.get("BATCH_PARITY_ROWS", "10000"))
# row -> (column, the CSV cell, the JSON value a caller of the endpoint would send)
BAD: dict[int, tuple[str, str, object]] = {
    17: ("tenure_months", "-1", -1),
    4_321: ("monthly_charges", "lots", "lots"),
    9_998: ("num_products", "", None),
}


def url_event(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/"}, "requestId": "parity"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def test_local_mode_matches_the_endpoint_row_for_row(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fresh_environment: Callable[[dict[str, str]], Any],
) -> None:
    frame = churn_frame(ROWS, seed=25)
    source, scored = tmp_path / "rows.csv", tmp_path / "scored.csv"
    frame.to_csv(source, index=False)
    lines = source.read_text().splitlines()
    header = lines[0].split(",")
    for row, (column, cell, _) in BAD.items():
        cells = lines[row + 1].split(",")
        cells[header.index(column)] = cell
        lines[row + 1] = ",".join(cells)
    source.write_text("\n".join(lines) + "\n")
    status = main(["run", "--version", "v2", "--input", str(source), "--output", str(scored),
                   "--workers", "2"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    with scored.open(newline="") as handle:
        local = list(csv.DictReader(handle))
    assert len(local) == ROWS

    fresh_environment(model_env("churn", "v2", "compiled"))
    records = frame.to_dict("records")
    good = [i for i in range(ROWS) if i not in BAD]
    online: dict[int, dict[str, Any]] = {}
    for start in range(0, len(good), 1_000):
        chunk = good[start : start + 1_000]
        answer = handler_module.handler(url_event({"instances": [records[i] for i in chunk]}), None)
        assert answer["statusCode"] == 200
        online.update(zip(chunk, json.loads(answer["body"])["predictions"], strict=True))
    for i in good:
        answered = local[i]
        assert int(answered["position"]) == i
        assert (int(answered["prediction"]), float(answered["probability"])) == (
            online[i]["prediction"],
            online[i]["probability"],
        ), f"row {i}"
    for i, (column, _, value) in BAD.items():
        record = {**records[i], column: value}
        refused = handler_module.handler(url_event(record), None)
        assert refused["statusCode"] == 400
        assert local[i]["error"] == json.loads(refused["body"])["error"]["message"], f"row {i}"

"""Where the handler's time goes: each step of a prediction request timed on its own.

    python -m benchmarks.profile_handler [--iterations 200] [--sizes 1 100 1000]

Loads `churn v1`'s compiled artifact from model_artifacts/ (no S3), builds the Function URL
event `make bench` sends for each batch size (holdout rows), and prints the p50 of the whole
handler and of each step it takes, in the order it takes them. The steps do not add up to
the whole exactly (each is timed apart, in a warm loop); they show where a change can pay.
The last row is the whole handler's CPU time, which waits for a core on a loaded machine
do not inflate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL, VERSION = "churn", "v1"


def p50_us(
    call: Callable[[], object], iterations: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    for _ in range(min(20, iterations)):
        call()
    samples = []
    for _ in range(iterations):
        began = clock()
        call()
        samples.append(clock() - began)
    return statistics.median(samples) * 1e6


def configure_handler() -> None:
    sys.path.insert(0, str(ROOT / "lambda_src"))
    entry = json.loads((ROOT / "model_artifacts" / MODEL / VERSION / "manifest.json").read_text())
    compiled = entry["artifacts"]["compiled"]
    from inference import handler

    state = handler.configure(
        {
            "MODEL_NAME": MODEL,
            "MODEL_VERSION": VERSION,
            "MODEL_RUNTIME": "compiled",
            "MODEL_PATH": str(ROOT / "model_artifacts" / MODEL / VERSION / compiled["file"]),
            "MODEL_SHA256": compiled["sha256"],
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
        }
    )
    if not isinstance(state, handler.Ready):
        raise SystemExit(f"the model did not load: {state}")


def profile(size: int, rows: list[dict[str, float]], iterations: int) -> dict[str, float]:
    import numpy as np

    from benchmarks.worker import Context, url_event
    from inference import events, handler, logs, metrics, summaries
    from inference.events import Shape
    from inference.request import read_instances
    from inference.responses import render
    from inference.validation import parse_instances

    state = handler.current_state()
    assert isinstance(state, handler.Ready)
    loaded, settings = state.loaded, state.settings
    event = url_event({"instances": rows[:size]} if size > 1 else rows[0])
    raw = event["body"].encode()
    payload = events.parse_json_fast(raw)
    X = parse_instances(payload, loaded.schema, max_batch_size=size).X
    proba = np.asarray(loaded.model.outputs(X), dtype=np.float64)
    positive = proba >= 0.5
    probabilities, labels = proba.tolist(), positive.astype(np.int8).tolist()
    identity = handler.identity()

    def body() -> dict[str, Any]:
        if size == 1:
            return {"prediction": labels[0], "probability": probabilities[0]}
        return {
            "predictions": [
                {"prediction": label, "probability": p}
                for label, p in zip(labels, probabilities, strict=True)
            ]
        }

    def log_records() -> list[dict[str, object]]:
        line = logs.entry("INFO", "prediction", **identity, **summaries.log_fields(proba, positive))
        emitted = [
            metrics.Metric("InferenceLatency", metrics.MILLISECONDS, 1.0),
            metrics.Metric("Predictions", metrics.COUNT, size),
            metrics.Metric("PredictionProbability", metrics.NONE, summaries.metric_values(proba)),
        ]
        return [line, *metrics.documents(settings.metrics_namespace, "v1", emitted)]

    records = log_records()
    answer = body()
    sink = io.StringIO()
    real_stdout = sys.stdout

    def write() -> None:
        sys.stdout = sink
        try:
            logs.write_lines(records)
        finally:
            sys.stdout = real_stdout
        sink.seek(0)
        sink.truncate()

    def whole() -> None:
        sys.stdout = sink
        try:
            handler.handler(event, Context())
        finally:
            sys.stdout = real_stdout
        sink.seek(0)
        sink.truncate()

    steps: dict[str, Callable[[], object]] = {
        "whole handler": whole,
        "body to matrix (request.read_instances)": lambda: read_instances(
            Shape.HTTP_V2,
            event,
            loaded.schema,
            max_body_bytes=settings.max_body_bytes,
            max_batch_size=settings.max_batch_size,
        ),
        "  parse (events.parse_json_fast)": lambda: events.parse_json_fast(raw),
        "  parse, standard library (events.parse_json)": lambda: events.parse_json(raw),
        "  of which the duplicate-key check": lambda: events._may_hold_duplicates(raw, payload),
        "  validation (parse_instances)": lambda: parse_instances(
            payload, loaded.schema, max_batch_size=settings.max_batch_size
        ),
        "model (outputs)": lambda: loaded.model.outputs(X),
        "answer objects": body,
        "answer encode (responses.render)": lambda: render(Shape.HTTP_V2, 200, answer),
        "log line and EMF records": log_records,
        "log write (logs.write_lines)": write,
    }
    figures = {name: p50_us(call, iterations) for name, call in steps.items()}
    # On a loaded machine the wall clock also counts the waits for a core; CPU time does not.
    figures["whole handler, CPU time"] = p50_us(whole, iterations, time.thread_time)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_handler")
    parser.add_argument(
        "--iterations", type=int, default=200, help="timed calls per step for 1,000 records"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    args = parser.parse_args(argv)
    if args.iterations < 1 or any(size < 1 for size in args.sizes):
        parser.error("--iterations and --sizes must be 1 or more")
    real_stdout, sys.stdout = sys.stdout, io.StringIO()  # the load's own log lines
    try:
        configure_handler()
    finally:
        sys.stdout = real_stdout
    from benchmarks.run import holdout_rows

    rows = holdout_rows()[0]
    # As many calls for a small request as for a large one, up to ten times as many.
    columns = {
        size: profile(size, rows, min(10 * args.iterations, args.iterations * 1000 // size or 1))
        for size in args.sizes
    }
    names = list(next(iter(columns.values())))
    load = os.getloadavg()[0]
    print(f"p50 in microseconds (load average {load:.2f}; Python {sys.version.split()[0]})")
    print(f"| step | {' | '.join(f'{size:,} records' for size in args.sizes)} |")
    print("|---" * (len(args.sizes) + 1) + "|")
    for name in names:
        cells = " | ".join(f"{columns[size][name]:,.1f}" for size in args.sizes)
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

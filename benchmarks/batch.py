"""`make bench` (batch scoring): 1,000,000 churn rows from CSV to CSV through
``python -m tools.batch run`` against a lean baseline in one run, and what the same rows
cost on AWS.

* Local throughput: ``tools.batch run`` (the real handler, the state machine's item
  batches, one worker per core) against ``pandas.read_csv`` + the pipeline's
  ``predict_proba`` + ``to_csv``, each timed wall-clock from the CSV on disk to the scored
  CSV on disk, alternating (``--rounds``), best of each. Target: >= 1.0x the baseline.
* Per-batch duration: the handler's time for one item batch of ``--rows-per-invocation``
  CSV rows (strings, as the CSV ItemReader gives them), median of 50, one process.
* Cost per 1,000,000 rows on AWS (us-east-1 list prices, no free tier, each with its
  source in PRICES): Lambda arm64 at the function's memory, duration scaled to it as
  benchmarks/pricing.py does (a full vCPU at 1,769 MB; this machine stands for arm64),
  plus a request per batch; Step Functions' Distributed Map with Standard child
  executions (state transitions: CHILD_TRANSITIONS per batch) or Express children
  (a request per batch, and duration at 64 MB); S3 requests (the reader's ranged GETs,
  the writer's PUTs). Against SageMaker Batch Transform on one ml.m5.large (2 vCPU, the
  smallest general-purpose instance it offers), billed for its start-up and for the rows
  at the baseline's measured rate on this 2-core machine.
* Wall-clock on AWS at ``--max-concurrency``: the batches in waves of that many.

    python -m benchmarks.batch [--rows 1000000] [--workers 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "batch"
MODEL, VERSION = "churn", "v2"
MEMORY_MB = 1024  # cdk.json's function.memory_mb (dev and prod)
FULL_VCPU_MB = 1769
CHILD_TRANSITIONS = 2  # a Standard child: its start and its one Task state
SAGEMAKER_START_S = 300.0  # a Batch Transform job's instance start-up, billed (assumed)
INVOKE_OVERHEAD_S = 0.05  # Step Functions' dispatch to each child (assumed)
RESULT_FILE_BATCHES = 1000  # child results per ResultWriter file (assumed)
RANGED_GET_BYTES = 1 << 20  # the item reader's ranged GETs (assumed 1 MiB each)
PRICES_READ_ON = "2026-12-08"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/ (2026-11-25)"
S3_PRICING = "https://aws.amazon.com/s3/pricing/"
PRICES: dict[str, tuple[float, str, str]] = {
    "lambda_gb_s_arm64": (
        0.0000133334, "per GB-second, Arm", LAMBDA_PRICING
    ),
    "lambda_request": (0.20 / 1e6, "per request", LAMBDA_PRICING),
    "sfn_transition": (
        0.025 / 1000,
        "per state transition, Standard",
        "https://aws.amazon.com/step-functions/pricing/ (stored copy, read 2026-12-08)",
    ),
    "sfn_express_request": (
        1.00 / 1e6,
        "per Express request",
        "https://aws.amazon.com/step-functions/pricing/ (stored copy, read 2026-12-08)",
    ),
    "sfn_express_gb_s": (
        0.00001667,
        "per Express GB-second (first 1,000 GB-hours)",
        "https://aws.amazon.com/step-functions/pricing/ (figure via a 2026-03-14 summary, "
        "read 2026-12-08; the AWS page's table was not in the stored copy)",
    ),
    "s3_get": (0.0004 / 1000, "per GET", f"{S3_PRICING} (2026-11-25)"),
    "s3_put": (0.005 / 1000, "per PUT", f"{S3_PRICING} (not re-read)"),
    "sagemaker_ml_m5_large_hour": (
        0.115,
        "per instance-hour, ml.m5.large, Batch Transform",
        "https://aws.amazon.com/sagemaker/pricing/ (list price, not re-read 2026-12-08: verify)",
    ),
}  # fmt: skip


def price(name: str) -> float:
    return PRICES[name][0]


def write_rows(path: Path, rows: int) -> None:
    import pandas as pd

    from training.schema import FEATURE_NAMES
    from training.synthetic import generate

    X, _ = generate(rows, 3)
    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    for column in ("tenure_months", "num_products", "has_tech_support",
                   "contract_type_encoded", "payment_method_encoded"):  # fmt: skip
        frame[column] = frame[column].astype(np.int64)
    frame.to_csv(path, index=False)


def baseline(source: Path, target: Path) -> float:
    """pandas.read_csv + the pipeline's predict_proba + to_csv, from disk to disk."""
    import joblib
    import pandas as pd

    pipeline = joblib.load(ROOT / "model_artifacts" / MODEL / VERSION / "model.joblib")["pipeline"]
    started = time.perf_counter()
    frame = pd.read_csv(source)
    with warnings.catch_warnings():
        # The pipeline was fitted on an array: sklearn warns (once) about the frame's names.
        warnings.simplefilter("ignore", UserWarning)
        probability = pipeline.predict_proba(frame)[:, 1]
    pd.DataFrame(
        {"prediction": (probability >= 0.5).astype(np.int8), "probability": probability}
    ).to_csv(target, index_label="position")
    return time.perf_counter() - started


def local(source: Path, target: Path, workers: int, rows_per_invocation: int) -> float:
    """``python -m tools.batch run`` as a user runs it, process start-up included."""
    command = [sys.executable, "-m", "tools.batch", "run", "--model", MODEL, "--version",
               VERSION, "--input", str(source), "--output", str(target), "--workers",
               str(workers), "--rows-per-invocation", str(rows_per_invocation)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def handler_module() -> Any:
    """The handler serving the compiled artifact from model_artifacts/ (tools.serve's set-up)."""
    directory = ROOT / "model_artifacts" / MODEL / VERSION
    artifact = json.loads((directory / "manifest.json").read_text())["artifacts"]["compiled"]
    from inference import handler

    handler.configure(
        {
            "MODEL_NAME": MODEL,
            "MODEL_VERSION": VERSION,
            "MODEL_RUNTIME": "compiled",
            "MODEL_PATH": str(directory / artifact["file"]),
            "MODEL_SHA256": artifact["sha256"],
        }
    )
    return handler


def per_batch_seconds(source: Path, rows_per_invocation: int, samples: int = 50) -> float:
    """The handler's median time for one item batch of CSV rows, in this process."""
    import contextlib
    import csv
    import io

    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [dict(zip(header, next(reader), strict=True)) for _ in range(rows_per_invocation)]
    module = handler_module()
    context = type("Context", (), {"invoked_function_arn": "arn:aws:lambda:x:1:function:f:1",
                                   "aws_request_id": "bench"})()  # fmt: skip
    event = {
        "Items": [{"index": i, "row": row} for i, row in enumerate(rows)],
        "BatchInput": {"batch_scoring": True, "run_id": "bench", "input_format": "csv"},
    }
    times = []
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(samples + 3):
            started = time.perf_counter()
            answer = module.handler(event, context)
            times.append(time.perf_counter() - started)
    assert answer["statusCode"] == 200 and len(answer["rows"]) == rows_per_invocation
    return statistics.median(times[3:])


def cost_model(
    batch_s: float, rows_per_invocation: int, concurrency: int, baseline_rows_s: float,
    input_bytes_per_row: float,
) -> dict[str, Any]:  # fmt: skip
    rows = 1_000_000
    batches = math.ceil(rows / rows_per_invocation)
    lambda_s = batch_s * max(1.0, FULL_VCPU_MB / MEMORY_MB)
    billed_ms = math.ceil(lambda_s * 1000)
    lambda_usd = batches * (billed_ms / 1000 * MEMORY_MB / 1024 * price("lambda_gb_s_arm64"))
    lambda_usd += batches * price("lambda_request")
    standard_usd = batches * CHILD_TRANSITIONS * price("sfn_transition")
    express_s = math.ceil((lambda_s + INVOKE_OVERHEAD_S) * 10) / 10  # 100 ms steps
    express_usd = batches * (
        price("sfn_express_request") + express_s * 64 / 1024 * price("sfn_express_gb_s")
    )
    gets = math.ceil(rows * input_bytes_per_row / RANGED_GET_BYTES)
    puts = math.ceil(batches / RESULT_FILE_BATCHES) + 1
    s3_usd = gets * price("s3_get") + puts * price("s3_put")
    waves = math.ceil(batches / concurrency)
    wall_s = waves * (lambda_s + INVOKE_OVERHEAD_S)
    sagemaker_s = SAGEMAKER_START_S + rows / baseline_rows_s
    sagemaker_usd = sagemaker_s / 3600 * price("sagemaker_ml_m5_large_hour")
    return {
        "rows": rows,
        "batches": batches,
        "lambda_seconds_per_batch_at_memory": round(lambda_s, 4),
        "usd": {
            "lambda_arm64": round(lambda_usd, 4),
            "step_functions_standard_children": round(standard_usd, 4),
            "step_functions_express_children": round(express_usd, 4),
            "s3_requests": round(s3_usd, 6),
            "total_with_standard_children": round(lambda_usd + standard_usd + s3_usd, 4),
            "total_with_express_children": round(lambda_usd + express_usd + s3_usd, 4),
            "sagemaker_batch_transform_ml_m5_large": round(sagemaker_usd, 4),
        },
        "wall_clock_s": {
            f"lambda_at_concurrency_{concurrency}": round(wall_s, 1),
            "sagemaker_one_ml_m5_large": round(sagemaker_s, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rows-per-invocation", type=int, default=500)
    parser.add_argument("--max-concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    source = OUT / f"churn-{args.rows}.csv"
    if not source.is_file():
        print(f"writing {args.rows:,} churn rows to {source}", file=sys.stderr)
        write_rows(source, args.rows)
    base_times, local_times = [], []
    for round_ in range(args.rounds):
        base_times.append(baseline(source, OUT / "baseline.csv"))
        local_times.append(
            local(source, OUT / "scored.csv", args.workers, args.rows_per_invocation)
        )
        print(f"round {round_ + 1}: baseline {base_times[-1]:.2f} s, tools.batch run "
              f"{local_times[-1]:.2f} s", file=sys.stderr)  # fmt: skip
    base_rate, local_rate = args.rows / min(base_times), args.rows / min(local_times)
    batch_s = per_batch_seconds(source, args.rows_per_invocation)
    report = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "rows": args.rows,
        "workers": args.workers,
        "rows_per_invocation": args.rows_per_invocation,
        "baseline_rows_per_s": round(base_rate),
        "tools_batch_run_rows_per_s": round(local_rate),
        "ratio": round(local_rate / base_rate, 3),
        "handler_seconds_per_batch": round(batch_s, 5),
        "cost_per_million_rows": cost_model(
            batch_s,
            args.rows_per_invocation,
            args.max_concurrency,
            base_rate,
            source.stat().st_size / args.rows,
        ),
        "prices": {name: {"usd": p[0], "unit": p[1], "source": p[2]} for name, p in PRICES.items()},
        "prices_read_on": PRICES_READ_ON,
    }
    (OUT / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"batch scoring, {args.rows:,} churn rows CSV -> CSV: tools.batch run "
        f"{local_rate:,.0f} rows/s ({args.workers} workers) vs baseline {base_rate:,.0f} rows/s: "
        f"{local_rate / base_rate:.2f}x (target >= 1.0x)"
    )
    usd = report["cost_per_million_rows"]["usd"]
    print(
        f"per 1,000,000 rows on AWS: ${usd['total_with_standard_children']:.4f} (Standard "
        f"children) / ${usd['total_with_express_children']:.4f} (Express children) vs "
        f"SageMaker Batch Transform ${usd['sagemaker_batch_transform_ml_m5_large']:.4f}; "
        f"details: {OUT / 'batch.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

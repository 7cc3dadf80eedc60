"""`make pricing`: what each environment costs a month, as cdk.json configures it.

Every environment is read through the app's own parser (``stacks.config.load_config``):
architecture, memory, provisioned concurrency (prod: the configured total and the
autoscaling maximum), the warmer, tracing and log retention. Per-request figures come from
a recorded ``make bench`` run (benchmarks/results/latest.json): the handler's warm p50 for
one record and the bytes it writes to its log per request. Prices are us-east-1 list
prices with no free tier (an account's free tier is shared by everything in it); each has
its source in ``PRICES`` and was read on ``PRICES_READ_ON``.

Assumptions, each stated where it is used: one prediction per request (batches divide the
request-driven lines by the batch size); Lambda gives one full vCPU at 1,769 MB and a
single-threaded request takes 1769 / memory times longer below it, no shorter above it;
this machine's duration stands for arm64's; traffic is spread evenly over the month (for
X-Ray's sampling); provisioned environments serve every request (no spill-over).

    python -m benchmarks.pricing [--bench benchmarks/results/latest.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.config import committed_context, load_committed
from stacks.settings import Architecture, EnvironmentConfig

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
PRICES_READ_ON = "2026-11-25"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
CLOUDWATCH_PRICING = "https://aws.amazon.com/cloudwatch/pricing/"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


PRICES: dict[str, Price] = {
    "lambda_request": Price(0.20 / 1e6, "per request", LAMBDA_PRICING),
    "lambda_gb_s_x86_64": Price(0.0000166667, "per GB-second, x86, on demand", LAMBDA_PRICING),
    "lambda_gb_s_arm64": Price(0.0000133334, "per GB-second, Arm, on demand", LAMBDA_PRICING),
    "pc_gb_s_x86_64": Price(0.0000041667, "per GB-second provisioned, x86", LAMBDA_PRICING),
    "pc_gb_s_arm64": Price(0.0000033334, "per GB-second provisioned, Arm", LAMBDA_PRICING),
    "pc_duration_gb_s_x86_64": Price(
        0.0000097222, "per GB-second run on provisioned concurrency, x86", LAMBDA_PRICING
    ),
    "pc_duration_gb_s_arm64": Price(
        0.0000077778, "per GB-second run on provisioned concurrency, Arm", LAMBDA_PRICING
    ),
    "logs_ingestion_gb": Price(0.50, "per GB ingested (standard class)", CLOUDWATCH_PRICING),
    "logs_storage_gb_month": Price(0.03, "per GB-month stored", CLOUDWATCH_PRICING),
    "custom_metric_month": Price(0.30, "per metric-month (first 10,000)", CLOUDWATCH_PRICING),
    "alarm_metric_month": Price(
        0.10, "per standard-resolution alarm metric-month", CLOUDWATCH_PRICING
    ),
    "dashboard_month": Price(3.00, "per dashboard-month", CLOUDWATCH_PRICING),
    "put_metric_data_request": Price(0.01 / 1000, "per PutMetricData request", CLOUDWATCH_PRICING),
    "xray_trace": Price(5.00 / 1e6, "per trace recorded", "https://aws.amazon.com/xray/pricing/"),
    "kms_key_month": Price(
        1.00, "per customer managed key-month", "https://aws.amazon.com/kms/pricing/"
    ),
    "s3_gb_month": Price(0.023, "per GB-month, S3 Standard", "https://aws.amazon.com/s3/pricing/"),
    "s3_get_request": Price(0.0004 / 1000, "per GET request", "https://aws.amazon.com/s3/pricing/"),
    "logs_insights_gb_scanned": Price(
        0.005, "per GB scanned by Logs Insights queries", CLOUDWATCH_PRICING
    ),
}

SECONDS_PER_MONTH = 730 * 3600  # AWS bills a month as 730 hours
FULL_VCPU_MB = 1769
VOLUMES = (1_000_000, 10_000_000, 100_000_000)
# Lambda's own lines per invocation in the text log format (START, END, REPORT; with
# active tracing the REPORT event carries an XRAY line), as in
# https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html
PLATFORM_LINES = (
    "START RequestId: 1c8df7d3-xmpl-46da-9778-518e6eca8125 Version: 12\n",
    "END RequestId: 1c8df7d3-xmpl-46da-9778-518e6eca8125\n",
    "REPORT RequestId: 1c8df7d3-xmpl-46da-9778-518e6eca8125\tDuration: 0.95 ms\t"
    "Billed Duration: 1 ms\tMemory Size: 2048 MB\tMax Memory Used: 71 MB\t\n",
)
XRAY_LINE = (
    "XRAY TraceId: 1-5e34a614-10bdxmplf1fb44f07bc535a1\t"
    "SegmentId: 07f5xmpl2d1f6f85\tSampled: true\n"
)
# X-Ray's default rule for Lambda: the first request each second, then 5 % of the rest.
XRAY_RESERVOIR_PER_SECOND = 1
XRAY_FIXED_RATE = 0.05
# What the stacks create (stacks/constructs/monitoring.py): EMF metrics per model version
# taking traffic (InferenceLatency, Predictions, PredictionProbability, ColdStart,
# ModelLoadTime, ModelLoadErrors, ServerErrors), the alarms' metrics (latency 1, errors 2,
# throttles 1), one dashboard, one KMS key for the alarm topic.
EMF_METRICS_PER_MODEL_VERSION = 7
ALARM_METRICS = 4
# Target tracking on provisioned concurrency adds two alarms (high and low) per version.
TARGET_TRACKING_ALARMS = 2
# One GET per environment start; an upper bound for a month of restarts and scale-outs.
S3_GETS_PER_MONTH = 10_000


# The drift monitor: one run per schedule period, about 10 s at 1,024 MB (container start,
# a Logs Insights query, PSI), one PutMetricData; its metrics are DriftRows, MaxFeaturePSI,
# PredictionPSI and FeaturePSI per feature of the manifest, its alarms two.
DRIFT_RUN_SECONDS = 10
DRIFT_MEMORY_GB = 1.0
DRIFT_METRICS_FIXED = 3
DRIFT_ALARMS = 2
# Capture adds this fraction of a capture line's bytes to the capture bucket after gzip
# (JSON lines of repeated field names compress about tenfold); an upper bound for storage.
CAPTURE_GZIP_RATIO = 0.2


@functools.cache
def capture_line_bytes() -> int:
    """Bytes of one capture record line for a churn row, as the handler's builder writes it."""
    sys.path.insert(0, str(ROOT / "lambda_src"))
    from datetime import UTC, datetime

    from serving import capture
    from training.schema import EXAMPLE_RECORDS, FEATURE_NAMES

    (record,) = capture.records(
        request_id="8f0c2a1e-3b4d-4c5e-9f60-718293a4b5c6",
        timestamp=datetime(2026, 11, 25, tzinfo=UTC),
        model_name="churn",
        model_version="v1",
        lambda_version="17",
        feature_names=list(FEATURE_NAMES),
        rows=[[EXAMPLE_RECORDS[0][name] for name in FEATURE_NAMES]],
        probabilities=[0.2731546],
        predictions=[0],
    )
    return len(capture.encode(record)) + 1


class PricingError(ValueError):
    """The inputs cannot price an environment."""


@dataclass(frozen=True)
class Measured:
    """Per-request figures of the deployed runtime from one `make bench` run."""

    runtime: str
    warm_p50_ms: float
    log_bytes_per_request: float
    source: str


def measured_from(bench: dict[str, Any], runtime: str, source: str) -> Measured:
    name = f"ours ({runtime})"
    try:
        result = bench["results"][name]
        return Measured(
            runtime=runtime,
            warm_p50_ms=float(result["warm"]["1"]["p50_ms"]),
            log_bytes_per_request=float(result["log_bytes_per_request"]["1"]),
            source=source,
        )
    except (KeyError, TypeError) as exc:
        raise PricingError(
            f"{source} has no {name} warm p50 and log bytes for one record ({exc!r} missing): "
            "record a run of this make bench with `make bench` then `make bench-record`"
        ) from None


def billed_ms(measured_ms: float, memory_mb: int) -> int:
    """Billed duration: CPU share below one vCPU stretches it; Lambda rounds up to 1 ms."""
    return math.ceil(measured_ms * max(1.0, FULL_VCPU_MB / memory_mb))


def log_bytes_per_invocation(handler_bytes: float, *, tracing: bool) -> float:
    platform = sum(len(line.encode()) for line in PLATFORM_LINES)
    return handler_bytes + platform + (len(XRAY_LINE.encode()) if tracing else 0)


def traces_per_month(requests: float) -> float:
    reservoir = min(requests, SECONDS_PER_MONTH * XRAY_RESERVOIR_PER_SECOND)
    return reservoir + XRAY_FIXED_RATE * (requests - reservoir)


def monthly_cost(
    env: EnvironmentConfig,
    measured: Measured,
    *,
    predictions: int,
    provisioned: int | None = None,
    artifact_bytes: int = 0,
) -> dict[str, float]:
    """Dollars a month by line item; ``provisioned`` overrides the configured PC total."""
    fn = env.function
    arch = "arm64" if fn.architecture is Architecture.ARM64 else "x86_64"
    memory_gb = fn.memory_mb / 1024
    pc = env.provisioned_concurrency.total if provisioned is None else provisioned
    requests = float(predictions)  # one prediction per request
    seconds = billed_ms(measured.warm_p50_ms, fn.memory_mb) / 1000
    duration_price = PRICES[f"{'pc_duration' if pc else 'lambda'}_gb_s_{arch}"].usd
    warm_ups = 0.0
    if env.warmer.enabled:
        # One ping per version taking traffic (one outside a canary) per period.
        warm_ups = SECONDS_PER_MONTH / 60 / env.warmer.rate_minutes
    invocations = requests + warm_ups
    log_gb = (
        invocations
        * log_bytes_per_invocation(measured.log_bytes_per_request, tracing=fn.tracing)
        / 1e9
    )
    # Stored compressed; the uncompressed size bounds it from above.
    retained_months = fn.log_retention_days / (SECONDS_PER_MONTH / 86400)
    alarms = ALARM_METRICS + (
        TARGET_TRACKING_ALARMS if env.provisioned_concurrency.autoscaling else 0
    )
    return {
        "Lambda requests": invocations * PRICES["lambda_request"].usd,
        "Lambda duration": invocations * seconds * memory_gb * duration_price,
        "provisioned concurrency held": pc
        * memory_gb
        * SECONDS_PER_MONTH
        * PRICES[f"pc_gb_s_{arch}"].usd,
        "CloudWatch Logs ingestion": log_gb * PRICES["logs_ingestion_gb"].usd,
        "CloudWatch Logs storage (upper bound)": log_gb
        * retained_months
        * PRICES["logs_storage_gb_month"].usd,
        "X-Ray traces": (traces_per_month(invocations) if fn.tracing else 0.0)
        * PRICES["xray_trace"].usd,
        "EMF custom metrics": EMF_METRICS_PER_MODEL_VERSION * PRICES["custom_metric_month"].usd,
        "alarms": alarms * PRICES["alarm_metric_month"].usd,
        "dashboard": PRICES["dashboard_month"].usd,
        "KMS key (alarm topic)": PRICES["kms_key_month"].usd,
        "S3 (artifacts, GETs)": artifact_bytes / 1e9 * PRICES["s3_gb_month"].usd
        + S3_GETS_PER_MONTH * PRICES["s3_get_request"].usd,
        **capture_cost(env, requests),
    }


def capture_volume_gb(env: EnvironmentConfig, requests: float) -> float:
    """GB of capture lines a month (one record per single-record request captured)."""
    return requests * env.capture.effective_rate * capture_line_bytes() / 1e9


def capture_cost(env: EnvironmentConfig, requests: float) -> dict[str, float]:
    """Capture and drift monitoring, at the configured rate.

    Firehose's own charges (ingestion, decompression, dynamic partitioning) are not priced:
    their list prices could not be read from the pricing page here. The report prints the
    volume Firehose carries so they can be added from
    https://aws.amazon.com/firehose/pricing/.
    """
    gb = capture_volume_gb(env, requests)
    retained_months = env.capture.retention_days / (SECONDS_PER_MONTH / 86400)
    costs = {
        "capture: log ingestion": gb * PRICES["logs_ingestion_gb"].usd,
        "capture: S3 storage (upper bound)": gb
        * CAPTURE_GZIP_RATIO
        * retained_months
        * PRICES["s3_gb_month"].usd,
    }
    drift = env.drift
    if drift is not None:
        runs = SECONDS_PER_MONTH / 60 / drift.schedule_minutes
        # Each run scans the window's log events; all lines, not only capture lines, are
        # scanned, so the window's share of the month's capture volume is a lower bound.
        scanned = gb * drift.window_minutes / (SECONDS_PER_MONTH / 60)
        arch = "arm64" if env.function.architecture is Architecture.ARM64 else "x86_64"
        costs["drift monitor: runs"] = runs * (
            PRICES["lambda_request"].usd
            + DRIFT_RUN_SECONDS * DRIFT_MEMORY_GB * PRICES[f"lambda_gb_s_{arch}"].usd
            + PRICES["put_metric_data_request"].usd
            + scanned * PRICES["logs_insights_gb_scanned"].usd
        )
        manifest = json.loads((env.model.directory / "manifest.json").read_text())
        features = len(manifest["features"])
        costs["drift monitor: metrics and alarms"] = (DRIFT_METRICS_FIXED + features) * PRICES[
            "custom_metric_month"
        ].usd + DRIFT_ALARMS * PRICES["alarm_metric_month"].usd
    return costs


def environment(name: str) -> EnvironmentConfig:
    return load_committed(name)


def artifact_size(env: EnvironmentConfig) -> int:
    return sum((env.model.directory / f).stat().st_size for f in env.model.upload_files)


def scenarios(env: EnvironmentConfig) -> list[tuple[str, int | None]]:
    pc = env.provisioned_concurrency
    if pc.autoscaling and pc.autoscaling.max_total > pc.total:
        return [
            (f"PC {pc.total} (configured total)", None),
            (f"PC {pc.autoscaling.max_total} (autoscaling max)", pc.autoscaling.max_total),
        ]
    return [(f"PC {pc.total}" if pc.total else "no PC", None)]


def _model_report(
    name: str, env: EnvironmentConfig, measured_for: dict[str, Measured]
) -> list[str]:
    """One model's section: each model of an environment is its own function and bill."""
    lines: list[str] = []
    model = env.model.model_name
    title = name if env.first_model and not env.additional_models else f"{name} / {model}"
    measured = measured_for[env.model.runtime.value]
    fn = env.function
    lines += [
        f"### {title}: {fn.architecture.value}, {fn.memory_mb} MB, runtime "
        f"{env.model.runtime.value}, tracing {'on' if fn.tracing else 'off'}, warmer "
        f"{'every ' + str(env.warmer.rate_minutes) + ' min' if env.warmer.enabled else 'off'}, "
        f"logs kept {fn.log_retention_days} days",
        "",
        f"Per request: {measured.warm_p50_ms:.3f} ms measured, billed "
        f"{billed_ms(measured.warm_p50_ms, fn.memory_mb)} ms at {fn.memory_mb} MB; "
        f"{log_bytes_per_invocation(measured.log_bytes_per_request, tracing=fn.tracing):,.0f}"
        f" log bytes ({measured.log_bytes_per_request:,.0f} from the handler, the rest "
        f"Lambda's own lines). From {measured.source}"
        + ("." if env.first_model else f" (the built-in model's figures, not {model}'s)."),
        "",
    ]
    for label, provisioned in scenarios(env):
        costs = [
            monthly_cost(
                env,
                measured,
                predictions=v,
                provisioned=provisioned,
                artifact_bytes=artifact_size(env),
            )
            for v in VOLUMES
        ]
        header = " | ".join(f"{v // 1_000_000}M / month" for v in VOLUMES)
        lines += [f"| {title}, {label} | {header} |", "|---" * (1 + len(VOLUMES)) + "|"]
        for item in costs[0]:
            lines.append(f"| {item} | " + " | ".join(f"${c[item]:,.2f}" for c in costs) + " |")
        totals = [sum(c.values()) for c in costs]
        lines.append("| **total** | " + " | ".join(f"**${t:,.2f}**" for t in totals) + " |")
        lines.append(
            "| cost per 1M predictions | "
            + " | ".join(f"${t / (v / 1e6):,.2f}" for t, v in zip(totals, VOLUMES, strict=True))
            + " |"
        )
        lines.append("")
    if env.capture.effective_rate:
        volumes = ", ".join(
            f"{capture_volume_gb(env, v):.3f} GB at {v // 1_000_000}M" for v in VOLUMES
        )
        lines += [
            f"Capture at rate {env.capture.effective_rate:g}: {capture_line_bytes()} bytes "
            f"a record; Firehose carries {volumes} a month (its charges are not in the "
            "table: see https://aws.amazon.com/firehose/pricing/).",
            "",
        ]
    return lines


def report(env_names: Sequence[str], measured_for: dict[str, Measured]) -> str:
    lines: list[str] = []
    for name in env_names:
        for env in environment(name).models:
            lines += _model_report(name, env, measured_for)
    lines += [
        f"Prices: {REGION}, list prices read on {PRICES_READ_ON}, no free tier.",
        "",
        "| price | USD | unit | source | read on |",
        "|---|---|---|---|---|",
        *[
            f"| {key} | {_dollars(p.usd)} | {p.unit} | {p.source} | {PRICES_READ_ON} |"
            for key, p in PRICES.items()
        ],
        "",
    ]
    return "\n".join(lines)


def _dollars(usd: float) -> str:
    return "$" + f"{usd:.10f}".rstrip("0").rstrip(".")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pricing")
    parser.add_argument(
        "--bench",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest.json",
        help="a make bench result with the per-request figures (default: the recorded one)",
    )
    parser.add_argument("--env", action="append", help="environment(s) to price (default: all)")
    args = parser.parse_args(argv)
    names = args.env or sorted(committed_context()["environments"])
    try:
        bench = json.loads(args.bench.read_text())
        source = (
            f"`make bench` of {bench['machine']['date']} ({args.bench.relative_to(ROOT)})"
            if args.bench.is_relative_to(ROOT)
            else f"`make bench` of {bench['machine']['date']} ({args.bench})"
        )
        measured = {
            runtime: measured_from(bench, runtime, source) for runtime in ("compiled", "sklearn")
        }
        print(report(names, measured))
    except (OSError, KeyError, ValueError) as exc:  # ConfigError, PricingError, bad JSON
        print(f"error: cannot price from {args.bench}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

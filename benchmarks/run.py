"""`make bench`: our handler against the naive baseline, every figure in one run.

Starts an S3 + CloudWatch API (moto) on loopback, uploads the reference model, and for
each implementation starts fresh processes (a new execution environment each) to time
the cold start, warm latency through the whole handler, and peak RSS. Installs each
image's requirements for the image's Python and platform to measure their size.
Prints one table and writes it to benchmarks/results/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
from sklearn.model_selection import train_test_split

from benchmarks.pricing import MEMORY_SIZES_MB, cost_per_million
from training.artifacts import verify_version
from training.reference import REFERENCE_VERSIONS
from training.synthetic import generate
from training.train import HOLDOUT_FRACTION, SPLIT_SEED

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEPS_CACHE = ROOT / "build" / "bench-deps"
MODEL, VERSION = "churn", "v1"
BUCKET = "bench-models"
IMAGE_PYTHON = "3.12"
IMAGE_PLATFORM = "manylinux2014_x86_64"


@dataclass(frozen=True)
class Implementation:
    name: str
    module: str
    pythonpath: Path
    requirements: Path
    env: dict[str, str]
    put_metric_calls: int


def implementations(manifest: dict[str, Any]) -> list[Implementation]:
    artifacts = manifest["artifacts"]

    def ours(runtime: str) -> Implementation:
        entry = artifacts[runtime]
        return Implementation(
            name=f"ours ({runtime})",
            module="inference.handler",
            pythonpath=ROOT / "lambda_src",
            requirements=ROOT / "lambda_src" / f"requirements-{runtime}.txt",
            env={
                "MODEL_NAME": MODEL,
                "MODEL_VERSION": VERSION,
                "MODEL_RUNTIME": runtime,
                "MODEL_BUCKET": BUCKET,
                "MODEL_KEY": f"models/{MODEL}/{VERSION}/{entry['file']}",
                "MODEL_SHA256": entry["sha256"],
            },
            put_metric_calls=0,
        )

    return [
        Implementation(
            name="baseline",
            module="benchmarks.baseline_handler",
            pythonpath=ROOT,
            requirements=ROOT / "benchmarks" / "requirements-baseline.txt",
            env={"MODEL_BUCKET": BUCKET, "MODEL_KEY": f"models/{MODEL}/{VERSION}/model.joblib"},
            put_metric_calls=2,
        ),
        ours("sklearn"),
        ours("compiled"),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def holdout_rows() -> tuple[list[dict[str, float]], np.ndarray]:
    spec = REFERENCE_VERSIONS[VERSION]
    X, y = generate(spec["rows"], spec["seed"])
    _, X_test, _, _ = train_test_split(
        X, y, test_size=HOLDOUT_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    version_dir = ROOT / "model_artifacts" / MODEL / VERSION
    problems = verify_version(version_dir)
    if problems:  # a pickle is loaded below: only the bytes the manifest pins
        raise SystemExit("; ".join(problems))
    payload = joblib.load(version_dir / "model.joblib")
    names = [f["name"] for f in payload["features"]]
    integer = {f["name"] for f in payload["features"] if f["dtype"] == "integer"}
    rows = [
        {n: (int(v) if n in integer else float(v)) for n, v in zip(names, row, strict=True)}
        for row in X_test.tolist()
    ]
    return rows, payload["pipeline"].predict_proba(X_test)[:, 1]


def run_worker(impl: Implementation, plan_path: Path, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    try:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", impl.module, str(plan_path), str(out_path)],
            env={**env, **impl.env, "PYTHONPATH": f"{impl.pythonpath}{os.pathsep}{ROOT}"},
            cwd=tempfile.gettempdir(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
            timeout=600,
        )
        result: dict[str, Any] = json.loads(out_path.read_text())
        return result
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{impl.name} worker failed:\n{exc.stderr.decode()[-2000:]}") from None
    finally:
        out_path.unlink(missing_ok=True)


def dependency_size_mb(requirements: Path) -> float | None:
    """Installed size of ``requirements`` for the image's Python and platform (cached)."""
    text = (
        "".join(p.read_text() for p in sorted(requirements.parent.glob("requirements*.txt")))
        + requirements.name
        + IMAGE_PLATFORM
        + IMAGE_PYTHON
    )
    target = DEPS_CACHE / hashlib.sha256(text.encode()).hexdigest()[:16]
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        print(
            f"  installing {requirements.relative_to(ROOT)} for cp{IMAGE_PYTHON} "
            f"{IMAGE_PLATFORM} ...",
            flush=True,
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                IMAGE_PYTHON,
                "--platform",
                IMAGE_PLATFORM,
                "--platform",
                "manylinux_2_28_x86_64",
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"  could not install (network?): {result.stderr.strip()[-300:]}")
            return None
        (target / ".complete").touch()
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return total / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per handler")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    args = parser.parse_args(argv)
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request otherwise

    manifest = json.loads(
        (ROOT / "model_artifacts" / MODEL / VERSION / "manifest.json").read_text()
    )
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MODEL_"))
    } | {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
    }
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106  (moto on loopback)
        )
        s3.create_bucket(Bucket=BUCKET)
        for entry in manifest["artifacts"].values():
            s3.upload_file(
                str(ROOT / "model_artifacts" / MODEL / VERSION / entry["file"]),
                BUCKET,
                f"models/{MODEL}/{VERSION}/{entry['file']}",
            )
        rows, expected = holdout_rows()
        iterations = (
            {"1": 300, "100": 50, "1000": 10} if args.quick else {"1": 3000, "100": 300, "1000": 40}
        )
        with tempfile.TemporaryDirectory() as tmp:
            cold_plan = Path(tmp) / "cold.json"
            cold_plan.write_text(json.dumps({"single": rows[0]}))
            warm_plan = Path(tmp) / "warm.json"
            warm_plan.write_text(
                json.dumps(
                    {
                        "single": rows[0],
                        "rows": rows[:1000],
                        "warm": iterations,
                        "parity_rows": rows,
                    }
                )
            )
            results: dict[str, dict[str, Any]] = {}
            for impl in implementations(manifest):
                print(f"{impl.name}: {args.cold_runs} cold starts ...", flush=True)
                colds = [run_worker(impl, cold_plan, env) for _ in range(args.cold_runs)]
                print(f"{impl.name}: warm latency and parity ...", flush=True)
                warm = run_worker(impl, warm_plan, env)
                probabilities = np.asarray(warm.pop("parity_probabilities"))
                results[impl.name] = {
                    "cold_ms": statistics.median(c["cold_ms"] for c in colds),
                    "cold_import_ms": statistics.median(c["import_ms"] for c in colds),
                    "cold_first_request_ms": statistics.median(
                        c["first_request_ms"] for c in colds
                    ),
                    "first_status": colds[0]["first_status"],
                    "warm": warm["warm"],
                    "peak_rss_mb": warm["peak_rss_mb"],
                    "parity_max_abs_diff": float(np.max(np.abs(probabilities - expected))),
                    "parity_label_mismatches": int(
                        np.sum((probabilities >= 0.5) != (expected >= 0.5))
                    ),
                    "parity_rows": len(expected),
                    "deps_mb": dependency_size_mb(impl.requirements),
                    "put_metric_calls": impl.put_metric_calls,
                }
    finally:
        server.stop()
    report = build_report(results, cold_runs=args.cold_runs, iterations=iterations)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(report["markdown"])
    print()
    print(report["markdown"])
    return 0 if report["targets_met"] else 1


def build_report(
    results: dict[str, dict[str, Any]], *, cold_runs: int, iterations: dict[str, int]
) -> dict[str, Any]:
    base = results["baseline"]
    ours = [name for name in results if name != "baseline"]

    def fmt(value: float | None, unit: str) -> str:
        if value is None:
            return "n/a"
        return f"${value:,.2f}" if unit == "$" else f"{value:,.2f} {unit}"

    def ratio(value: float | None, baseline: float | None) -> str:
        return "n/a" if value is None or not baseline else f"{value / baseline:.3f}x"

    def metric(result: dict[str, Any], key: str) -> float | None:
        if key.startswith("warm:"):
            _, size, stat = key.split(":")
            return float(result["warm"][size][stat])
        if key.startswith(("cost:", "lambda-cost:")):
            memory = int(key.split(":")[1])
            calls = result["put_metric_calls"] if key.startswith("cost:") else 0
            return cost_per_million(result["warm"]["1"]["p50_ms"], memory, calls)
        value = result[key]
        return None if value is None else float(value)

    rows = [
        (f"cold init (median of {cold_runs} fresh processes)", "cold_ms", "ms"),
        ("  of which imports + module init", "cold_import_ms", "ms"),
        ("  of which first request", "cold_first_request_ms", "ms"),
        ("warm p50, 1 record", "warm:1:p50_ms", "ms"),
        ("warm p99, 1 record", "warm:1:p99_ms", "ms"),
        ("warm p50, batch of 100", "warm:100:p50_ms", "ms"),
        ("warm p99, batch of 100", "warm:100:p99_ms", "ms"),
        ("warm p50, batch of 1,000", "warm:1000:p50_ms", "ms"),
        ("warm p99, batch of 1,000", "warm:1000:p99_ms", "ms"),
        ("peak RSS", "peak_rss_mb", "MB"),
        (f"image Python dependencies (cp{IMAGE_PYTHON}, x86_64)", "deps_mb", "MB"),
        *[(f"cost per 1M single predictions at {m} MB", f"cost:{m}", "$") for m in MEMORY_SIZES_MB],
        *[
            (f"  of which Lambda (requests + duration) at {m} MB", f"lambda-cost:{m}", "$")
            for m in MEMORY_SIZES_MB
        ],
    ]
    header = "| figure | baseline | " + " | ".join(f"{n} | ratio" for n in ours) + " |"
    table = [header, "|---" * (2 + 2 * len(ours)) + "|"]
    for label, key, unit in rows:
        cells = [fmt(metric(base, key), unit)]
        for name in ours:
            value = metric(results[name], key)
            cells += [fmt(value, unit), ratio(value, metric(base, key))]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    table.append(
        "| parity (max abs diff in P(churn), labels differing) | - | "
        + " | ".join(
            f"{results[n]['parity_max_abs_diff']:.2g}, {results[n]['parity_label_mismatches']} | "
            for n in ours
        )
        + " |"
    )
    targets = {}
    best = results.get("ours (compiled)")
    if best:
        targets = {
            "cold init <= 0.2x baseline": best["cold_ms"] / base["cold_ms"] <= 0.2,
            "warm single-record p50 <= 0.1x baseline": best["warm"]["1"]["p50_ms"]
            / base["warm"]["1"]["p50_ms"]
            <= 0.1,
            "image dependencies <= 0.5x baseline": (
                best["deps_mb"] is not None
                and base["deps_mb"] is not None
                and best["deps_mb"] / base["deps_mb"] <= 0.5
            ),
            "same label on every holdout row, max abs diff <= 1e-6": (
                best["parity_label_mismatches"] == 0 and best["parity_max_abs_diff"] <= 1e-6
            ),
        }
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    markdown = "\n".join(
        [
            f"Measured by `make bench` on {time.strftime('%Y-%m-%d')} ({machine}); warm iterations "
            f"per size: {iterations}. Ratios are ours / baseline in the same run.",
            "",
            *table,
            "",
            "| target (ours, compiled runtime) | met |",
            "|---|---|",
            *[f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in targets.items()],
            "",
        ]
    )
    return {
        "results": results,
        "targets": targets,
        "targets_met": all(targets.values()),
        "markdown": markdown,
    }


if __name__ == "__main__":
    sys.exit(main())

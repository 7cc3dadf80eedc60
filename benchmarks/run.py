"""`make bench`: our handler against two baselines, every figure in one interleaved run.

Starts an S3 + CloudWatch API (moto) on loopback, uploads the reference model, then runs
rounds: in each round every implementation (in an order rotated per round) gets one
fresh process for a cold start and one for warm figures, so that a noise spike on this
shared machine lands on all of them rather than on one. Figures: cold start, warm latency
through the whole handler (1, 100, 1,000 records) in wall-clock and in CPU time (which a
process waiting for a core on a loaded machine still measures truly), the model's own
``predict_proba`` (1 and 1,000 rows), peak RSS, log bytes per request, parity, and the
installed size of each image's requirements. Baselines: the seed-faithful handler
(pandas, two blocking PutMetricData calls per request) and a lean one (joblib at import,
nothing else).

Writes build/bench/latest.{json,md} (untracked); ``make bench-record`` copies a run into
benchmarks/results/ and docs/performance.md.

    python -m benchmarks.run [--rounds 5] [--quick] [--cpu N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
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

from benchmarks.dependencies import dependency_size_mb
from benchmarks.report import LEAN, SEED, build_report, round_figures, summarize
from serving.artifacts import verify_version
from training.reference import REFERENCE_VERSIONS
from training.synthetic import generate
from training.train import HOLDOUT_FRACTION, SPLIT_SEED

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
MODEL, VERSION = "churn", "v1"
BUCKET = "bench-models"
# Our image installs requirements-<runtime>.txt from here (its Dockerfile).
IMAGE_REQUIREMENTS = ROOT / "lambda_src" / "images" / "inference"


@dataclass(frozen=True)
class Implementation:
    name: str
    module: str
    pythonpath: Path
    requirements: Path
    env: dict[str, str]


def implementations(manifest: dict[str, Any]) -> list[Implementation]:
    artifacts = manifest["artifacts"]

    def ours(runtime: str) -> Implementation:
        entry = artifacts[runtime]
        return Implementation(
            name=f"ours ({runtime})",
            module="inference.handler",
            pythonpath=ROOT / "lambda_src",
            requirements=IMAGE_REQUIREMENTS / f"requirements-{runtime}.txt",
            env={
                "MODEL_NAME": MODEL,
                "MODEL_VERSION": VERSION,
                "MODEL_RUNTIME": runtime,
                "MODEL_BUCKET": BUCKET,
                "MODEL_KEY": f"models/{MODEL}/{VERSION}/{entry['file']}",
                "MODEL_SHA256": entry["sha256"],
            },
        )

    joblib_key = {"MODEL_BUCKET": BUCKET, "MODEL_KEY": f"models/{MODEL}/{VERSION}/model.joblib"}
    baselines = (
        (SEED, "baseline_handler", "requirements-baseline.txt"),
        (LEAN, "lean_baseline_handler", "requirements-lean-baseline.txt"),
    )
    return [
        *(
            Implementation(
                name=name,
                module=f"benchmarks.{module}",
                pythonpath=ROOT,
                requirements=ROOT / "benchmarks" / requirements,
                env=joblib_key,
            )
            for name, module, requirements in baselines
        ),
        ours("sklearn"),
        ours("compiled"),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def holdout_rows() -> tuple[list[dict[str, float]], np.ndarray, np.ndarray]:
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
    return rows, X_test, payload["pipeline"].predict_proba(X_test)[:, 1]


def compile_sources() -> None:
    """Byte-compile the handlers as the image's ``compileall`` step does.

    Without it, a shell with PYTHONDONTWRITEBYTECODE set makes every cold start of our
    handler (a dozen modules) compile from source, which the image never does, while the
    baselines' libraries come precompiled from pip. The .pyc files land in __pycache__
    directories, which git ignores.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            str(ROOT / "lambda_src"),
            str(ROOT / "benchmarks"),
        ],
        env=env,
        check=True,
    )


def run_worker(
    impl: Implementation, plan_path: Path, env: dict[str, str], cpu: int | None
) -> dict[str, Any]:
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
            # Lambda below 1,769 MB has less than one vCPU: --cpu keeps numpy's and the
            # interpreter's threads on one core, as there.
            preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
        )
        result: dict[str, Any] = json.loads(out_path.read_text())
        return result
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{impl.name} worker failed:\n{exc.stderr.decode()[-2000:]}") from None
    finally:
        out_path.unlink(missing_ok=True)


def iterations_per_round(quick: bool, rounds: int) -> tuple[dict[str, int], dict[str, int]]:
    """Warm and model-only iterations per size, for one round."""
    warm = {"1": 300, "100": 50, "1000": 10} if quick else {"1": 3000, "100": 300, "1000": 100}
    model = {"1": 300, "1000": 20} if quick else {"1": 3000, "1000": 200}
    return (
        {size: max(5, n // rounds) for size, n in warm.items()},
        {size: max(5, n // rounds) for size, n in model.items()},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds; one cold start each per round"
    )
    parser.add_argument(
        "--cold-per-round", type=int, default=2, help="fresh processes per implementation per round"
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument(
        "--cpu", type=int, default=None, help="pin every worker to this CPU (sched_setaffinity)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where latest.{json,md} go")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, not {args.rounds}")
    if args.cold_per_round < 1:
        parser.error(f"--cold-per-round must be 1 or more, not {args.cold_per_round}")
    if args.cpu is not None and args.cpu not in os.sched_getaffinity(0):
        allowed = sorted(os.sched_getaffinity(0))
        parser.error(f"--cpu {args.cpu} is not one of the CPUs this process may use: {allowed}")
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
    load_before = os.getloadavg()
    started = time.perf_counter()
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
        rows, X_holdout, expected = holdout_rows()
        compile_sources()
        warm_iterations, model_iterations = iterations_per_round(args.quick, args.rounds)
        impls = implementations(manifest)
        samples: dict[str, dict[str, Any]] = {
            impl.name: {
                "cold": [],
                "warm": {},
                "warm_cpu": {},
                "model_only": {},
                "rss": [],
                "rounds": [],
            }
            for impl in impls
        }
        with tempfile.TemporaryDirectory() as tmp:
            cold_plan = Path(tmp) / "cold.json"
            cold_plan.write_text(json.dumps({"single": rows[0]}))
            for round_ in range(args.rounds):
                first_round = round_ == 0
                warm_plan = Path(tmp) / f"warm-{round_}.json"
                warm_plan.write_text(
                    json.dumps(
                        {
                            "single": rows[0],
                            "rows": rows[:1000],
                            "warm": warm_iterations,
                            "model_only": model_iterations,
                            "model_rows": X_holdout[:1000].tolist(),
                            "log_bytes": first_round,
                            "parity_rows": rows if first_round else None,
                        }
                    )
                )
                order = impls[round_ % len(impls) :] + impls[: round_ % len(impls)]
                print(
                    f"round {round_ + 1}/{args.rounds}: " + ", ".join(i.name for i in order),
                    flush=True,
                )
                for impl in order:
                    got = samples[impl.name]
                    colds = [
                        run_worker(impl, cold_plan, env, args.cpu)
                        for _ in range(args.cold_per_round)
                    ]
                    got["cold"] += colds
                    warm = run_worker(impl, warm_plan, env, args.cpu)
                    got["rounds"].append(round_figures(colds, warm))
                    for key in ("warm", "warm_cpu", "model_only"):
                        for size, latencies in warm[key].items():
                            got[key].setdefault(size, []).extend(latencies)
                    got["rss"].append(warm["peak_rss_mb"])
                    if first_round:
                        got["log_bytes"] = warm["log_bytes"]
                        probabilities = np.asarray(warm["parity_probabilities"])
                        got["parity_max_abs_diff"] = float(np.max(np.abs(probabilities - expected)))
                        got["parity_label_mismatches"] = int(
                            np.sum((probabilities >= 0.5) != (expected >= 0.5))
                        )
        results = {
            impl.name: summarize(samples[impl.name], dependency_size_mb(impl.requirements))
            for impl in impls
        }
    finally:
        server.stop()
    machine = {
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pinned_cpu": args.cpu,
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
        "duration_s": round(time.perf_counter() - started, 1),
    }
    report = build_report(
        results,
        machine=machine,
        rounds=args.rounds,
        quick=args.quick,
        iterations={"warm": warm_iterations, "model_only": model_iterations},
        parity_rows=len(expected),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "latest.md").write_text(report["markdown"])
    print()
    print(report["markdown"])
    print(f"written to {args.out}/latest.{{json,md}}; `make bench-record` keeps this run")
    return 0 if report["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())

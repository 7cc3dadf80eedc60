"""`make bench`, DataFrame pipelines: the compiled runtime on a pipeline written the usual way
(issue 21) against the lean baseline that serves the same pipeline with joblib and pandas.

The pipeline: Palmer penguins (``palmerpenguins``), string categories and empty cells
kept, ``ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()),
numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])])`` feeding a
``HistGradientBoostingClassifier`` over the three species. It is packaged by
``training.package`` exactly as docs/bring-your-own-model.md says (draft the schema from
the model and the data, then package), into a temporary folder.

Interleaved rounds: in each round every implementation (order rotated per round) gets
fresh processes for cold starts and one for warm figures (``benchmarks.worker``, the same
as the main benchmark). Figures: cold start, warm p50 through the handler for 1 record
and a batch of 1,000; ratios ours / lean baseline in the same run; parity of our answers
with the pipeline's own ``predict_proba`` on the same DataFrame rows.

    python -m benchmarks.frame_pipeline [--rounds 5] [--quick] [--cpu N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from benchmarks.report import percentile
from benchmarks.run import ROOT, Implementation, compile_sources, run_worker

OUT = ROOT / "build" / "bench"
MODEL, VERSION = "penguins", "v1"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
LABEL = "species"
BATCH = 1000
# (figure, target ratio ours / lean baseline): issue 21's table.
TARGETS = {"cold start": 0.12, "warm p50, 1 record": 0.3, "warm p50, batch of 1,000": 0.5}
LEAN = "lean baseline (joblib + pandas)"
OURS = "ours (compiled)"


def fitted_pipeline() -> tuple[Any, Any]:
    """The issue's pipeline fitted on every penguin (strings and NA kept), and the data."""
    import palmerpenguins
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = palmerpenguins.load_penguins()[[*NUMERIC, *CATEGORICAL, LABEL]]
    pipeline = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("clf", HistGradientBoostingClassifier(random_state=0)),
        ]
    )
    pipeline.fit(frame[[*NUMERIC, *CATEGORICAL]], frame[LABEL])
    return pipeline, frame


def package(tmp: Path) -> tuple[Path, Path, Any, Any]:
    """Package the pipeline the documented way; (compiled artifact, joblib file, pipeline,
    data)."""
    from training import package as packaging

    pipeline, frame = fitted_pipeline()
    estimator = tmp / "penguins.joblib"
    joblib.dump(pipeline, estimator)
    holdout = tmp / "holdout.csv"
    frame.to_csv(holdout, index=False)
    schema = tmp / "penguins.yaml"
    digest = hashlib.sha256(estimator.read_bytes()).hexdigest()
    common = ["--estimator", str(estimator), "--sha256", digest, "--data", str(holdout)]
    quiet = open(os.devnull, "w")  # noqa: SIM115  (packaging's progress lines)
    stdout, sys.stdout = sys.stdout, quiet
    try:
        if packaging.main([*common, "--label", LABEL, "--write-schema", str(schema)]) != 0:
            raise SystemExit("drafting the schema failed")
        argv = [*common, "--model", MODEL, "--version", VERSION, "--schema", str(schema)]
        if packaging.main([*argv, "--output", str(tmp / "artifacts")]) != 0:
            raise SystemExit("packaging failed")
    finally:
        sys.stdout = stdout
        quiet.close()
    version_dir = tmp / "artifacts" / MODEL / VERSION
    manifest = json.loads((version_dir / "manifest.json").read_text())
    if "compiled" not in manifest["artifacts"]:
        raise SystemExit(
            "the pipeline did not compile: the benchmark measures the compiled runtime"
        )
    return version_dir, estimator, pipeline, frame


def records(frame: Any, rows: int, seed: int) -> list[dict[str, Any]]:
    """``rows`` penguins drawn with replacement, as request records (NA as null)."""
    picked = frame.sample(n=rows, replace=True, random_state=seed)[[*NUMERIC, *CATEGORICAL]]
    out = []
    for record in picked.to_dict(orient="records"):
        out.append(
            {
                key: None if (isinstance(value, float) and math.isnan(value)) else value
                for key, value in record.items()
            }
        )
    return out


def implementations(version_dir: Path, estimator: Path) -> list[Implementation]:
    manifest = json.loads((version_dir / "manifest.json").read_text())
    entry = manifest["artifacts"]["compiled"]
    return [
        Implementation(
            name=LEAN,
            module="benchmarks.lean_frame_baseline",
            pythonpath=ROOT,
            requirements=ROOT / "benchmarks" / "requirements-lean-baseline.txt",
            env={"FRAME_MODEL_PATH": str(estimator)},
        ),
        Implementation(
            name=OURS,
            module="inference.handler",
            pythonpath=ROOT / "lambda_src",
            requirements=ROOT / "lambda_src" / "images" / "inference" / "requirements-compiled.txt",
            env={
                "MODEL_NAME": MODEL,
                "MODEL_VERSION": VERSION,
                "MODEL_RUNTIME": "compiled",
                "MODEL_PATH": str(version_dir / entry["file"]),
                "MODEL_SHA256": entry["sha256"],
            },
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frame_pipeline")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--cold-per-round", type=int, default=2, help="fresh processes per round")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument("--cpu", type=int, default=None, help="pin every worker to this CPU")
    parser.add_argument("--out", type=Path, default=OUT, help="where frame-pipeline.{json,md} go")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.cold_per_round < 1:
        parser.error("--rounds and --cold-per-round must be 1 or more")
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_"))} | {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        # One OpenMP thread, as on a Lambda function with one vCPU (below 1,769 MB): the
        # baseline's HistGradientBoosting predicts with OpenMP, and its threads spinning on
        # a shared 2-core machine measured the machine's load (a 1,000-row predict_proba
        # took 350 to 800 ms with the default threads, 23 to 38 ms with one).
        "OMP_NUM_THREADS": "1",
    }
    warm = {"1": 300, str(BATCH): 10} if args.quick else {"1": 3000, str(BATCH): 100}
    warm = {size: max(5, n // args.rounds) for size, n in warm.items()}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print("packaging the penguins pipeline (training.package) ...", flush=True)
        version_dir, estimator, pipeline, frame = package(tmp)
        batch = records(frame, BATCH, seed=1)
        single = batch[0]
        compile_sources()
        impls = implementations(version_dir, estimator)
        got: dict[str, dict[str, Any]] = {
            i.name: {"cold": [], "warm": {}, "rounds": []} for i in impls
        }
        cold_plan, warm_plan = tmp / "cold.json", tmp / "warm.json"
        cold_plan.write_text(json.dumps({"single": single}))
        warm_plan.write_text(json.dumps({"single": single, "rows": batch, "warm": warm}))
        parity_plan = tmp / "parity.json"
        parity_plan.write_text(json.dumps({"single": single, "parity_records": batch}))
        for round_ in range(args.rounds):
            order = impls[round_ % len(impls) :] + impls[: round_ % len(impls)]
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(i.name for i in order))
            for impl in order:
                colds = [
                    run_worker(impl, cold_plan, env, args.cpu) for _ in range(args.cold_per_round)
                ]
                warm_result = run_worker(impl, warm_plan, env, args.cpu)
                samples = got[impl.name]
                samples["cold"] += [c["cold_ms"] for c in colds]
                for size, latencies in warm_result["warm"].items():
                    samples["warm"].setdefault(size, []).extend(latencies)
                samples["rounds"].append(
                    {
                        "cold start": statistics.median(c["cold_ms"] for c in colds),
                        "warm p50, 1 record": percentile(warm_result["warm"]["1"], 0.5),
                        "warm p50, batch of 1,000": percentile(
                            warm_result["warm"][str(BATCH)], 0.5
                        ),
                    }
                )
        parity = parity_of(impls[1], version_dir, pipeline, batch)
    figures = {
        name: {
            "cold start": statistics.median(samples["cold"]),
            "warm p50, 1 record": percentile(samples["warm"]["1"], 0.5),
            "warm p50, batch of 1,000": percentile(samples["warm"][str(BATCH)], 0.5),
        }
        for name, samples in got.items()
    }
    report = build(figures, got, parity, args, time.perf_counter() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frame-pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "frame-pipeline.md").write_text(report["markdown"])
    print()
    print(report["markdown"])
    return 0 if report["targets_met"] else 1


def parity_of(
    impl: Implementation, version_dir: Path, pipeline: Any, batch: list[dict[str, Any]]
) -> dict[str, Any]:
    """Our handler's answers on the batch (nulls included) against ``predict_proba`` on the
    same rows as a DataFrame."""
    import pandas as pd

    os.environ.update(impl.env)
    from benchmarks.worker import Context, url_event

    with open(os.devnull, "w") as quiet:  # the handler's log lines
        stdout, sys.stdout = sys.stdout, quiet
        try:
            from inference import handler

            handler.configure(os.environ)
            answer = handler.handler(url_event({"instances": batch}), Context())
        finally:
            sys.stdout = stdout
    body = json.loads(answer["body"])
    classes = [str(c) for c in pipeline.classes_]
    ours = np.array([[p["probabilities"][c] for c in classes] for p in body["predictions"]])
    frame = pd.DataFrame.from_records(batch, columns=[*NUMERIC, *CATEGORICAL])
    expected = pipeline.predict_proba(frame)
    return {
        "rows": len(batch),
        "rows_with_nulls": int(frame.isna().any(axis=1).sum()),
        "max_abs_diff": float(np.max(np.abs(ours - expected))),
        "labels_differing": int(np.sum(ours.argmax(axis=1) != expected.argmax(axis=1))),
    }


def build(
    figures: dict[str, dict[str, float]],
    got: dict[str, dict[str, Any]],
    parity: dict[str, Any],
    args: argparse.Namespace,
    duration: float,
) -> dict[str, Any]:
    lean, ours = figures[LEAN], figures[OURS]
    ratios = {figure: ours[figure] / lean[figure] for figure in TARGETS}
    spread = {
        figure: sorted(
            o[figure] / b[figure]
            for o, b in zip(got[OURS]["rounds"], got[LEAN]["rounds"], strict=True)
        )
        for figure in TARGETS
    }
    met = {figure: ratios[figure] <= target for figure, target in TARGETS.items()}
    parity_ok = parity["max_abs_diff"] <= 1e-9 and parity["labels_differing"] == 0
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{'pinned to CPU ' + str(args.cpu) if args.cpu is not None else 'workers not pinned'}"
    )
    lines = [
        f"Measured by `python -m benchmarks.frame_pipeline` (run by `make bench`) on "
        f"{time.strftime('%Y-%m-%d')} ({machine}; {args.rounds} interleaved rounds, "
        f"{duration:.0f} s). The issue-21 pipeline on Palmer penguins, packaged by "
        "`training.package`; the baseline loads the same pipeline with joblib and calls "
        "`predict_proba` on a DataFrame of the request's records.",
        "",
        f"| figure | {LEAN} | {OURS} | ratio | target | rounds, lowest to highest | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure, target in TARGETS.items():
        shown = " ".join(f"{r:.2f}" for r in spread[figure])
        lines.append(
            f"| {figure} | {lean[figure]:,.3f} ms | {ours[figure]:,.3f} ms | "
            f"{ratios[figure]:.3f}x | <= {target}x | {shown} | {'yes' if met[figure] else 'no'} |"
        )
    lines += [
        "",
        f"Parity through our handler on {parity['rows']} records ({parity['rows_with_nulls']} "
        f"with nulls): max abs diff {parity['max_abs_diff']:.1e}, "
        f"{parity['labels_differing']} labels differing ({'yes' if parity_ok else 'no'}: "
        "<= 1e-9, none differing).",
        "",
    ]
    return {
        "figures": figures,
        "ratios": ratios,
        "rounds": spread,
        "parity": parity,
        "targets_met": all(met.values()) and parity_ok,
        "markdown": "\n".join(lines),
    }


if __name__ == "__main__":
    sys.exit(main())

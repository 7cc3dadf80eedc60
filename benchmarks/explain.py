"""Explanations on the churn GBM (200 trees of depth 4): ours against shap, in one run.

    python -m benchmarks.explain [--rounds 7] [--cold-runs 10] [--cpu N] [--out build/bench]

The committed churn v1 pipeline (StandardScaler, then GradientBoostingClassifier with 200
trees of depth 4), compiled as packaging compiles it (with ``cover``). Figures, each the
median over interleaved rounds (ours and shap alternate within each round, so a noise
spike on a shared machine lands on both):

* 1 row explained (``Explainer.explain``, model only; the handler adds its own overhead);
* 100 rows: ours, and ``shap.TreeExplainer(model, feature_perturbation=
  "tree_path_dependent").shap_values`` on the same rows in the scaled space; the ratio;
* the explainer's build (first ``explain`` request of a warm function) and the import
  of ``inference.explain`` in a fresh interpreter;
* the load of the archive with and without ``cover`` (the cold-start cost of carrying it)
  and the two archive sizes;
* through the handler (``benchmarks/explain_handler.py``): 1 row warm with ``"explain":
  true`` and without (``inference.handler.handler``, a Function URL event); the cold start
  of fresh processes serving the archive with ``cover`` and without it, alternated
  (``--cold-runs`` pairs, pinned like the rest); and the compiled image's Python packages.

The measuring runs in a child process (pinned with ``--cpu``, as ``make bench`` pins its
workers: a Lambda function below 1,769 MB has less than one vCPU). Wall-clock times; CPU
times are printed beside them. Writes ``explain.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import explain_handler

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
MODEL, VERSION = "churn", "v1"
# The targets: 1 row through the handler within 5 ms; 100 rows no slower than shap.
TARGET_ONE_ROW_MS = 5.0
TARGET_RATIO = 1.0


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def _median(samples: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "wall_ms": round(statistics.median(s[0] for s in samples), 4),
        "cpu_ms": round(statistics.median(s[1] for s in samples), 4),
    }


def _import_ms() -> float:
    """``import inference.explain`` in a fresh interpreter that has loaded numpy already.

    Byte-compiled first, as the image's ``compileall`` step does.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    module = ROOT / "lambda_src" / "inference" / "explain.py"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(module)], env=env, check=True)
    script = (
        "import time, numpy, inference.compiled_pipeline\n"
        "t = time.perf_counter(); import inference.explain\n"
        "print((time.perf_counter() - t) * 1e3)\n"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", script],
                env={**env, "PYTHONPATH": str(ROOT / "lambda_src")},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(5)
    ]
    return round(statistics.median(runs), 3)


def measure(rounds: int, out_dir: Path) -> dict[str, Any]:
    """Every figure but the cold starts, measured in this process; writes the archives
    with and without ``cover`` and the request's record into ``out_dir`` for them."""
    import joblib
    import numpy as np
    import shap  # type: ignore[import-untyped]

    from inference import compiled_model, explain
    from inference.compiled_pipeline import CompiledPipeline
    from serving.artifacts import verify_version
    from training import golden as golden_set
    from training.compile import compile_pipeline

    version_dir = ROOT / "model_artifacts" / MODEL / VERSION
    problems = verify_version(version_dir)
    if problems:  # a pickle is loaded below: only the bytes the manifest pins
        raise SystemExit("; ".join(problems))
    payload = joblib.load(version_dir / "model.joblib")
    pipeline = payload["pipeline"]
    golden = json.loads((version_dir / "golden.json").read_text())
    rows = np.asarray(golden["features"], dtype=np.float64)[:100]
    data = compile_pipeline(
        pipeline, model_name=MODEL, model_version=VERSION, features=payload["features"]
    )
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    estimator = pipeline[-1]
    without = _without_cover(data)

    builds, loads, loads_without = [], [], []
    for _ in range(max(rounds, 5)):
        builds.append(_timed(lambda: explain.build(model)))
        loads.append(_timed(lambda: compiled_model.load(data)))
        loads_without.append(_timed(lambda: compiled_model.load(without)))
    explainer = model.explainer()
    assert isinstance(explainer, explain.TreeExplainer)
    scaled = pipeline[:-1].transform(rows)
    reference = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    ours = explainer.explain(rows)
    theirs = np.asarray(reference.shap_values(scaled))
    parity = float(np.max(np.abs(ours.contributions[:, :, 0] - theirs)))

    one, hundred, shap_hundred = [], [], []
    for _ in range(rounds):
        one += [_timed(lambda: explainer.explain(rows[:1])) for _ in range(200)]
        for _ in range(10):
            hundred.append(_timed(lambda: explainer.explain(rows)))
            shap_hundred.append(_timed(lambda: reference.shap_values(scaled)))
    figures: dict[str, Any] = {
        "one_row": _median(one),
        "hundred_rows": _median(hundred),
        "shap_hundred_rows": _median(shap_hundred),
        "build": _median(builds),
        "import_ms": _import_ms(),
        "load_with_cover": _median(loads),
        "load_without_cover": _median(loads_without),
        "archive_bytes": len(data),
        "archive_bytes_without_cover": len(without),
        "parity_max_abs_diff": parity,
        "table_entries": 0 if explainer.table is None else int(explainer.table.size),
    }
    ratio = figures["hundred_rows"]["wall_ms"] / figures["shap_hundred_rows"]["wall_ms"]
    figures["ratio"] = round(ratio, 3)
    (out_dir / explain_handler.WITH_COVER).write_bytes(data)
    (out_dir / explain_handler.WITHOUT_COVER).write_bytes(without)
    record = golden_set.read(version_dir).instances()[0]
    (out_dir / "record.json").write_text(json.dumps(record))
    X = np.array([[record[f["name"]] for f in payload["features"]]], dtype=np.float64)
    engine = explainer.explain(X).contributions[0, :, 0]
    names = [f["name"] for f in payload["features"]]
    figures["handler"] = explain_handler.warm(
        out_dir / explain_handler.WITH_COVER,
        data,
        record,
        dict(zip(names, engine.tolist(), strict=True)),
        rounds,
        _timed,
    )
    return figures


def _without_cover(data: bytes) -> bytes:
    """The same archive as one written before explanations: no ``cover`` array."""
    import io

    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        contents = {name: archive[name] for name in archive.files if name != "cover"}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **contents)
    return buffer.getvalue()


def report(figures: dict[str, Any], machine: dict[str, Any]) -> str:
    def ms(key: str, within: dict[str, Any] | None = None) -> str:
        f = (within or figures)[key]
        return f"{f['wall_ms']:.3f} ms (CPU {f['cpu_ms']:.3f} ms)"

    handler, cold, deps = figures["handler"], figures["cold"], figures["dependencies"]
    through = handler["explain_one_row"]["wall_ms"]
    handler_line = (
        f"  1 row explained, handler:       {ms('explain_one_row', handler)}, "
        f"max |handler - engine| {handler['parity_max_abs_diff']:.1e}"
    )
    met = {
        "1 row <= 5 ms": through <= TARGET_ONE_ROW_MS,
        "100 rows ratio <= 1": figures["ratio"] <= TARGET_RATIO,
        "cold start within 10 %": cold["ratio"] <= explain_handler.TARGET_COLD_RATIO,
        "image packages numpy, orjson": deps["packages"] == ["numpy", "orjson"]
        and deps["explain_imports"] == ["numpy"],
    }
    lines = [
        f"explanations, churn GBM (200 trees, depth 4), {machine['machine']}, "
        f"{machine['cores']} cores, pinned CPU {machine['pinned_cpu']}, "
        f"load {machine['load_average_before']} before, {machine['load_average_after']} after",
        f"  1 row explained (engine only):  {ms('one_row')}",
        f"  1 row, handler, no explain:     {ms('one_row', handler)}",
        handler_line,
        f"  100 rows, ours:                 {ms('hundred_rows')}",
        f"  100 rows, shap.TreeExplainer:   {ms('shap_hundred_rows')}",
        f"  ratio ours / shap (wall):       {figures['ratio']:.3f} (target <= {TARGET_RATIO})",
        f"  explainer build (lazy):         {ms('build')}; built by plain requests: "
        f"{'no' if handler['explainer_lazy'] else 'YES'}",
        f"  import inference.explain:       {figures['import_ms']:.3f} ms",
        f"  archive load, with cover:       {ms('load_with_cover')}",
        f"  archive load, without cover:    {ms('load_without_cover')}",
        f"  archive bytes with / without:   {figures['archive_bytes']} / "
        f"{figures['archive_bytes_without_cover']}",
        f"  cold start, with cover:         {cold['with_cover_ms']:.1f} ms (median of "
        f"{cold['runs']} fresh processes)",
        f"  cold start, without cover:      {cold['without_cover_ms']:.1f} ms",
        f"  cold start ratio with / without: {cold['ratio']:.3f} "
        f"(target <= {explain_handler.TARGET_COLD_RATIO})",
        f"  image packages ({deps['requirements_file']}): {', '.join(deps['packages'])}; "
        f"inference/explain.py imports beyond the standard library: "
        f"{', '.join(deps['explain_imports'])}",
        f"  max |ours - shap| (100 rows):   {figures['parity_max_abs_diff']:.2e}",
        "  targets met: "
        + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in met.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument(
        "--cold-runs", type=int, default=10, help="fresh processes per archive (cold start)"
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin the measuring process")
    parser.add_argument("--out", type=Path, default=OUT, help="where explain.json goes")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.cold_runs < 1:
        parser.error("--rounds and --cold-runs must be 1 or more")
    if args.worker is not None:
        args.worker.write_text(json.dumps(measure(args.rounds, args.worker.parent)))
        return 0
    if args.cpu is not None and args.cpu not in os.sched_getaffinity(0):
        parser.error(f"--cpu {args.cpu} is not one of {sorted(os.sched_getaffinity(0))}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = args.out / "explain.json"
    load_before = os.getloadavg()[0]
    cpu = args.cpu
    command = [sys.executable, "-m", "benchmarks.explain", "--rounds", str(args.rounds)]
    subprocess.run(
        [*command, "--worker", str(result)],
        cwd=ROOT,
        check=True,
        # Pinned before numpy starts: its BLAS sees one CPU, as on a small Lambda function.
        preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
    )
    figures = json.loads(result.read_text())
    figures["cold"] = explain_handler.cold(args.out, args.cold_runs, cpu)
    figures["dependencies"] = explain_handler.image_dependencies()
    machine = {
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pinned_cpu": cpu,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
    }
    result.write_text(json.dumps({"figures": figures, "machine": machine}, indent=2) + "\n")
    print(report(figures, machine), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's report: each implementation's samples summarized, the figures table
(ours against the two baselines, with ratios), the targets and whether they are met, as
JSON and as the Markdown that docs/performance.md keeps.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.dependencies import IMAGE_ARCH, IMAGE_PYTHON

SEED, LEAN = "seed baseline", "lean baseline"
OURS = ("ours (sklearn)", "ours (compiled)")


def round_figures(colds: list[dict[str, Any]], warm: dict[str, Any]) -> dict[str, float]:
    """This round's value of every target figure, to show how far rounds disagree."""
    figures = {"cold_ms": statistics.median(c["cold_ms"] for c in colds)}
    for group in ("warm", "warm_cpu", "model_only"):
        for size, latencies in warm[group].items():
            figures[f"{group}:{size}:p50_ms"] = percentile(latencies, 0.5)
    return figures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(got: dict[str, Any], deps_mb: float | None) -> dict[str, Any]:
    return {
        "cold_ms": statistics.median(c["cold_ms"] for c in got["cold"]),
        "cold_import_ms": statistics.median(c["import_ms"] for c in got["cold"]),
        "cold_first_request_ms": statistics.median(c["first_request_ms"] for c in got["cold"]),
        "cold_runs": len(got["cold"]),
        "first_status": got["cold"][0]["first_status"],
        "warm": {
            size: {
                "p50_ms": percentile(values, 0.5),
                "p99_ms": percentile(values, 0.99),
                "samples": len(values),
            }
            for size, values in got["warm"].items()
        },
        "warm_cpu": {
            size: {"p50_ms": percentile(values, 0.5), "samples": len(values)}
            for size, values in got["warm_cpu"].items()
        },
        "model_only": {
            size: {"p50_ms": percentile(values, 0.5), "samples": len(values)}
            for size, values in got["model_only"].items()
        },
        "peak_rss_mb": max(got["rss"]),
        "log_bytes_per_request": got["log_bytes"],
        "parity_max_abs_diff": got["parity_max_abs_diff"],
        "parity_label_mismatches": got["parity_label_mismatches"],
        "deps_mb": deps_mb,
        "rounds": got["rounds"],
    }


ROWS: tuple[tuple[str, str, str], ...] = (
    ("cold start (median of fresh processes)", "cold_ms", "ms"),
    ("  of which imports + module init", "cold_import_ms", "ms"),
    ("  of which first request", "cold_first_request_ms", "ms"),
    ("warm p50, 1 record, through the handler", "warm:1:p50_ms", "ms"),
    ("warm p99, 1 record", "warm:1:p99_ms", "ms"),
    ("warm p50, batch of 100", "warm:100:p50_ms", "ms"),
    ("warm p99, batch of 100", "warm:100:p99_ms", "ms"),
    ("warm p50, batch of 1,000", "warm:1000:p50_ms", "ms"),
    ("warm p99, batch of 1,000", "warm:1000:p99_ms", "ms"),
    ("warm CPU time p50, 1 record (the process's own work)", "warm_cpu:1:p50_ms", "ms"),
    ("warm CPU time p50, batch of 100", "warm_cpu:100:p50_ms", "ms"),
    ("warm CPU time p50, batch of 1,000", "warm_cpu:1000:p50_ms", "ms"),
    ("model-only predict_proba p50, 1 row", "model_only:1:p50_ms", "ms"),
    ("model-only predict_proba p50, 1,000 rows", "model_only:1000:p50_ms", "ms"),
    ("peak RSS", "peak_rss_mb", "MB"),
    (f"image Python dependencies (cp{IMAGE_PYTHON}, {IMAGE_ARCH})", "deps_mb", "MB"),
    ("log bytes per request, 1 record", "log:1", "B"),
    ("log bytes per request, batch of 1,000", "log:1000", "B"),
)

# Issue 12's targets, for the runtime prod deploys, against the lean baseline.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("cold start <= 0.12x lean", "cold_ms", 0.12),
    ("warm p50 1 record <= 0.3x lean", "warm:1:p50_ms", 0.3),
    ("warm p50 batch of 100 <= 0.5x lean", "warm:100:p50_ms", 0.5),
    ("warm p50 batch of 1,000 <= 0.5x lean", "warm:1000:p50_ms", 0.5),
    ("model-only predict_proba, 1,000 rows <= 0.5x scikit-learn's", "model_only:1000:p50_ms", 0.5),
)
PROD_RUNTIME = "ours (compiled)"


def metric(result: dict[str, Any], key: str) -> float | None:
    if key.startswith(("warm:", "warm_cpu:", "model_only:")):
        group, size, stat = key.split(":")
        if group not in result:
            return None  # a run recorded before its benchmark measured this figure
        return float(result[group][size][stat])
    if key.startswith("log:"):
        return float(result["log_bytes_per_request"][key.split(":")[1]])
    value = result[key]
    return None if value is None else float(value)


def build_report(
    results: dict[str, dict[str, Any]],
    *,
    machine: dict[str, Any],
    rounds: int,
    quick: bool,
    iterations: dict[str, dict[str, int]],
    parity_rows: int,
) -> dict[str, Any]:
    seed, lean = results[SEED], results[LEAN]

    def fmt(value: float | None, unit: str) -> str:
        if value is None:
            return "n/a"
        if unit == "B":
            return f"{value:,.0f} B"
        return f"{value:,.3f} {unit}" if value < 1 else f"{value:,.2f} {unit}"

    def ratio(value: float | None, baseline: float | None) -> str:
        return "n/a" if value is None or not baseline else f"{value / baseline:.3f}x"

    header = "| figure | seed baseline | lean baseline | " + " | ".join(
        f"{name} | / lean | / seed" for name in OURS
    )
    table = [header + " |", "|---" * (3 + 3 * len(OURS)) + "|"]
    for label, key, unit in ROWS:
        cells = [fmt(metric(seed, key), unit), fmt(metric(lean, key), unit)]
        for name in OURS:
            value = metric(results[name], key)
            if unit == "B":  # the baselines log nothing: a ratio would say nothing
                cells += [fmt(value, unit), "", ""]
            else:
                cells += [
                    fmt(value, unit),
                    ratio(value, metric(lean, key)),
                    ratio(value, metric(seed, key)),
                ]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    table.append(
        f"| parity on {parity_rows:,} holdout rows through the handler (max abs diff, labels "
        "differing) | - | - | "
        + " | ".join(
            f"{results[n]['parity_max_abs_diff']:.2g}, {results[n]['parity_label_mismatches']} | |"
            for n in OURS
        )
        + " |"
    )
    ours = results[PROD_RUNTIME]
    targets: dict[str, dict[str, Any]] = {}
    for name, key, bound in TARGETS:
        got = metric(ours, key) / metric(lean, key)  # type: ignore[operator]
        per_round = sorted(
            mine[key] / theirs[key]
            for mine, theirs in zip(ours.get("rounds", []), lean.get("rounds", []), strict=False)
        )
        targets[name] = {
            "ratio": round(got, 4),
            "met": got <= bound,
            "rounds": [round(r, 4) for r in per_round],
        }
    parity_ok = ours["parity_label_mismatches"] == 0 and ours["parity_max_abs_diff"] <= 1e-12
    targets["same label on every holdout row, max abs diff <= 1e-12"] = {
        "ratio": None,
        "met": parity_ok,
        "rounds": [],
    }
    pinned = (
        f"every worker pinned to CPU {machine['pinned_cpu']}"
        if machine["pinned_cpu"] is not None
        else "workers not pinned"
    )
    markdown = "\n".join(
        [
            f"Measured by `make bench` on {machine['date']} ({machine['machine']}, "
            f"{machine['cores']} cores, Python {machine['python']}, {pinned}; load average "
            f"{machine['load_average_before']} before, {machine['load_average_after']} after"
            f"{'; QUICK run' if quick else ''}). {rounds} interleaved rounds; iterations per "
            f"round: warm {iterations['warm']}, model-only {iterations['model_only']}. Ratios "
            "are ours / baseline in the same run; model-only ratios compare with scikit-learn's "
            "`predict_proba` in the baselines.",
            "",
            *table,
            "",
            f"| target ({PROD_RUNTIME}, the runtime prod deploys) | ratio | rounds, lowest to "
            "highest | met |",
            "|---|---|---|---|",
            *[
                f"| {name} | {'' if t['ratio'] is None else format(t['ratio'], '.3f') + 'x'} | "
                f"{' '.join(format(r, '.2f') for r in t['rounds'])} | "
                f"{'yes' if t['met'] else 'NO'} |"
                for name, t in targets.items()
            ],
            "",
        ]
    )
    return {
        "machine": machine,
        "rounds": rounds,
        "quick": quick,
        "iterations": iterations,
        "results": results,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets.values()),
        "markdown": markdown,
    }

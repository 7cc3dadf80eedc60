"""`make soak`: many warm invocations in one process, mixed valid and invalid.

Prints the resident-set growth from the first tenth to the end and the p99 latency of
the first and last tenth. Targets: growth under 10 MB, p99 drift within 20 %.

    python -m benchmarks.soak [--invocations 100000] [--runtime compiled|sklearn]
"""

from __future__ import annotations

import argparse
import array
import contextlib
import io
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from training.schema import EXAMPLE_RECORDS

ROOT = Path(__file__).resolve().parent.parent
# Run as a module, not under pytest: the image's package path is added here.
sys.path.insert(0, str(ROOT / "lambda_src"))


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def url_event(body: str, *, base64: bool = False) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/"}, "requestId": "soak"},
        "body": body,
        "isBase64Encoded": base64,
    }


GOOD = dict(EXAMPLE_RECORDS[0])


def request_mix(rng: random.Random) -> list[tuple[str, dict[str, Any], int]]:
    """(kind, event, expected status) for each kind of request in the soak."""
    batch = [dict(GOOD, tenure_months=rng.randint(0, 72)) for _ in range(10)]
    return [
        ("single", url_event(json.dumps(GOOD)), 200),
        ("batch10", url_event(json.dumps({"instances": batch})), 200),
        ("direct", dict(GOOD), 200),
        (
            "missing-field",
            url_event(json.dumps({k: v for k, v in GOOD.items() if k != "num_products"})),
            400,
        ),
        ("out-of-range", url_event(json.dumps(dict(GOOD, has_tech_support=3))), 400),
        ("nan", url_event('{"tenure_months": NaN}'), 400),
        ("bad-json", url_event("{not json"), 400),
        ("bad-base64", url_event("%%%", base64=True), 400),
        ("warmup", {"_warmup": True}, 200),
    ]


FULL_RUN = 100_000  # what docs/performance.md's figures come from; shorter runs are smoke tests
WEIGHTS = [50, 10, 10, 6, 6, 5, 5, 4, 4]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--invocations", type=int, default=100_000)
    from inference.runtimes import NAMES

    parser.add_argument("--runtime", choices=NAMES, default="compiled")
    args = parser.parse_args(argv)
    manifest = json.loads((ROOT / "model_artifacts/churn/v1/manifest.json").read_text())
    artifact = manifest["artifacts"][args.runtime]
    os.environ.update(
        {
            "MODEL_PATH": str(ROOT / "model_artifacts/churn/v1" / artifact["file"]),
            "MODEL_SHA256": artifact["sha256"],
            "MODEL_RUNTIME": args.runtime,
            "MODEL_NAME": "churn",
            "MODEL_VERSION": "v1",
        }
    )
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        from inference import handler as module  # init: loads the model
    rng = random.Random(7)
    mix = request_mix(rng)
    kinds = rng.choices(range(len(mix)), weights=WEIGHTS, k=args.invocations)
    # Preallocated: the soak's own bookkeeping must not show up as the handler's growth.
    latencies = array.array("d", bytes(8 * args.invocations))
    tenth = max(1, args.invocations // 10)
    rss_after_first_tenth = 0.0
    wrong: dict[str, int] = {}
    print(f"soak: {args.invocations:,} invocations, runtime {args.runtime}", flush=True)
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for index, kind in enumerate(kinds):
            name, event, expected = mix[kind]
            began = time.perf_counter()
            response = module.handler(event, None)
            latencies[index] = time.perf_counter() - began
            if response.get("statusCode") != expected:
                wrong[name] = wrong.get(name, 0) + 1
            if index + 1 == tenth:
                rss_after_first_tenth = rss_mb()
            if (index + 1) % (tenth * 2) == 0:
                print(f"  {index + 1:,} done, RSS {rss_mb():.1f} MB", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    rss_end = rss_mb()

    def p99_ms(values: array.array[float]) -> float:
        ordered = sorted(values)
        return ordered[int(0.99 * (len(ordered) - 1))] * 1000

    first, last = p99_ms(latencies[:tenth]), p99_ms(latencies[-tenth:])
    growth = rss_end - rss_after_first_tenth
    drift = last / first - 1
    print(f"elapsed {elapsed:.1f} s ({args.invocations / elapsed:,.0f} invocations/s)")
    print(
        f"RSS after first 10 %: {rss_after_first_tenth:.1f} MB, at end: {rss_end:.1f} MB, "
        f"growth {growth:+.2f} MB (target < 10 MB)"
    )
    print(
        f"p99 latency first 10 %: {first:.3f} ms, last 10 %: {last:.3f} ms, "
        f"drift {drift:+.1%} (target within 20 %)"
    )
    print(f"responses with an unexpected status: {sum(wrong.values())} {wrong or ''}")
    ok = growth < 10 and drift <= 0.2 and not wrong
    print("soak targets met" if ok else "soak targets NOT met")
    if args.invocations < FULL_RUN:
        print(f"(a short run: {FULL_RUN:,} invocations or more update benchmarks/results/)")
        return 0 if ok else 1
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"soak-{args.runtime}.json").write_text(
        json.dumps(
            {
                "command": f"python -m benchmarks.soak --invocations {args.invocations} "
                f"--runtime {args.runtime}",
                "date": time.strftime("%Y-%m-%d"),
                "invocations": args.invocations,
                "rss_after_first_tenth_mb": round(rss_after_first_tenth, 2),
                "rss_end_mb": round(rss_end, 2),
                "rss_growth_mb": round(growth, 2),
                "p99_first_tenth_ms": round(first, 4),
                "p99_last_tenth_ms": round(last, 4),
                "p99_drift": round(drift, 4),
                "unexpected_statuses": wrong,
                "targets_met": ok,
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

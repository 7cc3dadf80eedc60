"""The A/B false-verdict simulation: one model on both sides, batched correlated requests.

Used by tests/analysis/test_outcomes_simulation.py (a fast seeded run) and, for the
figure in docs/capture-and-drift.md, from the command line:
``python -m tests.analysis.outcomes_simulation RUNS SEED ROUNDS BY_ROWS``.
"""

from __future__ import annotations

import sys

import numpy as np
from threadpoolctl import threadpool_limits

from serving import bootstrap, stats
from serving.outcomes import Joined, compare

REQUESTS = 120  # both sides together, half each on average (a 50/50 split)
BATCH = (4, 20)  # rows per request, uniform
SCORE_SD = 1.0  # a request's shared part of its rows' logits (customers of one caller)
ROW_SD = 1.0  # so two rows of one request have score correlation 0.5
OUTCOME_SD = 1.0  # a request's shared outcome effect the model does not see
METRICS = [stats.roc_auc, stats.log_loss, stats.brier, stats.expected_calibration_error]


def canary(rng: np.random.Generator) -> Joined:
    """One A/B test of the same model on both sides, as ``outcomes.join`` would give it."""
    sizes = rng.integers(BATCH[0], BATCH[1] + 1, REQUESTS)
    request = np.repeat(np.arange(REQUESTS), sizes)
    shared = rng.normal(0, SCORE_SD, REQUESTS)[request]
    logit = shared + rng.normal(0, ROW_SD, request.size) - 1.0
    p = 1 / (1 + np.exp(-logit))
    truth = logit + rng.normal(0, OUTCOME_SD, REQUESTS)[request]
    y = (rng.random(request.size) < 1 / (1 + np.exp(-truth))).astype(int)
    side = (rng.random(REQUESTS) < 0.5)[request]
    seconds = request.astype(float)  # requests in order, one a second
    by_version, requests, times, spans = {}, {}, {}, {}
    for version, rows in (("v1", ~side), ("v2", side)):
        by_version[version] = (y[rows].tolist(), p[rows].tolist())
        requests[version] = [f"r{r}" for r in request[rows]]
        times[version] = seconds[rows].tolist()
        spans[version] = (float(seconds[rows].min()), float(seconds[rows].max()))
    return Joined(by_version, int(request.size), 0, 0, 0, "binary", requests, times, spans)


def false_verdicts(runs: int, seed: int, rounds: int, *, by_rows: int = 0) -> tuple[float, float]:
    """(share of ``runs`` with any "better" verdict by tools.outcomes' rule, the same share
    over the first ``by_rows`` runs by the old rule: rows resampled, no correction across
    the four metrics; NaN when ``by_rows`` is 0)."""
    rng = np.random.default_rng(seed)
    new = old = 0
    with threadpool_limits(1):  # small products: BLAS threads only contend
        for run in range(runs):
            joined = canary(rng)
            report = compare(joined, rounds=rounds, seed=run)
            new += any(d.interval.excludes_zero() for d in report.differences["v2"])
            if run < by_rows:
                rows = [
                    bootstrap.clustered(*joined.by_version[v], np.arange(len(joined.times[v])))
                    for v in ("v1", "v2")
                ]
                compared = bootstrap.cluster_compare(METRICS, *rows, rounds=rounds, seed=run)
                old += any(c.difference.excludes_zero() for c in compared)
    return new / runs, old / by_rows if by_rows else float("nan")


if __name__ == "__main__":
    runs, seed, rounds, by_rows = (int(a) for a in sys.argv[1:5])
    new, old = false_verdicts(runs, seed, rounds, by_rows=by_rows)
    print(f"runs {runs}, seed {seed}, rounds {rounds}: any false verdict {new:.4f}; "
          f"rows resampled, no correction ({by_rows} runs): {old:.4f}")  # fmt: skip

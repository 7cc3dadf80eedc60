"""The canary rule's false-alarm budget and detection, by a seeded simulation.

A canary of 2 hours, the evaluator looking every 5 minutes at everything served so far
(24 looks, nested data), 7 requests a second of which 10 % go to the candidate (every
request captured), 100 rows a request with an intra-request correlation of 0.2: each row's
score is ``sqrt(0.2) u + sqrt(0.8) e`` (``u`` the request's, ``e`` the row's, standard
normal), positive above the quantile that gives a 22 % positive rate.

The harm test runs on each look's sufficient statistics (the sides' request counts, sums
and sums of squares of the requests' positive shares) through the same
``sequential.always_valid_p`` as ``serving.canary.decide``; one look is checked against
``decide`` itself. PSI is rank-based (quantile bins of the stable side), so under no change
any continuous request summary gives it the same law: the page simulation draws uniform
summaries and bins them as ``histograms.numeric_histogram`` does, checked against
``sequential.prediction_psi`` on a few runs.

Reproduce the figures of docs/quality-gate.md:
``.venv/bin/python -m pytest -q -s tests/analysis/test_canary_simulation.py -k figures``
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr, ndtri
from scipy.stats import binom

from serving import canary, histograms, sequential

SEED = 20261207
LOOKS = 24  # 2 hours, every 5 minutes
LOOK_SECONDS = 300
RATE = 7.0  # requests a second, both sides
WEIGHT = 0.1
ROWS = 100
RHO = 0.2
BASE, SHIFTED = 0.22, 0.30
HARM_RUNS = 2000
PSI_RUNS = 120
T = canary.Thresholds()

STABLE_PER_LOOK = round(RATE * LOOK_SECONDS * (1 - WEIGHT))  # 1890
CANDIDATE_PER_LOOK = round(RATE * LOOK_SECONDS * WEIGHT)  # 210


def share_distribution(rate: float) -> np.ndarray:
    """P(a request's positive share is k / ROWS), k = 0..ROWS: rows are Bernoulli given the
    request's ``u`` (Gauss-Hermite quadrature over ``u``), so requests' shares are iid
    draws from this distribution and a side's counts per share are multinomial."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(150)
    weights = weights / np.sqrt(2 * np.pi)
    p_row = ndtr((np.sqrt(RHO) * nodes - ndtri(1 - rate)) / np.sqrt(1 - RHO))
    pmf = weights @ binom.pmf(np.arange(ROWS + 1)[None, :], ROWS, p_row[:, None])
    return np.asarray(pmf / pmf.sum())


SHARES = np.arange(ROWS + 1) / ROWS


def positive_shares(rng: np.random.Generator, size: int, rate: float) -> np.ndarray:
    """``size`` requests' shares of rows predicted positive (rows correlated within each)."""
    return rng.choice(SHARES, size=size, p=share_distribution(rate))


def harm_p_values(
    rng: np.random.Generator, runs: int, candidate_rate: float, looks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Always-valid p-values, (runs, looks), of canaries with this candidate rate; and the
    fixed-sample two-sided p-values of the same looks (what the mSPRT replaces)."""
    sides = (
        ("stable", STABLE_PER_LOOK, share_distribution(BASE)),
        ("candidate", CANDIDATE_PER_LOOK, share_distribution(candidate_rate)),
    )
    counts = {side: np.zeros((runs, ROWS + 1)) for side, _, _ in sides}
    found = np.empty((runs, looks))
    naive = np.empty((runs, looks))
    for look in range(looks):
        stats = {}
        for side, per_look, pmf in sides:
            counts[side] += rng.multinomial(per_look, pmf, size=runs)
            n = per_look * (look + 1)
            mean = counts[side] @ SHARES / n
            variance = (counts[side] @ SHARES**2 - n * mean * mean) / (n - 1)
            stats[side] = (n, mean, variance)
        (ns, ms, vs), (nc, mc, vc) = stats["stable"], stats["candidate"]
        tau = T.tau_sd * np.sqrt(vs)
        found[:, look] = sequential.always_valid_p(mc - ms, vs / ns + vc / nc, tau)
        naive[:, look] = 2 * ndtr(-np.abs(mc - ms) / np.sqrt(vs / ns + vc / nc))
    return found, naive


def test_the_vectorised_harm_test_is_the_rules_own() -> None:
    rng = np.random.default_rng(SEED)
    stable = positive_shares(rng, 400, BASE)
    candidate = positive_shares(rng, 60, 0.27)
    summaries = [
        sequential.RequestSummaries("binary", ("positive share", "mean probability"),
                                    np.column_stack([x, x]), x.size * ROWS)
        for x in (stable, candidate)
    ]  # fmt: skip
    (test,) = canary.decide(*summaries, T).harm
    n = (stable.size, candidate.size)
    variance = stable.var(ddof=1) / n[0] + candidate.var(ddof=1) / n[1]
    expected = sequential.always_valid_p(
        candidate.mean() - stable.mean(), variance, T.tau_sd * stable.std(ddof=1)
    )
    assert test.p_value == pytest.approx(float(expected), rel=1e-9)
    assert 0 < test.p_value < 1  # a test that can go either way on this sample


def rank_psi(stable: np.ndarray, candidate: np.ndarray, bins: int) -> np.ndarray:
    """PSI per run (rows of the arrays) of continuous samples, binned as
    ``numeric_histogram`` does: inner edges the stable side's inverted-CDF quantiles."""
    runs, n = stable.shape
    index = np.ceil(np.linspace(0, 1, bins + 1)[1:-1] * n).astype(int) - 1
    edges = np.partition(stable, index, axis=1)[:, index]  # (runs, bins - 1)
    # A bin holds its lower edge: stable position i falls in bin #(index <= i).
    expected = np.diff(np.concatenate([[0], index, [n]])) / n
    offset = np.arange(runs)[:, None] * 2.0  # values in [0, 1): runs never mix
    where = np.searchsorted(
        (edges.astype(np.float64) + offset).ravel(),
        (candidate.astype(np.float64) + offset).ravel(),
        "right",
    )
    where = where.reshape(candidate.shape) - np.arange(runs)[:, None] * (bins - 1)
    actual = np.stack([np.bincount(w, minlength=bins) for w in where]) / candidate.shape[1]
    e, a = np.maximum(expected, histograms.PSI_FLOOR), np.maximum(actual, histograms.PSI_FLOOR)
    return np.asarray(np.sum((a - e) * np.log(a / e), axis=1))


def pages(rng: np.random.Generator, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """(paged per look, PSI per look), (runs, looks), of healthy canaries."""
    stable = rng.uniform(size=(runs, STABLE_PER_LOOK * LOOKS)).astype(np.float32)
    candidate = rng.uniform(size=(runs, CANDIDATE_PER_LOOK * LOOKS)).astype(np.float32)
    psi = np.full((runs, LOOKS), np.nan)
    paged = np.zeros((runs, LOOKS), dtype=bool)
    for look in range(LOOKS):
        ns, nc = STABLE_PER_LOOK * (look + 1), CANDIDATE_PER_LOOK * (look + 1)
        if min(ns, nc) < T.psi_min_requests:
            continue
        psi[:, look] = rank_psi(stable[:, :ns], candidate[:, :nc], T.bins)
        noise = sequential.psi_noise(ns, nc, T.bins, T.page_alpha)
        paged[:, look] = (psi[:, look] >= T.psi_watch) & (psi[:, look] > noise)
    check = [0, 1]
    for run in check:
        summaries = [
            sequential.RequestSummaries("regression", ("mean value",), x[:, None], x.size)
            for x in (stable[run], candidate[run])
        ]
        assert psi[run, -1] == pytest.approx(sequential.prediction_psi(*summaries), rel=1e-9)
    return paged, psi


def figures() -> dict[str, float]:
    rng = np.random.default_rng(SEED)
    null, naive = harm_p_values(rng, HARM_RUNS, BASE, LOOKS)
    shifted, _ = harm_p_values(rng, HARM_RUNS, SHIFTED, 6)  # 30 minutes
    paged, _ = pages(rng, PSI_RUNS)
    return {
        "rollback": float(np.mean((null <= T.alpha).any(axis=1))),
        "page": float(np.mean(paged.any(axis=1))),
        "caught_30min": float(np.mean((shifted <= T.alpha).any(axis=1))),
        "caught_first_look": float(np.mean(shifted[:, 0] <= T.alpha)),
        "naive_rollback": float(np.mean((naive <= T.alpha).any(axis=1))),
    }


@pytest.fixture(scope="module")
def measured() -> dict[str, float]:
    return figures()


def test_a_healthy_canary_is_rarely_rolled_back(measured: dict[str, float]) -> None:
    assert measured["rollback"] <= 0.01


def test_the_same_looks_with_a_fixed_sample_test_break_the_budget(
    measured: dict[str, float],
) -> None:
    """The simulation can fail a rule: a p < 0.01 test repeated at each of the 24 looks
    (requests as the unit, still) rolls back far more than 1 % of healthy canaries."""
    assert measured["naive_rollback"] > 0.03


def test_a_healthy_canary_rarely_pages(measured: dict[str, float]) -> None:
    assert measured["page"] <= 0.05


def test_a_positive_rate_shift_is_caught_within_30_minutes(measured: dict[str, float]) -> None:
    assert measured["caught_30min"] >= 0.90


def test_figures(measured: dict[str, float]) -> None:
    """Prints the figures under -s (docs/quality-gate.md quotes them)."""
    assert set(measured) == {
        "rollback",
        "page",
        "caught_30min",
        "caught_first_look",
        "naive_rollback",
    }
    print(f"seed {SEED}: {HARM_RUNS} harm runs, {PSI_RUNS} PSI runs: {measured}")

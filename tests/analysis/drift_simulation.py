"""The drift alarm's false-alarm rate and power, by seeded simulation (numpy, vectorised).

A schema of three continuous features and three integer features with few values (5, 12
with a rare value, and 20: each binned as categories, one bin per value plus one for
unseen values). The reference is 4,000 rows drawn from the population, binned as training
bins it (``serving.histograms.reference_histogram``). Each hourly run sees ``requests``
requests of 1 to 20 rows (uniform), the rows of a request correlated (intra-request
correlation ``rho``, by a shared latent normal per request and feature). Each run is
judged by serving.drift's rule (request-weighted shares, the reference's own PSI spread at
that many requests, Holm over the features), and ``DriftedFeatures >= 1`` is the alarm.

python -m tests.analysis.drift_simulation prints the figures of docs/capture-and-drift.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from serving import drift, histograms

SEED = 2022
REFERENCE_ROWS = 4_000
RHO = 0.2
MAX_ROWS_PER_REQUEST = 20
# Integer features: the probability of each value.
INTEGER_FEATURES = {
    "contract_type": np.array([0.45, 0.25, 0.15, 0.1, 0.05]),
    "support_calls": np.array([0.005, *([0.995 / 11] * 11)]),
    "tenure_years": np.linspace(1.0, 3.0, 20) / np.linspace(1.0, 3.0, 20).sum(),
}
CONTINUOUS_FEATURES = ("monthly_charges", "usage_minutes", "age")
FEATURES = (*CONTINUOUS_FEATURES, *INTEGER_FEATURES)


@dataclass(frozen=True)
class Shift:
    """A change of the live population: ``mean`` standard deviations added to the
    feature's latent normal (an integer feature's values move up with it)."""

    feature: str
    mean: float = 0.0


def values_of(name: str, latent: NDArray[np.float64]) -> NDArray[np.float64]:
    """The feature's values from standard normal latents (the integer ones by quantiles)."""
    if name in CONTINUOUS_FEATURES:
        return latent
    cumulative = np.cumsum(INTEGER_FEATURES[name])[:-1]
    return np.searchsorted(cumulative, ndtr(latent), side="right").astype(np.float64)


def reference(rng: np.random.Generator) -> dict[str, histograms.Histogram]:
    return {
        name: histograms.reference_histogram(
            values_of(name, rng.standard_normal(REFERENCE_ROWS)),
            integer=name in INTEGER_FEATURES,
        )
        for name in FEATURES
    }


@dataclass(frozen=True)
class Runs:
    drifted: NDArray[np.int64]  # DriftedFeatures of each run
    max_psi: NDArray[np.float64]  # MaxFeaturePSI of each run (the old alarm's metric)
    psi: NDArray[np.float64]  # each run's PSI per feature (runs x FEATURES)


def drifted_features(
    runs: int,
    requests: int,
    *,
    seed: int = SEED,
    rho: float = RHO,
    max_rows: int = MAX_ROWS_PER_REQUEST,
    shift: Shift | None = None,
    thresholds: drift.DriftThresholds | None = None,
) -> Runs:
    """``runs`` hourly runs of ``requests`` requests of 1 to ``max_rows`` rows each."""
    t = thresholds or drift.DriftThresholds(min_requests=1)
    rng = np.random.default_rng(seed)
    bins = reference(rng)
    sizes = rng.integers(1, max_rows + 1, size=(runs, requests))
    request = np.repeat(np.arange(runs * requests), sizes.ravel())
    run = request // requests
    weight = 1.0 / sizes.ravel()[request]
    raw = np.empty((runs, len(FEATURES)))
    psi = np.empty((runs, len(FEATURES)))
    for column, name in enumerate(FEATURES):
        shared = rng.standard_normal(runs * requests)[request]
        latent = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal(request.size)
        values = values_of(name, latent + (shift.mean if shift and shift.feature == name else 0))
        histogram = bins[name]
        k = len(histogram.proportions)
        index = histogram.bin_index(values)
        shares = np.bincount(run * k + index, weights=weight, minlength=runs * k)
        psi[:, column] = drift.psi_rows(
            np.asarray(histogram.proportions), shares.reshape(runs, k) / requests
        )
        raw[:, column] = drift.p_values(histogram, psi[:, column], requests)
    flagged = drift.verdicts(psi, raw, drift.holm(raw), t) == "drift"
    return Runs(np.asarray(flagged.sum(axis=1), dtype=np.int64), psi.max(axis=1), psi)


def prediction_alarms(runs: int, requests: int, *, seed: int = SEED) -> float:
    """P(PredictionPSI > 0.25 | no drift) per run, ten deciles, one value per request (the
    worst case): what the prediction-drift alarm, which compares PSI with 0.25 alone, costs."""
    rng = np.random.default_rng(seed)
    histogram = histograms.numeric_histogram(rng.standard_normal(REFERENCE_ROWS))
    k = len(histogram.proportions)
    index = histogram.bin_index(rng.standard_normal(runs * requests))
    run = np.repeat(np.arange(runs), requests)
    shares = np.bincount(run * k + index, minlength=runs * k).reshape(runs, k) / requests
    psi = drift.psi_rows(np.asarray(histogram.proportions), shares)
    return float(np.mean(psi > histograms.PSI_ALARM))


def main() -> None:
    runs = 4_000
    print(f"seed {SEED}, {runs} hourly runs per line, intra-request correlation {RHO}")
    print("no drift: P(DriftedFeatures >= 1) per run (old rule: P(MaxFeaturePSI > 0.25) of rows)")
    for max_rows, rho in ((1, 1.0), (MAX_ROWS_PER_REQUEST, RHO)):
        for requests in (10, 50, 100, drift.MIN_REQUESTS_FLOOR, drift.DEFAULT_MIN_REQUESTS):
            result = drifted_features(runs, requests, rho=rho, max_rows=max_rows)
            new, old = np.mean(result.drifted >= 1), np.mean(result.max_psi > 0.25)
            # The old rule read rows, not requests: comparable only at one row a request.
            versus = f" (old rule {old:.4f})" if max_rows == 1 else ""
            print(f"  {requests:>4} requests of 1-{max_rows} rows: {new:.4f}{versus}")
    print(f"a shift: P(DriftedFeatures >= 1) per run, requests of 1-{MAX_ROWS_PER_REQUEST} rows")
    for feature in ("monthly_charges", "contract_type", "tenure_years"):
        for mean in (0.5, 0.75, 1.0):
            for requests in (drift.MIN_REQUESTS_FLOOR, drift.DEFAULT_MIN_REQUESTS):
                result = drifted_features(runs // 4, requests, shift=Shift(feature, mean))
                print(
                    f"  {feature} +{mean} sd, {requests:>4} requests: "
                    f"{np.mean(result.drifted >= 1):.4f}"
                )

    print("no drift: P(PredictionPSI > 0.25) per run, ten deciles, one row a request")
    for requests in (10, 50, 100, drift.MIN_REQUESTS_FLOOR, drift.DEFAULT_MIN_REQUESTS):
        print(f"  {requests:>4} requests: {prediction_alarms(20_000, requests):.4f}")


if __name__ == "__main__":
    main()

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


def drifted_features(
    runs: int,
    requests: int,
    *,
    seed: int = SEED,
    rho: float = RHO,
    shift: Shift | None = None,
    thresholds: drift.DriftThresholds | None = None,
) -> NDArray[np.int64]:
    """``DriftedFeatures`` of each of ``runs`` hourly runs of ``requests`` requests."""
    t = thresholds or drift.DriftThresholds(min_requests=1)
    rng = np.random.default_rng(seed)
    bins = reference(rng)
    sizes = rng.integers(1, MAX_ROWS_PER_REQUEST + 1, size=(runs, requests))
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
    return np.asarray(flagged.sum(axis=1), dtype=np.int64)


def main() -> None:
    runs = 4_000
    print(f"seed {SEED}, {runs} hourly runs per line, rho {RHO}, 1-{MAX_ROWS_PER_REQUEST} rows")
    for requests in (10, 50, drift.MIN_REQUESTS_FLOOR, drift.DEFAULT_MIN_REQUESTS, 1_000):
        alarms = np.mean(drifted_features(runs, requests) >= 1)
        print(f"no drift, {requests:>5} requests: P(DriftedFeatures >= 1) = {alarms:.4f}")
    for shift in (Shift("monthly_charges", 0.5), Shift("tenure_years", 0.5)):
        for requests in (drift.MIN_REQUESTS_FLOOR, drift.DEFAULT_MIN_REQUESTS):
            caught = np.mean(drifted_features(runs, requests, shift=shift) >= 1)
            print(
                f"{shift.feature} +{shift.mean} sd, {requests:>5} requests: "
                f"P(DriftedFeatures >= 1) = {caught:.4f}"
            )


if __name__ == "__main__":
    main()

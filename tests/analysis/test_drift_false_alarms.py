"""The drift alarm's stated rates, by seeded simulation (tests.analysis.drift_simulation).

No drift, hourly runs at the floor of min_requests, a schema of continuous features and
integer features with 5, 12 and 20 values: P(DriftedFeatures >= 1) <= 1 % per run, with
correlated rows in batches and in the worst case of one row per request; the old rule
(MaxFeaturePSI above 0.25) pages more often on the same runs. A real shift is flagged.
"""

from __future__ import annotations

import numpy as np

from serving import drift
from tests.analysis import drift_simulation as simulation

FLOOR = drift.MIN_REQUESTS_FLOOR


def test_no_drift_pages_at_most_one_run_in_a_hundred_at_the_floor() -> None:
    """Batches of 1 to 10 rows, intra-request correlation 0.2."""
    runs = simulation.drifted_features(1_000, FLOOR, max_rows=10)
    assert np.mean(runs.drifted >= 1) <= drift.DEFAULT_ALPHA


def test_one_row_per_request_is_the_worst_case_and_still_within_the_rate() -> None:
    """Identical rows in a request (or one row each) make the calibration exact: the
    significance alone (no PSI size required) is reached in about alpha of the runs, so
    the rate is spent, not wasted; with the PSI size, fewer runs page."""
    runs = 4_000
    significance = drift.DriftThresholds(watch=1e-9, alarm=1e-9, min_requests=1)
    alone = simulation.drifted_features(runs, FLOOR, rho=1.0, max_rows=1, thresholds=significance)
    rate = np.mean(alone.drifted >= 1)
    se = np.sqrt(drift.DEFAULT_ALPHA * (1 - drift.DEFAULT_ALPHA) / runs)
    assert drift.DEFAULT_ALPHA / 3 <= rate <= drift.DEFAULT_ALPHA + 3 * se
    result = simulation.drifted_features(runs, FLOOR, rho=1.0, max_rows=1)
    assert np.mean(result.drifted >= 1) <= rate


def test_the_old_rule_pages_on_noise_where_the_new_one_does_not() -> None:
    """MaxFeaturePSI > 0.25 with no correction: the 21 bins of a 20-value integer feature
    at 100 requests cross it by chance in a large share of runs."""
    result = simulation.drifted_features(1_000, 100, rho=1.0, max_rows=1)
    assert np.mean(result.max_psi > 0.25) > 0.1
    assert np.mean(result.drifted >= 1) <= drift.DEFAULT_ALPHA


def test_a_real_shift_is_flagged_and_only_in_its_feature() -> None:
    for feature in ("monthly_charges", "contract_type", "tenure_years"):
        shift = simulation.Shift(feature, 0.75)
        result = simulation.drifted_features(300, drift.DEFAULT_MIN_REQUESTS, max_rows=10,
                                             shift=shift)  # fmt: skip
        assert np.mean(result.drifted >= 1) >= 0.9, feature
        # The alarm names the shifted feature: the others stay within their spread.
        assert np.mean(result.drifted >= 2) <= 0.05, feature


def test_the_floor_keeps_the_prediction_alarm_quiet_and_no_lower_floor_would() -> None:
    """The prediction-drift alarm compares PSI with 0.25 alone: at the floor of
    min_requests it fires by chance in under 0.1 % of runs, at 100 requests in over 0.5 %."""
    assert simulation.prediction_alarms(20_000, FLOOR) <= 0.001
    assert simulation.prediction_alarms(20_000, 100) > 0.005

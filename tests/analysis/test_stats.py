"""serving.histograms, serving.stats and serving.bootstrap against reference computations
(scipy, scikit-learn, hand-worked cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from sklearn import metrics as sk_metrics
from sklearn.calibration import calibration_curve

from serving import bootstrap, histograms, stats

PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, database=None)


def proportions(size: int) -> st.SearchStrategy[np.ndarray]:
    weights = st.lists(st.floats(0, 10), min_size=size, max_size=size).filter(lambda w: sum(w) > 0)
    return weights.map(lambda w: np.asarray(w) / sum(w))


# ---------------------------------------------------------------- PSI


def test_psi_of_a_hand_worked_case() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert histograms.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)


def test_psi_is_the_symmetric_kullback_leibler_divergence() -> None:
    e = np.array([0.1, 0.2, 0.3, 0.4])
    a = np.array([0.25, 0.25, 0.25, 0.25])
    reference = scipy_stats.entropy(a, e) + scipy_stats.entropy(e, a)
    assert histograms.psi(e, a) == pytest.approx(reference, rel=1e-12)


def test_empty_bins_are_floored_not_infinite() -> None:
    value = histograms.psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1])
    floor = histograms.PSI_FLOOR
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - floor) * math.log(0.1 / floor)
    assert value == pytest.approx(expected, rel=1e-12)


def test_psi_of_a_shifted_normal_matches_the_binned_expectation() -> None:
    # Reference N(0, 1) in deciles: each holds 10 %. N(0.5, 1)'s share of decile i is
    # Phi(q_{i+1} - 0.5) - Phi(q_i - 0.5); the PSI of large samples must approach the PSI
    # of those exact shares.
    rng = np.random.default_rng(1)
    reference = rng.normal(0.0, 1.0, 400_000)
    shifted = rng.normal(0.5, 1.0, 400_000)
    q = scipy_stats.norm.ppf(np.linspace(0, 1, 11))
    exact = np.diff(scipy_stats.norm.cdf(q - 0.5))
    expected = histograms.psi(np.full(10, 0.1), exact)
    assert histograms.psi_of_samples(reference, shifted) == pytest.approx(expected, abs=0.005)
    assert 0.2 < expected < 0.25  # below the continuous J-divergence, 0.5 ** 2


def test_psi_of_two_samples_of_one_distribution_is_small() -> None:
    rng = np.random.default_rng(2)
    value = histograms.psi_of_samples(rng.normal(size=50_000), rng.normal(size=50_000))
    # Chi-square approximation: E[PSI] ~ (bins - 1) (1/n1 + 1/n2) = 0.00036.
    assert value < 0.002


@PROPERTY
@given(proportions(6), proportions(6))
def test_psi_is_never_negative_and_symmetric(e: np.ndarray, a: np.ndarray) -> None:
    value = histograms.psi(e, a)
    assert value >= 0
    assert value == pytest.approx(histograms.psi(a, e), rel=1e-9, abs=1e-12)


@PROPERTY
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.integers(1, 20))
def test_a_sample_against_its_own_bins_has_psi_zero(values: list[float], bins: int) -> None:
    histogram = histograms.numeric_histogram(values, bins)
    assert histogram.psi(values) == pytest.approx(0.0, abs=1e-12)
    assert sum(histogram.proportions) == pytest.approx(1.0)
    assert all(p > 0 for p in histogram.proportions)  # no bin empty by construction


def test_quantile_bins_collapse_repeated_edges_and_catch_outliers() -> None:
    values = [0] * 50 + [1] * 30 + list(range(2, 22))
    histogram = histograms.numeric_histogram(values, 10)
    assert histogram.edges[0] == 0 and histogram.edges[-1] == 21
    assert len(set(histogram.edges[1:-1])) == len(histogram.edges) - 2
    assert histogram.proportions[0] == pytest.approx(0.5)
    # Outside the reference's range: into the outer bins, never dropped.
    shares = histogram.proportions_of([-100, 1000])
    assert shares[0] == 0.5 and shares[-1] == 0.5


def test_categories_the_reference_never_saw_are_their_own_bin() -> None:
    histogram = histograms.categorical_histogram([0, 0, 1, 2])
    assert histogram.categories == (0.0, 1.0, 2.0)
    assert histogram.proportions == (0.5, 0.25, 0.25, 0.0)
    shares = histogram.proportions_of([0, 3, 3, 3])
    assert list(shares) == [0.25, 0.0, 0.0, 0.75]
    assert histogram.psi([0, 3, 3, 3]) > 1


def test_reference_histogram_chooses_categories_for_few_integer_values() -> None:
    assert histograms.reference_histogram([0, 1, 2, 1], integer=True).kind == "categorical"
    assert histograms.reference_histogram(range(100), integer=True).kind == "numeric"
    assert histograms.reference_histogram([0.5, 1.5], integer=False).kind == "numeric"
    forced = histograms.reference_histogram(range(100), integer=True, kind="categorical")
    assert forced.kind == "categorical"


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_histogram_survives_json(kind: histograms.Kind) -> None:
    values = np.random.default_rng(3).integers(0, 5, 500)
    histogram = histograms.reference_histogram(values, integer=True, kind=kind)
    import json

    again = histograms.Histogram.from_json(json.loads(json.dumps(histogram.to_json())))
    assert again == histogram


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"kind": "ordinal"}, "h.kind is 'ordinal'"),
        ({"kind": "numeric", "proportions": [1.0], "count": 0}, "h.count must be a positive"),
        ({"kind": "numeric", "proportions": [0.5, 0.6], "count": 3}, "sum to 1"),
        ({"kind": "numeric", "proportions": "x", "count": 3}, "h.proportions must be a list"),
        (
            {"kind": "numeric", "proportions": [0.5, 0.5], "count": 3, "edges": [0, 1]},
            "h.edges must be 3 increasing numbers",
        ),
        (
            {"kind": "categorical", "proportions": [0.5, 0.5], "count": 3, "categories": [1, 2]},
            "need 3 proportions",
        ),
    ],
)
def test_a_bad_histogram_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        histograms.Histogram.from_json(data, "h")


def test_psi_verdict_bands() -> None:
    assert histograms.psi_verdict(0.099) == "stable"
    assert histograms.psi_verdict(0.1) == "watch"
    assert histograms.psi_verdict(0.25) == "watch"
    assert histograms.psi_verdict(0.2501) == "drift"
    assert histograms.psi_verdict(0.15, watch=0.2, alarm=0.3) == "stable"
    with pytest.raises(ValueError, match=r"watch=0\.3, alarm=0\.2"):
        histograms.psi_verdict(0.1, watch=0.3, alarm=0.2)


# ---------------------------------------------------------------- proportions


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (45, 100), (1, 1000)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    reference = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    low, high = stats.wilson_interval(k, n)
    assert low == pytest.approx(reference.low, abs=1e-12)
    assert high == pytest.approx(reference.high, abs=1e-12)


@PROPERTY
@given(st.integers(0, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_estimate(case: tuple[int, int]) -> None:
    k, n = case
    low, high = stats.wilson_interval(k, n)
    assert 0 <= low <= high <= 1
    if n:
        assert low <= k / n <= high


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(45, 100, 56, 100), (300, 1000, 330, 1000), (5, 40, 20, 60)]
)
def test_two_proportion_test_matches_the_chi_square_test(
    x1: int, n1: int, x2: int, n2: int
) -> None:
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    chi2, p_value, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    result = stats.two_proportion_test(x1, n1, x2, n2)
    assert result.z**2 == pytest.approx(chi2, rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.difference == pytest.approx(x2 / n2 - x1 / n1)
    assert math.copysign(1, result.z) == math.copysign(1, result.difference)


def test_two_proportion_test_of_hand_worked_numbers() -> None:
    # p1 = 0.45, p2 = 0.56, pooled 0.505, se = sqrt(0.505 * 0.495 * 0.02) = 0.070707...
    result = stats.two_proportion_test(45, 100, 56, 100)
    assert result.z == pytest.approx(0.11 / math.sqrt(0.505 * 0.495 * 0.02), rel=1e-12)
    assert result.p_value == pytest.approx(0.1198, abs=1e-4)


def test_proportion_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="successes=11, n=10"):
        stats.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="n1=0"):
        stats.two_proportion_test(0, 0, 1, 2)
    assert stats.two_proportion_test(0, 10, 0, 20).p_value == 1.0


# ---------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    p = rng.beta(2, 5, 3000)
    y = (rng.random(3000) < p).astype(np.int64)
    # Rounded: ties, which a rank-based AUC must count half.
    return y, np.round(p, 2)


def test_metrics_match_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    assert stats.roc_auc(y, p) == pytest.approx(sk_metrics.roc_auc_score(y, p), rel=1e-12)
    assert stats.log_loss(y, p) == pytest.approx(sk_metrics.log_loss(y, p), rel=1e-9)
    assert stats.brier(y, p) == pytest.approx(sk_metrics.brier_score_loss(y, p), rel=1e-12)


def test_calibration_error_matches_scikit_learns_bins(
    scored: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = scored
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    index = np.searchsorted(np.linspace(0, 1, 11)[1:-1], p)
    counts = np.bincount(index, minlength=10)
    weights = counts[counts > 0] / len(p)
    expected = float(np.sum(weights * np.abs(prob_true - prob_pred)))
    assert stats.expected_calibration_error(y, p) == pytest.approx(expected, rel=1e-9)


def test_calibration_error_of_hand_worked_case() -> None:
    # Bin (0.1, 0.2]: p 0.2, 0.2 and labels 0, 1 -> |0.5 - 0.2| over 2 rows;
    # bin (0.8, 0.9]: p 0.9 and label 1 -> |1 - 0.9| over 1 row.
    value = stats.expected_calibration_error([0, 1, 1], [0.2, 0.2, 0.9])
    assert value == pytest.approx((2 * 0.3 + 1 * 0.1) / 3)


def test_a_perfectly_calibrated_large_sample_has_small_calibration_error() -> None:
    rng = np.random.default_rng(5)
    p = rng.random(200_000)
    y = rng.random(200_000) < p
    assert stats.expected_calibration_error(y, p) < 0.005
    assert stats.expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.15


def test_auc_of_one_class_is_undefined_not_an_error() -> None:
    assert math.isnan(stats.roc_auc([1, 1], [0.2, 0.9]))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 2], [0.1, 0.2], "labels must be 0 or 1"),
        ([0, 1], [0.1, 1.2], r"probabilities must lie in \[0, 1\]"),
        ([0, 1], [0.1], "differ in shape"),
        ([], [], "no labelled predictions"),
    ],
)
def test_bad_metric_inputs_are_named(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.brier(y, p)


def test_percentiles_interpolate_linearly() -> None:
    assert stats.percentiles([1, 2, 3, 4, 5], (5, 50, 95)) == {5: 1.2, 50: 3.0, 95: 4.8}


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_by_seed(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    one = bootstrap.bootstrap_interval(stats.brier, y, p, rounds=200, seed=7)
    two = bootstrap.bootstrap_interval(stats.brier, y, p, rounds=200, seed=7)
    other = bootstrap.bootstrap_interval(stats.brier, y, p, rounds=200, seed=8)
    assert one == two and one != other
    assert one.rounds == 200 and one.low < one.estimate < one.high


def test_bootstrap_agrees_with_scipys_percentile_bootstrap(
    scored: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = scored
    ours = bootstrap.bootstrap_interval(stats.log_loss, y, p, rounds=2000, seed=1)
    theirs = scipy_stats.bootstrap(
        (y, p),
        stats.log_loss,
        paired=True,
        vectorized=False,
        n_resamples=2000,
        method="percentile",
        random_state=np.random.default_rng(2),
    ).confidence_interval
    width = ours.high - ours.low
    assert ours.low == pytest.approx(theirs.low, abs=0.1 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.1 * width)


def test_bootstrap_interval_covers_the_population_value_as_often_as_it_says() -> None:
    # Brier score of a calibrated model with p ~ U(0, 1): E[(p - y)^2] = E[p (1 - p)] = 1/6.
    rng = np.random.default_rng(6)
    covered = 0
    trials = 60
    for trial in range(trials):
        p = rng.random(400)
        y = rng.random(400) < p
        interval = bootstrap.bootstrap_interval(stats.brier, y, p, rounds=300, seed=trial)
        covered += interval.low <= 1 / 6 <= interval.high
    # 95 % nominal; 60 trials leave room for chance (P(covered < 51) ~ 0.3 % at 95 %).
    assert covered >= 51


def test_difference_interval_separates_a_better_group_from_an_equal_one() -> None:
    rng = np.random.default_rng(7)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(np.int64)
    noisy = np.clip(p + rng.normal(0, 0.25, 2000), 0.01, 0.99)
    worse = bootstrap.bootstrap_difference(stats.log_loss, (y, p), (y, noisy), rounds=300)
    assert worse.excludes_zero() and worse.low > 0
    q = rng.random(2000)
    z = (rng.random(2000) < q).astype(np.int64)
    same = bootstrap.bootstrap_difference(stats.log_loss, (y, p), (z, q), rounds=300)
    assert not same.excludes_zero()


def test_bootstrap_compare_gives_each_group_and_the_difference() -> None:
    rng = np.random.default_rng(8)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(np.int64)
    compared = bootstrap.bootstrap_compare(
        {"auc": stats.roc_auc, "brier": stats.brier}, (y, p), (y, p * 0.5), rounds=100
    )
    brier = compared["brier"]
    assert brier.first.estimate == pytest.approx(stats.brier(y, p))
    assert brier.difference.estimate == pytest.approx(stats.brier(y, p * 0.5) - stats.brier(y, p))
    assert compared["auc"].difference.estimate == pytest.approx(0.0)


def test_one_class_resamples_are_left_out_and_counted() -> None:
    interval = bootstrap.bootstrap_interval(
        stats.roc_auc, [0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9], rounds=200
    )
    assert 0 < interval.rounds < 200


@pytest.mark.parametrize(
    ("rounds", "confidence", "message"),
    [(0, 0.95, "rounds must be a positive integer, got 0"), (10, 1.0, "confidence must lie")],
)
def test_bad_bootstrap_settings_are_named(rounds: int, confidence: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap.bootstrap_interval(
            stats.brier, [0, 1], [0.1, 0.9], rounds=rounds, confidence=confidence
        )


def test_task_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import (
        accuracy_score,
        log_loss,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(5)
    rows = rng.dirichlet(np.ones(3), size=200)
    y = rng.integers(0, 3, 200)
    assert stats.multiclass_log_loss(y, rows) == pytest.approx(log_loss(y, rows), abs=1e-12)
    assert stats.roc_auc_ovr(y, rows) == pytest.approx(
        roc_auc_score(y, rows, multi_class="ovr"), abs=1e-12
    )
    assert stats.multiclass_accuracy(y, rows) == accuracy_score(y, rows.argmax(axis=1))
    truth, predicted = rng.normal(size=50), rng.normal(size=50)
    assert stats.rmse(truth, predicted) == pytest.approx(
        mean_squared_error(truth, predicted) ** 0.5, abs=1e-12
    )
    assert stats.mae(truth, predicted) == pytest.approx(mean_absolute_error(truth, predicted))
    assert stats.r2(truth, predicted) == pytest.approx(r2_score(truth, predicted), abs=1e-12)
    assert math.isnan(stats.r2(np.ones(3), np.zeros(3)))
    assert math.isnan(stats.roc_auc_ovr(np.array([0, 1, 0]), rows[:3]))  # class 2 absent
    with pytest.raises(ValueError, match="class indices must be integers 0 to 2"):
        stats.multiclass_log_loss(np.array([0, 3]), rows[:2])
    with pytest.raises(ValueError, match="targets and predictions differ in shape"):
        stats.rmse(truth, predicted[:-1])

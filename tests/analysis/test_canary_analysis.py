"""Canary analysis of the two sides' predictions: figures, verdicts and their reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving import histograms, stats
from serving.canary import Thresholds, analyse, summarize


def beta(seed: int, size: int = 3000, shift: float = 0.0) -> np.ndarray:
    sample = np.random.default_rng(seed).beta(2, 5, size)
    return np.clip(sample + shift, 0, 1)


def test_both_sides_from_one_model_promote() -> None:
    report = analyse(beta(1), beta(2))
    assert report.verdict == "promote"
    assert report.psi is not None and report.psi < 0.1
    assert report.reasons[-1] == "based on 3000 stable and 3000 candidate predictions"


def test_a_candidate_that_predicts_very_differently_is_rolled_back() -> None:
    report = analyse(beta(1), beta(2, shift=0.15))
    assert report.verdict == "roll back"
    assert any("PSI" in reason and "above 0.25" in reason for reason in report.reasons)


def test_a_moderate_shift_is_held_in_the_watch_band() -> None:
    # Low probabilities raised by 25 %, none across 0.5: the positive rate stays put.
    candidate = beta(2)
    candidate = np.where(candidate < 0.4, candidate * 1.25, candidate)
    report = analyse(beta(1), candidate)
    assert report.psi is not None and 0.1 <= report.psi <= 0.25
    assert report.verdict == "hold"
    assert any("watch band [0.1, 0.25]" in reason for reason in report.reasons)


def test_too_few_requests_is_a_verdict_naming_the_side() -> None:
    report = analyse(beta(1), beta(2, size=50))
    assert report.verdict == "too few requests to judge"
    assert report.reasons == ("candidate has 50 predictions, at least 200 needed",)
    assert report.psi is None and report.rate_test is None
    assert "verdict: too few requests to judge" in report.render()


def test_an_empty_side_is_too_few_not_an_error() -> None:
    report = analyse(beta(1), [])
    assert report.verdict == "too few requests to judge"
    assert report.candidate.mean is None and report.candidate.positive_rate is None


# The rate rules alone: PSI thresholds set out of reach.
RATE_ONLY = Thresholds(psi_watch=50, psi_block=100)


def rates(stable_positive: int, candidate_positive: int, n: int) -> tuple[list[float], list[float]]:
    return (
        [0.9] * stable_positive + [0.1] * (n - stable_positive),
        [0.9] * candidate_positive + [0.1] * (n - candidate_positive),
    )


def test_a_large_significant_rate_shift_rolls_back() -> None:
    stable, candidate = rates(300, 420, 1000)
    report = analyse(stable, candidate, thresholds=RATE_ONLY)
    assert report.verdict == "roll back"
    assert report.rate_test is not None and report.rate_test.p_value < 0.01
    assert any("0.300 -> 0.420 (+0.120" in reason for reason in report.reasons)


def test_a_small_significant_rate_shift_holds() -> None:
    stable, candidate = rates(3000, 3400, 10000)
    report = analyse(stable, candidate, thresholds=RATE_ONLY)
    assert report.verdict == "hold"
    assert any("within 0.05" in reason for reason in report.reasons)


def test_a_large_shift_without_significance_holds_for_more_data() -> None:
    stable, candidate = rates(60, 80, 200)
    report = analyse(stable, candidate, thresholds=RATE_ONLY)
    assert report.verdict == "hold"
    assert any("not yet significant" in reason for reason in report.reasons)


def test_summary_figures_match_their_definitions() -> None:
    p = beta(3, size=1000)
    side = summarize("stable", p, requests=400)
    assert side.requests == 400 and side.predictions == 1000
    assert side.mean == pytest.approx(p.mean())
    assert (side.p5, side.p50, side.p95) == tuple(np.percentile(p, [5, 50, 95]))
    positives = int((p >= 0.5).sum())
    assert side.positives == positives
    assert (side.positive_rate_low, side.positive_rate_high) == stats.wilson_interval(
        positives, 1000
    )


def test_psi_uses_the_stable_sides_bins() -> None:
    stable, candidate = beta(1), beta(2, shift=0.05)
    report = analyse(stable, candidate)
    assert report.psi == pytest.approx(histograms.numeric_histogram(stable).psi(candidate))
    assert report.psi != pytest.approx(histograms.numeric_histogram(candidate).psi(stable))


def test_the_report_renders_and_serializes() -> None:
    report = analyse(beta(1), beta(2), stable_requests=2900, candidate_requests=2950)
    text = report.render()
    assert text.splitlines()[1].split()[:3] == ["stable", "2900", "3000"]
    assert "verdict: promote" in text
    data = json.loads(json.dumps(report.to_json()))
    assert data["verdict"] == "promote" and data["candidate"]["requests"] == 2950


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"min_samples": 0}, "min_samples must be a positive integer, got 0"),
        ({"psi_watch": 0.3}, "psi_watch=0.3, psi_block=0.25"),
        ({"alpha": 1.5}, "alpha must lie strictly between 0 and 1, got 1.5"),
        ({"max_rate_shift": 0}, "max_rate_shift must lie"),
        ({"bins": 0}, "bins must be a positive integer"),
    ],
)
def test_bad_thresholds_are_refused_naming_them(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Thresholds(**arguments)  # type: ignore[arg-type]


def test_probabilities_out_of_range_are_refused_naming_the_side() -> None:
    with pytest.raises(ValueError, match="candidate: predictions must be"):
        analyse(beta(1), [0.5, 1.2])

"""The canary rule (serving.canary, serving.sequential): requests as the unit, the
always-valid harm test, PSI that pages, and the errors bad input gets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving import canary, sequential
from serving.canary import Thresholds, evaluate


def side(
    rng: np.random.Generator, requests: int, rows: int, rate: float, spread: float = 0.4,
    name: str = "r",
) -> tuple[list[str], list[float]]:  # fmt: skip
    """Binary rows of ``requests`` requests: each request's positive tendency varies
    around ``rate`` (rows of a request are correlated)."""
    level = np.clip(rate + rng.normal(0, 0.15, requests), 0.0, 1.0)
    positive = rng.uniform(size=(requests, rows)) < level[:, None]
    offset = spread * rng.uniform(size=(requests, rows))
    probability = np.where(positive, 0.5 + offset, 0.5 - offset)
    ids = [f"{name}{i}" for i in range(requests) for _ in range(rows)]
    return ids, [float(p) for p in probability.ravel()]


def test_rows_of_one_request_are_summarised_once() -> None:
    summaries = sequential.summarize(
        ["a", "a", "a", "b"], [0.9, 0.7, 0.1, 0.2], "binary", decision_threshold=0.5
    )
    assert (summaries.requests, summaries.rows) == (2, 4)
    assert summaries.column("positive share").tolist() == pytest.approx([2 / 3, 0.0])
    assert summaries.column("mean probability").tolist() == pytest.approx([17 / 30, 0.2])
    classes = sequential.summarize(["a", "a", "b"], ["x", 1, "1"], "multiclass")
    assert classes.columns == ("1", "x") and classes.values.tolist() == [[0.5, 0.5], [1.0, 0.0]]
    values = sequential.summarize(["a", "b", "a"], [1.0, 5.0, 3.0], "regression")
    assert values.column("mean value").tolist() == [2.0, 5.0]


def test_many_rows_from_few_requests_are_too_few() -> None:
    rng = np.random.default_rng(1)
    report = evaluate(side(rng, 400, 2, 0.2, name="s"), side(rng, 30, 100, 0.6, name="c"),
                      "binary")  # fmt: skip
    assert report.verdict == "hold" and not report.judged and report.psi is None
    assert report.reasons[0] == "candidate has 30 requests, at least 50 needed"
    assert report.candidate.rows == 3000


def test_sides_alike_promote() -> None:
    rng = np.random.default_rng(2)
    report = evaluate(side(rng, 2000, 5, 0.22, name="s"), side(rng, 300, 5, 0.22, name="c"),
                      "binary")  # fmt: skip
    assert report.verdict == "promote" and not report.harmful and not report.page
    assert report.psi is not None and report.psi < 0.1
    assert report.reasons[-1] == "based on 2000 stable and 300 candidate requests"


def test_a_shift_of_the_positive_rate_rolls_back() -> None:
    rng = np.random.default_rng(3)
    report = evaluate(side(rng, 2000, 5, 0.22, name="s"), side(rng, 300, 5, 0.38, name="c"),
                      "binary")  # fmt: skip
    assert report.verdict == "roll back" and report.harmful
    (test,) = report.harm
    assert test.column == "positive share" and test.difference == pytest.approx(0.16, abs=0.04)
    assert "a significant shift at 0.01" in report.reasons[0]


def test_a_better_calibrated_candidate_pages_and_holds_but_never_rolls_back() -> None:
    rng = np.random.default_rng(4)
    report = evaluate(side(rng, 2000, 5, 0.22, 0.45, "s"), side(rng, 300, 5, 0.22, 0.05, "c"),
                      "binary")  # fmt: skip
    assert report.psi is not None and report.psi > 0.25
    assert (report.verdict, report.page, report.harmful) == ("hold", True, False)
    assert "page, do not roll back" in report.reasons[0]


def test_a_psi_within_its_noise_does_not_page() -> None:
    """PSI of two samples of one distribution at the fewest requests PSI is judged on."""
    rng = np.random.default_rng(5)
    stable = sequential.summarize(*side(rng, 1800, 1, 0.3, name="s"), "binary")
    found = []
    for _ in range(30):
        candidate = sequential.summarize(*side(rng, 200, 1, 0.3, name="c"), "binary")
        found.append(canary.decide(stable, candidate))
    noise = found[0].psi_noise
    assert noise is not None and noise > 0.1  # the noise at 200 requests is above psi_watch
    assert not any(r.page for r in found)


def test_the_harm_p_value_is_the_mixture_ratio_and_valid_over_looks() -> None:
    # Lambda = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2))), p = min(1, 1 / Lambda)
    d, v, tau = 0.05, 0.0004, 0.04
    expected = 1 / (np.sqrt(v / (v + tau**2)) * np.exp(tau**2 * d**2 / (2 * v * (v + tau**2))))
    assert sequential.always_valid_p(d, v, tau) == pytest.approx(expected)
    # Past the prior's scale, a fixed z = 2.5 is less and less evidence as requests
    # accumulate (the price of looking at every n), and always more than one look's p.
    variances = np.array([1e-4, 1e-5, 1e-6])
    p = sequential.always_valid_p(2.5 * np.sqrt(variances), variances, 0.04)
    assert p[0] < p[1] < p[2] and p[0] > 0.0124  # one fixed-sample z of 2.5 has p 0.0124


def test_multiclass_tests_each_class_at_alpha_over_k() -> None:
    rng = np.random.default_rng(6)
    labels = ["ant", "bee", "cat", "dog"]

    def answers(count: int, shares: list[float], name: str) -> tuple[list[str], list[str]]:
        picked = rng.choice(labels, (count, 3), p=shares)
        return [f"{name}{i}" for i in range(count) for _ in range(3)], list(picked.ravel())

    stable = answers(1500, [0.4, 0.3, 0.2, 0.1], "s")
    report = evaluate(stable, answers(300, [0.4, 0.3, 0.2, 0.1], "c"), "multiclass")
    assert [t.alpha for t in report.harm] == [0.0025] * 4 and report.verdict == "promote"
    shifted = evaluate(stable, answers(300, [0.2, 0.3, 0.2, 0.3], "c"), "multiclass")
    assert shifted.verdict == "roll back"
    assert {t.column for t in shifted.harm if t.significant} >= {"ant", "dog"}


def test_the_report_is_json() -> None:
    rng = np.random.default_rng(7)
    report = evaluate(side(rng, 300, 2, 0.2, name="s"), side(rng, 300, 2, 0.2, name="c"),
                      "binary")  # fmt: skip
    data = json.loads(json.dumps(report.to_json()))
    assert data["verdict"] == report.verdict and data["harm"][0]["column"] == "positive share"
    assert data["thresholds"]["alpha"] == 0.01


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sequential.summarize(["a"], [1.2], "binary"), "probability 1.2 is not in"),
        (lambda: sequential.summarize(["a"], [float("nan")], "regression"), "nan is not a fin"),
        (lambda: sequential.summarize(["a", "b"], [0.1], "binary"), "2 request ids for 1 pred"),
        (lambda: sequential.summarize(["a"], [1.0], "ranking"), "task 'ranking' is not one of"),
        (lambda: sequential.summarize(["a"], ["z"], "multiclass", labels=["x"]),
         r"class labels \['z'\] are not among \['x'\]"),
        (lambda: Thresholds(min_requests=1), "min_requests must be an integer of at least 2"),
        (lambda: Thresholds(alpha=0.0), "alpha must lie strictly between 0 and 1, got 0.0"),
        (lambda: Thresholds(psi_watch=0.3, psi_block=0.2), "psi_watch=0.3, psi_block=0.2"),
        (lambda: Thresholds(tau_sd=-1.0), "tau_sd must be a positive number, got -1.0"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_value(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_sides_of_different_tasks_are_refused() -> None:
    binary = sequential.summarize(["a"], [0.2], "binary")
    values = sequential.summarize(["a"], [3.0], "regression")
    with pytest.raises(ValueError, match="regression, the stable side's binary"):
        canary.decide(binary, values)

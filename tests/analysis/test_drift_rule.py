"""serving.drift's rule piece by piece: request weights, the null spread, Holm, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from serving import drift, histograms
from serving.distributions import Reference

CODES = histograms.Histogram("categorical", (0.5, 0.3, 0.2, 0.0), 4000, categories=(0, 1, 2))


def test_each_request_weighs_one_whatever_its_rows() -> None:
    # Request a: three rows in bin 0; request b: one row in bin 1.
    shares, requests = drift.request_weighted_shares(CODES, [0, 0, 0, 1], ["a", "a", "a", "b"])
    assert requests == 2
    assert shares.tolist() == [0.5, 0.5, 0.0, 0.0]


def test_the_null_spread_shrinks_with_requests_and_p_falls_with_psi() -> None:
    small, large = drift.null_psi(CODES, 50), drift.null_psi(CODES, 5_000)
    assert np.quantile(large, 0.99) < np.quantile(small, 0.99) / 20
    p = drift.p_values(CODES, np.array([0.0, 0.02, 0.1, 1.0]), 200)
    assert p[0] == 1.0 and np.all(np.diff(p) <= 0) and p[-1] == 1 / (drift.CALIBRATION_DRAWS + 1)
    # Seeded: the monitor and the tool get the same p-value for the same data.
    drift._null_psi.cache_clear()
    assert drift.p_values(CODES, np.array([0.02]), 200).tolist() == p[1:2].tolist()


def test_holm_adjusts_in_order_and_keeps_monotone() -> None:
    adjusted = drift.holm([0.01, 0.04, 0.03, 0.5])
    # Sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, made non-decreasing, capped at 1.
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.5])
    rows = drift.holm(np.array([[0.2, 0.001], [0.6, 0.6]]))
    np.testing.assert_allclose(rows, [[0.2, 0.002], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"p-values must be in \[0, 1\], got \[1.5\]"):
        drift.holm([0.1, 1.5])


def reference() -> Reference:
    rng = np.random.default_rng(4)
    return Reference(
        {"size": histograms.numeric_histogram(rng.normal(size=4000)), "code": CODES},
        histograms.numeric_histogram(rng.uniform(size=4000)),
    )


def report(codes: list[int], sizes: list[float], ids: list[str]) -> drift.DriftReport:
    rows = [{"size": s, "code": c} for s, c in zip(sizes, codes, strict=True)]
    return drift.drift_report(reference(), rows, [0.5] * len(rows), drift.DriftThresholds(),
                              feature_requests=ids, prediction_requests=ids)  # fmt: skip


def test_an_unseen_code_is_drift_and_counts_as_one_drifted_feature() -> None:
    rng = np.random.default_rng(9)
    n = 400
    codes = [int(c) for c in rng.choice(3, size=n, p=[0.5, 0.3, 0.2])]
    codes[: n // 3] = [7] * (n // 3)  # a third of the requests send a code never seen
    result = report(codes, rng.normal(size=n).tolist(), [f"r{i}" for i in range(n)])
    lines = {line.name: line for line in result.lines}
    assert lines["code"].verdict == "drift" and lines["code"].p_value is not None
    assert lines["code"].p_value <= drift.DEFAULT_ALPHA
    assert lines["size"].verdict == "stable"
    assert result.drifted_features == 1  # the prediction (all 0.5) drifted but is not counted
    assert result.drifted == ["code", "prediction"]


def test_a_large_psi_that_chance_reaches_is_not_drift() -> None:
    """At few requests a PSI above 0.25 is what the reference itself reaches: no drift."""
    rng = np.random.default_rng(10)
    n = 12
    codes = [int(c) for c in rng.choice(3, size=n, p=[0.5, 0.3, 0.2])]
    thresholds = drift.DriftThresholds(min_requests=1)
    ids = [f"r{i}" for i in range(n)]
    rows = [{"size": float(s), "code": c} for s, c in zip(rng.normal(size=n), codes, strict=True)]
    result = drift.drift_report(reference(), rows, rng.uniform(size=n).tolist(), thresholds,
                                feature_requests=ids, prediction_requests=ids)  # fmt: skip
    size = next(line for line in result.lines if line.name == "size")
    assert size.psi > 0.25 and size.verdict != "drift"


def test_request_ids_must_match_the_rows() -> None:
    with pytest.raises(ValueError, match="feature_requests has 1 request ids for 2 rows"):
        report([0, 1], [0.0, 0.1], ["a"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_requests": 0}, "min_requests must be a positive integer, got 0"),
        ({"alpha": 0.7}, r"alpha must be a number in \(0, 0.5\), got 0.7"),
        ({"watch": 0.3, "alarm": 0.2}, "watch=0.3, alarm=0.2"),
    ],
)
def test_bad_thresholds_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift.DriftThresholds(**kwargs)  # type: ignore[arg-type]


def test_numbers_in_an_array_bin_as_the_lookup_does() -> None:
    values = np.array([0.0, 1.0, 2.0, 2.5, 7.0, 1.0])
    assert CODES.bin_index(values).tolist() == CODES.bin_index(values.tolist()).tolist()
    mixed = histograms.Histogram("categorical", (0.5, 0.5, 0.0), 10, categories=("a", 3))
    assert mixed.bin_index(np.array([3.0, 4.0])).tolist() == [1, 2]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_committed_manifests_are_judged_as_they_are(version: str) -> None:
    """No retraining: the rule needs only what each manifest's reference already holds.
    Traffic drawn from the reference itself is not drift; moving one feature's values to
    its largest bin is, in that feature alone."""
    import json
    from pathlib import Path

    from serving.distributions import read_reference

    path = Path(__file__).parents[2] / "model_artifacts" / "churn" / version / "manifest.json"
    ref = read_reference(json.loads(path.read_text()), where=str(path))
    rng = np.random.default_rng(21)
    n = drift.DEFAULT_MIN_REQUESTS

    def draw(histogram: histograms.Histogram) -> list[object]:
        bins = rng.choice(len(histogram.proportions), size=n, p=histogram.proportions)
        if histogram.kind == "numeric":  # a bin holds its lower edge
            return [histogram.edges[b] for b in bins]
        return [histogram.categories[b] for b in bins]

    columns = {name: draw(h) for name, h in ref.features.items()}
    rows = [{name: columns[name][i] for name in columns} for i in range(n)]
    ids = [f"r{i}" for i in range(n)]
    kwargs = {"feature_requests": ids, "prediction_requests": ids}
    same = drift.drift_report(ref, rows, draw(ref.prediction), **kwargs)  # type: ignore[arg-type]
    assert same.judged and same.drifted == [], same.render()
    name, histogram = next((k, h) for k, h in ref.features.items() if h.kind == "numeric")
    moved = [row | {name: histogram.edges[-2]} for row in rows]
    shifted = drift.drift_report(ref, moved, draw(ref.prediction), **kwargs)  # type: ignore[arg-type]
    assert shifted.drifted == [name] and shifted.drifted_features == 1

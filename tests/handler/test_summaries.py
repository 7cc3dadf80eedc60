"""Log and EMF summaries of a batch's probabilities against numpy's own statistics."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import summaries

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
probabilities = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300).map(np.array)


@PROPERTY
@given(probabilities)
def test_log_fields_are_numpys_statistics_rounded(values: np.ndarray) -> None:
    labels = values >= 0.5
    fields = summaries.log_fields(values, labels)
    assert fields["positives"] == int(labels.sum())
    assert fields["probability_mean"] == round(float(values.mean()), 6)
    if len(values) > 1:
        assert fields["probability_min"] == round(float(values.min()), 6)
        assert fields["probability_max"] == round(float(values.max()), 6)
        for name, q in summaries.QUANTILES.items():
            assert abs(fields[name] - float(np.quantile(values, q))) <= 1e-6  # type: ignore[operator]
    else:
        assert set(fields) == {"positives", "probability_mean"}


@PROPERTY
@given(probabilities)
def test_metric_values_are_bounded_and_drawn_from_the_batch(values: np.ndarray) -> None:
    chosen = summaries.metric_values(values, limit=100)
    if len(values) <= 100:
        assert chosen == values.tolist()
    else:
        assert len(chosen) == 100
        assert chosen == sorted(chosen)
        assert set(chosen) <= set(values.tolist())
        assert chosen[0] <= float(np.quantile(values, 0.01)) + 1e-12
        assert chosen[-1] >= float(np.quantile(values, 0.99)) - 1e-12

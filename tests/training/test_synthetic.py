from __future__ import annotations

import numpy as np
import pytest

from training.schema import FEATURE_NAMES, FEATURES
from training.synthetic import generate

ROWS = 20000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return generate(ROWS, seed=7)


def column(X: np.ndarray, name: str) -> np.ndarray:
    return X[:, FEATURE_NAMES.index(name)]


def test_same_seed_gives_identical_data() -> None:
    X1, y1 = generate(500, seed=5)
    X2, y2 = generate(500, seed=5)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)


def test_other_seed_gives_other_data() -> None:
    X1, _ = generate(500, seed=5)
    X2, _ = generate(500, seed=6)
    assert not np.array_equal(X1, X2)


def test_schema_shape_types_and_ranges(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    assert X.shape == (ROWS, 7) and y.shape == (ROWS,)
    assert set(np.unique(y)) == {0, 1}
    for index, spec in enumerate(FEATURES):
        values = X[:, index]
        assert values.min() >= spec.minimum and values.max() <= spec.maximum, spec.name
        if spec.dtype == "integer":
            assert np.all(values == np.round(values)), spec.name


def test_total_charges_follow_tenure_times_monthly(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    tenure, monthly = column(X, "tenure_months"), column(X, "monthly_charges")
    total = column(X, "total_charges")
    ratio = total[tenure > 0] / (tenure[tenure > 0] * monthly[tenure > 0])
    assert ratio.min() >= 0.89 and ratio.max() <= 1.06
    assert np.all(total[tenure == 0] == 0)


def test_churn_depends_on_contract_tenure_and_support(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    contract, tenure = column(X, "contract_type_encoded"), column(X, "tenure_months")
    support = column(X, "has_tech_support")
    assert y[contract == 0].mean() > y[contract == 1].mean() > y[contract == 2].mean()
    assert y[tenure < 12].mean() > y[tenure >= 36].mean() + 0.1
    assert y[support == 0].mean() > y[support == 1].mean() + 0.05
    assert 0.15 < y.mean() < 0.45


def test_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rows must be a positive integer, got 0"):
        generate(0, seed=1)

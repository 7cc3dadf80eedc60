from __future__ import annotations

import pytest

from benchmarks.pricing import PRICE_PER_GB_SECOND, PRICE_PER_REQUEST, cost_per_million


def test_full_vcpu_cost_is_requests_plus_billed_gb_seconds() -> None:
    # 2.3 ms is billed as 3 ms at 1,769 MB.
    expected = (PRICE_PER_REQUEST + 0.003 * (1769 / 1024) * PRICE_PER_GB_SECOND) * 1e6
    assert cost_per_million(2.3, 1769) == pytest.approx(expected)


def test_less_memory_means_proportionally_longer_cpu_time() -> None:
    # 1 ms at 1,769 MB becomes 1769/512 = 3.46 ms at 512 MB, billed as 4 ms.
    expected = (PRICE_PER_REQUEST + 0.004 * 0.5 * PRICE_PER_GB_SECOND) * 1e6
    assert cost_per_million(1.0, 512) == pytest.approx(expected)


def test_put_metric_data_calls_are_charged_per_call() -> None:
    assert cost_per_million(1.0, 1769, put_metric_calls=2) - cost_per_million(
        1.0, 1769
    ) == pytest.approx(20.0)

"""Deterministic synthetic churn data.

Each customer is drawn in this order, so that the columns relate as they do in a real
subscription business:

- ``tenure_months``: exponential with a 24-month mean, capped at 72. Many new customers,
  a long tail of loyal ones.
- ``contract_type_encoded``: longer tenure makes one- and two-year contracts likelier.
- ``num_products``: 1 to 5, most customers have one or two.
- ``has_tech_support``: likelier for customers with more products.
- ``monthly_charges``: $20 base, about $12 per product, $10 for tech support, noise.
- ``total_charges``: tenure x monthly charges x a price-history factor in [0.9, 1.05].
- ``payment_method_encoded``: electronic check is the most common for month-to-month.

Churn is Bernoulli with a logit that rises for month-to-month contracts, short tenure,
no tech support, high monthly charges and electronic-check payment, and falls for
two-year contracts and for customers with more products. ``CHURN_LOGIT_WEIGHTS``
holds the coefficients so that tests and readers see the same numbers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from training.schema import FEATURE_NAMES

CHURN_LOGIT_WEIGHTS: dict[str, float] = {
    "intercept": -1.3,
    "month_to_month": 1.5,
    "two_year": -0.9,
    "tenure_months": -0.035,
    "no_tech_support": 0.8,
    "monthly_charges_over_65": 0.02,
    "electronic_check": 0.5,
    "extra_products": -0.2,
}


def generate(rows: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return ``(X, y)``: ``X`` has the columns of ``FEATURE_NAMES`` in order."""
    if rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows}")
    rng = np.random.default_rng(seed)
    w = CHURN_LOGIT_WEIGHTS

    tenure = np.minimum(np.floor(rng.exponential(24.0, rows)), 72).astype(np.int64)
    long_share = np.clip(tenure / 72.0, 0.0, 1.0)
    u = rng.random(rows)
    contract = np.where(
        u < 0.75 - 0.55 * long_share, 0, np.where(u < 0.95 - 0.35 * long_share, 1, 2)
    )
    num_products = 1 + rng.binomial(4, 0.25, rows)
    tech = (rng.random(rows) < 0.25 + 0.08 * (num_products - 1)).astype(np.int64)
    monthly = np.clip(20 + 12 * num_products + 10 * tech + rng.normal(0, 8, rows), 18, 150)
    monthly = np.round(monthly, 2)
    price_history = rng.uniform(0.9, 1.05, rows)
    total = np.round(tenure * monthly * price_history, 2)
    p_electronic = np.where(contract == 0, 0.5, 0.2)
    v = rng.random(rows)
    rest = rng.integers(1, 4, rows)
    payment = np.where(v < p_electronic, 0, rest)

    logit = (
        w["intercept"]
        + w["month_to_month"] * (contract == 0)
        + w["two_year"] * (contract == 2)
        + w["tenure_months"] * tenure
        + w["no_tech_support"] * (1 - tech)
        + w["monthly_charges_over_65"] * (monthly - 65)
        + w["electronic_check"] * (payment == 0)
        + w["extra_products"] * (num_products - 1)
    )
    churn = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    columns = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "num_products": num_products,
        "has_tech_support": tech,
        "contract_type_encoded": contract,
        "payment_method_encoded": payment,
    }
    X = np.column_stack([columns[name].astype(np.float64) for name in FEATURE_NAMES])
    return X, churn

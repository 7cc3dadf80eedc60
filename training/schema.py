"""The churn model's feature schema: the contract between training and the handler.

The handler validates every request against the ``allowed`` range recorded here (it
reads it from the artifact, never from this module: the image ships no training code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FeatureType = Literal["integer", "number"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: FeatureType
    minimum: float
    maximum: float
    description: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "allowed": {"min": self.minimum, "max": self.maximum},
            "description": self.description,
        }


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("tenure_months", "integer", 0, 240, "Whole months the customer has been with us."),
    FeatureSpec("monthly_charges", "number", 0.0, 1000.0, "Current monthly bill, in dollars."),
    FeatureSpec(
        "total_charges", "number", 0.0, 240000.0, "Billed over the whole tenure, in dollars."
    ),
    FeatureSpec("num_products", "integer", 1, 20, "Number of subscribed products."),
    FeatureSpec("has_tech_support", "integer", 0, 1, "1 if the tech-support add-on is active."),
    FeatureSpec(
        "contract_type_encoded",
        "integer",
        0,
        2,
        "0 = month-to-month, 1 = one year, 2 = two years.",
    ),
    FeatureSpec(
        "payment_method_encoded",
        "integer",
        0,
        3,
        "0 = electronic check, 1 = mailed check, 2 = bank transfer (auto), 3 = credit card (auto).",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
LABEL = "churn"

# Two customers, in schema order: a new month-to-month one likely to churn, and a
# long-standing two-year one. The demo, the soak and the cost model use these (a test keeps
# them inside the allowed ranges), so that no module retypes the feature names.
_EXAMPLE_VALUES = ((3, 80.5, 241.5, 1, 0, 0, 0), (60, 45.0, 2700.0, 3, 1, 2, 3))
EXAMPLE_RECORDS: tuple[dict[str, float], ...] = tuple(
    dict(zip(FEATURE_NAMES, values, strict=True)) for values in _EXAMPLE_VALUES
)

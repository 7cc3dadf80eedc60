"""The churn model's input columns in order, as both baseline handlers list them.

A tutorial handler names its model's columns in its own source; ours reads them from the
artifact. This module imports nothing, so a baseline's cold start still measures only
its own libraries. A list, as pandas takes it to select columns;
tests/bench/test_run_report.py holds it equal to training's schema.
"""

FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "num_products",
    "has_tech_support",
    "contract_type_encoded",
    "payment_method_encoded",
]

"""Generated churn tables for the batch-scoring tests and benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training.schema import FEATURE_NAMES
from training.synthetic import generate

INTEGER_COLUMNS = (
    "tenure_months",
    "num_products",
    "has_tech_support",
    "contract_type_encoded",
    "payment_method_encoded",
)


def churn_frame(rows: int, seed: int = 5) -> pd.DataFrame:
    X, _ = generate(rows, seed)
    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    for column in INTEGER_COLUMNS:
        frame[column] = frame[column].astype(np.int64)
    return frame


def write_csv(path: Path, rows: int, seed: int = 5) -> pd.DataFrame:
    frame = churn_frame(rows, seed)
    frame.to_csv(path, index=False)
    return frame

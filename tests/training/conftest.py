from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from training.schema import FEATURE_NAMES, LABEL
from training.synthetic import generate
from training.train import TrainingData, train

# Few trees keep each training test well under a second; the estimator is the same.
FAST_PARAMS = {"n_estimators": 10}

WriteCsv = Callable[..., Path]


def quiet(_: str) -> None:
    pass


def train_churn(output: Path, data: TrainingData, version: str = "v1", **options: Any) -> Path:
    """Train churn ``version`` on ``data`` into ``output`` with FAST_PARAMS, logging nothing."""
    return train(
        data,
        model_name="churn",
        version=version,
        output=output,
        params=FAST_PARAMS,
        log=quiet,
        **options,
    )


@pytest.fixture
def write_csv(tmp_path: Path) -> WriteCsv:
    """Write a CSV of synthetic rows, optionally edited, and return its path."""

    def _write(
        rows: int = 300,
        *,
        header: Sequence[str] | None = None,
        edit: Callable[[list[list[str]]], None] | None = None,
        name: str = "data.csv",
    ) -> Path:
        X, y = generate(rows, seed=3)
        body = [
            [f"{v:g}" for v in features] + [str(label)]
            for features, label in zip(X.tolist(), y.tolist(), strict=True)
        ]
        if edit:
            edit(body)
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header or [*FEATURE_NAMES, LABEL])
            writer.writerows(body)
        return path

    return _write

"""Pipelines as people write them, on Palmer penguins (the ``palmerpenguins`` package) and
on scikit-learn's breast cancer data: fitted on DataFrames with raw strings and NaN, the
holdout written as a CSV that keeps its empty cells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
PENGUIN_FEATURES = NUMERIC + CATEGORICAL


def penguins() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows): every column, NA kept, stratified by species."""
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    train, holdout = train_test_split(
        frame, test_size=0.4, random_state=0, stratify=frame["species"]
    )
    return train, holdout


def issue_pipeline(encoder: Any = None, classifier: Any = None) -> Pipeline:
    """The pipeline of issue 21's "Why", as written there."""
    return Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
                        ("cat", encoder or OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("clf", classifier or HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        ]
    )


def penguin_schema(**changes: dict[str, Any]) -> dict[str, Any]:
    """The schema a user would review for the penguins pipeline; ``changes`` edit a
    feature's entry by name."""
    features: list[dict[str, Any]] = [
        {"name": "bill_length_mm", "type": "number", "min": 25, "max": 70, "nullable": True},
        {"name": "bill_depth_mm", "type": "number", "min": 10, "max": 25, "nullable": True},
        {"name": "flipper_length_mm", "type": "number", "min": 150, "max": 250, "nullable": True},
        {"name": "body_mass_g", "type": "number", "min": 2000, "max": 7000, "nullable": True},
        {
            "name": "island",
            "type": "categorical",
            "values": ["Biscoe", "Dream", "Torgersen"],
            "unknown": "pass",
        },
        {
            "name": "sex",
            "type": "categorical",
            "values": ["female", "male"],
            "unknown": "pass",
            "nullable": True,
        },
    ]
    for feature in features:
        feature.update(changes.get(feature["name"], {}))
    return {"task": "multiclass", "label": "species", "features": features}


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def breast_cancer() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Breast cancer as a DataFrame: a string column (``size_band``), NaN injected in two
    numeric columns and in the string one, labels as names; (train, holdout, numeric)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    numeric = ["mean_radius", "mean_texture", "mean_smoothness", "worst_concavity"]
    frame = frame[[*numeric, "target"]].copy()
    frame["size_band"] = pd.cut(
        frame["mean_radius"], [0, 12, 16, 100], labels=["small", "medium", "large"]
    ).astype(object)
    frame["diagnosis"] = np.asarray(bunch.target_names)[frame.pop("target")]
    rng = np.random.default_rng(5)
    for column in ("mean_texture", "worst_concavity", "size_band"):
        frame.loc[rng.random(len(frame)) < 0.08, column] = np.nan
    train, holdout = train_test_split(
        frame, test_size=0.4, random_state=0, stratify=frame["diagnosis"]
    )
    return train, holdout, numeric

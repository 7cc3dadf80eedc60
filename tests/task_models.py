"""Small fitted models of every task in the artifact contract's formats, for the golden-set,
gate and drift tests: a multiclass classifier with string labels, a regressor, and a
binary classifier with string labels over a categorical feature (encoded as positions in
its values, one-hot inside the pipeline)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FORMAT = "sklearn-pipeline-joblib/1"
COLOURS = ["red", "green", 7]  # a categorical feature's values: strings and an integer


@dataclass(frozen=True)
class TaskModel:
    task: str
    classes: list[Any] | None
    features: list[dict[str, Any]]
    X: NDArray[np.float64]  # encoded: categorical columns hold positions
    y: NDArray[Any]  # class labels or values
    pipeline: Any

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.features)

    def payload(self, version: str = "v1") -> bytes:
        buffer = io.BytesIO()
        joblib.dump(
            {
                "format": FORMAT,
                "model_name": f"{self.task}-test",
                "model_version": version,
                "features": self.features,
                "pipeline": self.pipeline,
                "task": self.task,
                "classes": self.classes,
            },
            buffer,
        )
        return buffer.getvalue()


def _number(name: str) -> dict[str, Any]:
    return {"name": name, "dtype": "number", "allowed": {"min": -100, "max": 100},
            "description": name}  # fmt: skip


def multiclass(seed: int = 0, rows: int = 300, noise: float = 0.0) -> TaskModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    score = X @ np.array([[2.0, -1.0, 0.0], [0.0, 2.0, -1.0], [-1.0, 0.0, 2.0]])
    index = np.argmax(score + rng.normal(scale=0.5, size=score.shape), axis=1)
    if noise:
        flip = rng.random(rows) < noise
        index[flip] = rng.integers(0, 3, int(flip.sum()))
    classes = ["ant", "bee", "cat"]
    y = np.asarray([classes[i] for i in index])
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    features = [_number(f"x{i}") for i in range(3)]
    return TaskModel("multiclass", classes, features, X, y, pipeline)


def regression(seed: int = 0, rows: int = 300, noise: float = 0.1) -> TaskModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 10.0 + rng.normal(scale=noise, size=rows)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", Ridge(alpha=1.0))]).fit(X, y)
    return TaskModel("regression", None, [_number("a"), _number("b")], X, y, pipeline)


def categorical_binary(seed: int = 0, rows: int = 300) -> TaskModel:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(COLOURS), rows).astype(np.float64)
    size = rng.normal(size=rows)
    X = np.column_stack([size, codes])
    logit = 1.5 * size + np.array([-1.0, 0.5, 1.5])[codes.astype(int)]
    positive = rng.random(rows) < 1 / (1 + np.exp(-logit))
    y = np.where(positive, "yes", "no")
    encode = ColumnTransformer(
        [
            ("size", StandardScaler(), [0]),
            (
                "colour",
                OneHotEncoder(categories=[list(range(len(COLOURS)))], handle_unknown="error"),
                [1],
            ),
        ]
    )
    pipeline = Pipeline([("encode", encode), ("model", LogisticRegression())]).fit(X, y)
    colour = {"name": "colour", "dtype": "categorical", "allowed": {"values": COLOURS},
              "description": "colour"}  # fmt: skip
    return TaskModel("binary", ["no", "yes"], [_number("size"), colour], X, y, pipeline)

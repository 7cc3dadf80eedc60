"""Small multiclass, regression and labelled-binary artifacts, built here with scikit-learn
in the artifact contract's payload format and loaded through the real loader.

Each has a categorical feature (``colour``), one-hot encoded over its codes as the
contract says training does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

COLOURS = ["red", "green", "blue"]
FEATURES: list[dict[str, Any]] = [
    {
        "name": "size",
        "dtype": "number",
        "allowed": {"min": 0.0, "max": 10.0},
        "description": "size in cm",
    },
    {
        "name": "colour",
        "dtype": "categorical",
        "allowed": {"values": COLOURS},
        "description": "colour",
    },
    {
        "name": "count",
        "dtype": "integer",
        "allowed": {"min": 0, "max": 100},
        "description": "how many",
    },
]
MULTICLASS_CLASSES = ["ant", "bee", "cat"]
BINARY_CLASSES = ["benign", "malignant"]
JOBLIB_FORMAT = "sklearn-pipeline-joblib/1"
SKOPS_FORMAT = "sklearn-pipeline-skops/1"


@dataclass(frozen=True)
class Artifact:
    task: str
    model_name: str
    version: str
    path: Path
    sha256: str
    pipeline: Any

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "MODEL_NAME": self.model_name,
            "MODEL_VERSION": self.version,
            "MODEL_PATH": str(self.path),
            "MODEL_SHA256": self.sha256,
            "MODEL_RUNTIME": "sklearn",
            "AWS_LAMBDA_FUNCTION_VERSION": "3",
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v != ""}


def data(rows: int = 300, seed: int = 7) -> NDArray[np.float64]:
    """The encoded matrix: size, colour code, count."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.uniform(0, 10, rows).round(2),
            rng.integers(0, len(COLOURS), rows).astype(np.float64),
            rng.integers(0, 101, rows).astype(np.float64),
        ]
    )


def _pipeline(estimator: Any) -> Pipeline:
    encode = ColumnTransformer(
        [("colour", OneHotEncoder(categories=[list(range(len(COLOURS)))]), [1])],
        remainder="passthrough",
    )
    return Pipeline([("encode", encode), ("model", estimator)])


def fit(task: str) -> Any:
    X = data()
    score = X[:, 0] + 3.0 * X[:, 1] + 0.02 * X[:, 2]
    if task == "regression":
        return _pipeline(LinearRegression()).fit(X, score)
    if task == "multiclass":
        y = np.array(MULTICLASS_CLASSES, dtype=object)[np.digitize(score, [5.0, 9.0])]
    else:
        y = np.array(BINARY_CLASSES, dtype=object)[(score > 7.0).astype(int)]
    return _pipeline(LogisticRegression(max_iter=1000)).fit(X, y)


def write(
    directory: Path, task: str, *, model_name: str = "", version: str = "v1", skops: bool = False
) -> Artifact:
    """Fit a model of ``task`` and write ``model.joblib`` (or ``model.skops``, what the stack
    deploys) and a manifest under ``directory/<model_name>/<version>/`` (the layout of
    model_artifacts/)."""
    name = model_name or f"{task}-example"
    pipeline = fit(task)
    classes = (
        None
        if task == "regression"
        else [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
    )
    payload = {
        "format": JOBLIB_FORMAT,
        "model_name": name,
        "model_version": version,
        "task": task,
        "classes": classes,
        "features": FEATURES,
        "pipeline": pipeline,
    }
    version_dir = directory / name / version
    version_dir.mkdir(parents=True)
    if skops:
        import skops.io

        path = version_dir / "model.skops"
        path.write_bytes(skops.io.dumps({**payload, "format": SKOPS_FORMAT}))
    else:
        path = version_dir / "model.joblib"
        joblib.dump(payload, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    file_format = SKOPS_FORMAT if skops else JOBLIB_FORMAT
    target: dict[str, Any] = {"name": "label"}
    if classes is not None:
        target["classes"] = classes
    if task == "binary":
        target["positive_class"] = classes[1] if classes else None
    manifest = {
        "model_name": name,
        "model_version": version,
        "task": task,
        "target": target,
        "features": FEATURES,
        "artifacts": {"sklearn": {"file": path.name, "format": file_format, "sha256": digest}},
    }
    (version_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return Artifact(task, name, version, path, digest, pipeline)

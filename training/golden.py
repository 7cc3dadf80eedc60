"""The golden set: a labelled sample of the holdout and what the artifact answered on it.

``golden.json`` sits beside the model and is listed in the manifest's ``artifacts`` (under
``golden``), so its SHA-256 is pinned and it is uploaded with the model. It records, for
every runtime the manifest lists, the probabilities and labels that runtime's own loader
produced from the written bytes. A gate that replays the rows through a deployed version
(or through the local artifact) and gets other answers is not running the tested model;
the labels give the quality figures a candidate is compared on.

Floats are written with ``repr`` (Python's JSON does), which reads back to the same
float64, so a recorded probability compares exactly.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tools import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambda_src"))
from inference.model_loader import runtime_loader
from inference.runtimes import RUNTIME_OF_ARTIFACT

GOLDEN_FILE = "golden.json"
FORMAT = "golden-set/1"
ARTIFACT_KEY = "golden"
DEFAULT_ROWS = 1000
SAMPLE_SEED = 42
# The handler's own decision threshold (inference/handler.py THRESHOLD).
THRESHOLD = 0.5
# Which of the app's loaders reads each artifact the manifest can list (the sklearn runtime
# reads both the skops file and the joblib pickle): the runtime registry's own table.
LOADER_OF_ARTIFACT = RUNTIME_OF_ARTIFACT


@dataclass(frozen=True)
class Recorded:
    probabilities: NDArray[np.float64]
    labels: NDArray[np.int64]


@dataclass(frozen=True)
class GoldenSet:
    feature_names: tuple[str, ...]
    X: NDArray[np.float64]
    y: NDArray[np.int64] | None  # None: packaged without labels (inputs and answers only)
    predictions: dict[str, Recorded]

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])

    def instances(self) -> list[dict[str, float | int]]:
        """The rows as the handler's request instances (integers stay integers)."""
        return [
            {
                name: int(value) if float(value).is_integer() else float(value)
                for name, value in zip(self.feature_names, row, strict=True)
            }
            for row in self.X.tolist()
        ]


def stratified_sample(
    y: NDArray[np.int64], rows: int = DEFAULT_ROWS, seed: int = SAMPLE_SEED
) -> NDArray[np.int64]:
    """Indices of a class-stratified sample of ``rows`` rows (all of them if fewer), sorted."""
    if rows < 1:
        raise ValueError(f"golden set size {rows} is not allowed: at least 1 row")
    total = len(y)
    if rows >= total:
        return np.arange(total, dtype=np.int64)
    generator = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    # Largest remainder: each class keeps its share of the holdout, the total is exact.
    exact = counts * rows / total
    quota = np.floor(exact).astype(np.int64)
    for index in np.argsort(-(exact - quota), kind="stable")[: rows - int(quota.sum())]:
        quota[index] += 1
    picked = [
        generator.choice(np.flatnonzero(y == cls), size=int(n), replace=False)
        for cls, n in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def predict(artifact_key: str, data: bytes, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """``P(positive)`` from ``data`` loaded by the app's loader for ``artifact_key``."""
    if artifact_key not in LOADER_OF_ARTIFACT:
        raise ValueError(
            f"artifact {artifact_key!r} has no runtime loader: one of "
            f"{', '.join(sorted(LOADER_OF_ARTIFACT))}"
        )
    model = runtime_loader(LOADER_OF_ARTIFACT[artifact_key])(data)
    return np.asarray(model.outputs(X), dtype=np.float64)


def labels_of(probabilities: NDArray[np.float64]) -> NDArray[np.int64]:
    return (probabilities >= THRESHOLD).astype(np.int64)


def quality(y: NDArray[np.int64], probabilities: NDArray[np.float64]) -> dict[str, float]:
    return {
        "log_loss": stats.log_loss(y, probabilities),
        "roc_auc": stats.roc_auc(y, probabilities),
        "brier_score": stats.brier(y, probabilities),
    }


def document(
    feature_names: Sequence[str],
    X: NDArray[np.float64],
    y: NDArray[np.int64] | None,
    predictions: Mapping[str, NDArray[np.float64]],
    *,
    source: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON content of ``golden.json``."""
    recorded: dict[str, Any] = {}
    for key, probabilities in predictions.items():
        entry: dict[str, Any] = {
            "probabilities": [float(p) for p in probabilities],
            "labels": [int(v) for v in labels_of(probabilities)],
        }
        if y is not None:
            # ROC AUC is undefined on a one-class sample: null, never a bare NaN in JSON.
            entry["metrics"] = {
                name: value if math.isfinite(value) else None
                for name, value in quality(y, probabilities).items()
            }
        recorded[key] = entry
    return {
        "format": FORMAT,
        "rows": int(X.shape[0]),
        "threshold": THRESHOLD,
        "source": dict(source),
        "feature_names": list(feature_names),
        "features": X.tolist(),
        "labels": None if y is None else [int(v) for v in y],
        "predictions": recorded,
    }


def dumps(content: Mapping[str, Any]) -> bytes:
    # Compact and key-ordered: the same golden set always gives the same bytes.
    return (json.dumps(content, separators=(",", ":"), allow_nan=False) + "\n").encode()


def parse(data: bytes, where: str = GOLDEN_FILE) -> GoldenSet:
    """Read ``golden.json`` bytes; ``ValueError`` names the file and the bad field."""
    try:
        content = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{where}: format is {found!r}, expected {FORMAT!r}")
    names = content.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: feature_names must be a non-empty list of names")
    try:
        X = np.asarray(content.get("features"), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: features must be rows of numbers") from None
    if X.ndim != 2 or X.shape[1] != len(names) or X.shape[0] == 0 or not np.all(np.isfinite(X)):
        raise ValueError(
            f"{where}: features has shape {X.shape}: expected rows of {len(names)} finite numbers"
        )
    rows = X.shape[0]
    y = None
    if content.get("labels") is not None:
        y = np.asarray(content["labels"], dtype=np.int64)
        if y.shape != (rows,) or not np.all((y == 0) | (y == 1)):
            raise ValueError(f"{where}: labels must be {rows} values, each 0 or 1")
    raw = content.get("predictions")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}: predictions must name at least one artifact")
    predictions = {}
    for key, entry in raw.items():
        at = f"{where}: predictions.{key}"
        try:
            probabilities = np.asarray(entry["probabilities"], dtype=np.float64)
            labels = np.asarray(entry["labels"], dtype=np.int64)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{at} needs probabilities and labels, {rows} of each") from None
        if probabilities.shape != (rows,) or labels.shape != (rows,):
            raise ValueError(f"{at} needs probabilities and labels, {rows} of each")
        predictions[str(key)] = Recorded(probabilities, labels)
    return GoldenSet(tuple(names), X, y, predictions)


def read(version_dir: Path) -> GoldenSet:
    path = version_dir / GOLDEN_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(
            f"{path} does not exist: the version was packaged before golden sets were "
            "recorded; retrain it (python -m training.train --version <v> --force)"
        ) from None
    return parse(data, str(path))

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.model_loader import runtime_loader
from inference.runtimes import RUNTIME_OF_ARTIFACT
from serving import histograms, stats
from serving.golden_sets import rows_as_instances
from serving.tasks import TASKS

GOLDEN_FILE = "golden.json"
FORMAT = "golden-set/1"
ARTIFACT_KEY = "golden"
DEFAULT_ROWS = 1000
SAMPLE_SEED = 42
# Every class keeps at least this many golden rows (all of them when the holdout has
# fewer): a proportional share rounds a rare class to 0, its one-vs-rest ROC AUC is then
# NaN and the gate refuses every release. 10 rows give each class's AUC 10 x (n - 10)
# pairs rather than none.
MIN_ROWS_PER_CLASS = 10
# The handler's own decision threshold (inference/handler.py THRESHOLD).
THRESHOLD = 0.5
# Which of the app's loaders reads each artifact the manifest can list (the sklearn runtime
# reads both the skops file and the joblib pickle): the runtime registry's own table.
LOADER_OF_ARTIFACT = RUNTIME_OF_ARTIFACT


# Artifacts written before tasks: binary over the classes 0 and 1.
DEFAULT_CLASSES: tuple[Any, ...] = (0, 1)

Label = str | int | float


@dataclass(frozen=True)
class Recorded:
    """One runtime's answers: ``outputs`` as its ``outputs(X)`` gave them (binary: P(classes[1])
    per row; multiclass: probability rows; regression: values) and, for classifiers, the
    class label the handler answers for each row (None for regression)."""

    outputs: NDArray[np.float64]
    labels: NDArray[Any] | None


@dataclass(frozen=True)
class GoldenSet:
    feature_names: tuple[str, ...]
    X: NDArray[np.float64]
    # Class labels (classifiers) or target values (regression); None: packaged without
    # labels (inputs and answers only).
    y: NDArray[Any] | None
    predictions: dict[str, Recorded]
    task: str = "binary"
    classes: tuple[Any, ...] | None = DEFAULT_CLASSES
    # Categorical features: name -> the allowed values; X holds each value's position.
    categories: Mapping[str, Sequence[str | int]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])

    def y_index(self) -> NDArray[np.int64]:
        """``y`` as column indices of ``classes`` (classifiers with labels only)."""
        if self.y is None or self.classes is None:
            raise ValueError(f"a {self.task} golden set without labels has no class indices")
        return class_indices(self.y, self.classes)

    def instances(self) -> list[dict[str, Any]]:
        """The rows as the handler's request instances (integers stay integers, categorical
        codes become the request's values)."""
        return rows_as_instances(self.feature_names, self.X.tolist(), self.categories)


def class_indices(y: Sequence[Any] | NDArray[Any], classes: Sequence[Any]) -> NDArray[np.int64]:
    lookup = {_key(c): index for index, c in enumerate(classes)}
    try:
        return np.array([lookup[_key(v)] for v in np.asarray(y).tolist()], dtype=np.int64)
    except KeyError as error:
        raise ValueError(
            f"label {error.args[0][1]!r} is not one of the classes {list(classes)}"
        ) from None


def _key(value: Any) -> tuple[str, Any]:
    # The string "1" and the integer 1 are different labels; 1 and 1.0 are the same.
    if isinstance(value, str):
        return ("str", value)
    return ("num", float(value))


def known_rows_sample(
    X: NDArray[np.float64],
    strata: NDArray[Any],
    categorical: Sequence[int],
    rows: int = DEFAULT_ROWS,
) -> NDArray[np.int64]:
    """``stratified_sample`` of the rows without a passed unknown category (code -1: its
    value is not in the matrix, and the gate sends golden rows as requests); nulls stay."""
    keep = np.flatnonzero(~(X[:, list(categorical)] < 0).any(axis=1))
    return keep[stratified_sample(strata[keep], rows)].astype(np.int64)


def stratified_sample(
    y: NDArray[Any], rows: int = DEFAULT_ROWS, seed: int = SAMPLE_SEED, *, task: str = "binary"
) -> NDArray[np.int64]:
    """Indices of a class-stratified sample of ``rows`` rows (all of them if fewer), sorted.

    Every class keeps at least ``MIN_ROWS_PER_CLASS`` rows (or all it has; in a sample of
    under 40 rows per class, a quarter of an even share, at least 1), taken from the
    largest classes' shares. Regression targets have no classes: the sample is
    stratified on the target's deciles, so that the tails the gate should see are in it."""
    if rows < 1:
        raise ValueError(f"golden set size {rows} is not allowed: at least 1 row")
    total = len(y)
    if rows >= total:
        return np.arange(total, dtype=np.int64)
    if task == "regression":
        target = np.asarray(y, dtype=np.float64)
        y = histograms.numeric_histogram(target).bin_index(target)
    generator = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    # Largest remainder: each class keeps its share of the holdout, the total is exact.
    exact = counts * rows / total
    quota = np.floor(exact).astype(np.int64)
    for index in np.argsort(-(exact - quota), kind="stable")[: rows - int(quota.sum())]:
        quota[index] += 1
    # A small sample (under 4 x 10 rows per class) keeps a quarter of an even share, at
    # least 1 row: the floor must not outweigh the proportions it corrects.
    floor = min(MIN_ROWS_PER_CLASS, max(1, rows // (4 * len(classes))))
    quota = _with_floor(quota, np.minimum(counts, floor).astype(np.int64))
    picked = [
        generator.choice(np.flatnonzero(y == cls), size=int(n), replace=False)
        for cls, n in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _with_floor(quota: NDArray[np.int64], floor: NDArray[np.int64]) -> NDArray[np.int64]:
    """``quota`` raised to ``floor``, the rows added taken back one by one from the class
    with the most rows above its floor: the total stays, unless the floors alone exceed it."""
    total = int(quota.sum())
    quota = np.maximum(quota, floor)
    while int(quota.sum()) > max(total, int(floor.sum())):
        quota[int(np.argmax(quota - floor))] -= 1
    return quota


def predict(artifact_key: str, data: bytes, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """The runtime's ``outputs(X)`` from ``data`` loaded by the app's loader for
    ``artifact_key``: binary P(classes[1]) (n,), multiclass probability rows (n, k),
    regression values (n,)."""
    if artifact_key not in LOADER_OF_ARTIFACT:
        raise ValueError(
            f"artifact {artifact_key!r} has no runtime loader: one of "
            f"{', '.join(sorted(LOADER_OF_ARTIFACT))}"
        )
    model = runtime_loader(LOADER_OF_ARTIFACT[artifact_key])(data)
    return np.asarray(model.outputs(X), dtype=np.float64)


def labels_of(
    outputs: NDArray[np.float64],
    task: str = "binary",
    classes: Sequence[Any] | None = DEFAULT_CLASSES,
) -> NDArray[Any]:
    """The label the handler answers per row (inference/handler.py): binary classes[1] from
    ``THRESHOLD``, multiclass the most probable class (the first on ties)."""
    if task == "regression" or classes is None:
        raise ValueError("a regression model answers values, not class labels")
    if task == "binary":
        if list(classes) == list(DEFAULT_CLASSES):
            return (outputs >= THRESHOLD).astype(np.int64)
        picked = (outputs >= THRESHOLD).astype(np.int64)
    else:
        picked = np.argmax(outputs, axis=1)
    return np.asarray([classes[int(i)] for i in picked])


def quality(
    y: NDArray[Any],
    outputs: NDArray[np.float64],
    task: str = "binary",
    classes: Sequence[Any] | None = DEFAULT_CLASSES,
) -> dict[str, float]:
    """The golden-set metrics of one runtime's answers (binary: as the first golden sets)."""
    if task == "regression":
        return {
            "rmse": stats.rmse(y, outputs),
            "mae": stats.mae(y, outputs),
            "r2": stats.r2(y, outputs),
        }
    assert classes is not None
    index = class_indices(y, classes)
    if task == "binary":
        return {
            "log_loss": stats.log_loss(index, outputs),
            "roc_auc": stats.roc_auc(index, outputs),
            "brier_score": stats.brier(index, outputs),
        }
    return {
        "log_loss": stats.multiclass_log_loss(index, outputs),
        "roc_auc_ovr": stats.roc_auc_ovr(index, outputs),
        "accuracy": stats.multiclass_accuracy(index, outputs),
    }


def check_task(task: str, classes: Sequence[Any] | None, where: str = "golden set") -> None:
    if task not in TASKS:
        raise ValueError(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    if task == "regression":
        if classes is not None:
            raise ValueError(f"{where}: a regression golden set has no classes, got {classes!r}")
        return
    if (
        not isinstance(classes, Sequence)
        or isinstance(classes, str)
        or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in classes)
        or len({_key(c) for c in classes}) != len(classes)
    ):
        raise ValueError(f"{where}: classes must be distinct strings or integers, got {classes!r}")
    if (task == "binary") != (len(classes) == 2) or len(classes) < 2:
        raise ValueError(f"{where}: a {task} golden set with {len(classes)} classes")


def document(
    feature_names: Sequence[str],
    X: NDArray[np.float64],
    y: NDArray[Any] | None,
    predictions: Mapping[str, NDArray[np.float64]],
    *,
    source: Mapping[str, Any],
    task: str = "binary",
    classes: Sequence[Any] | None = DEFAULT_CLASSES,
    features: Sequence[Mapping[str, Any]] | None = None,
    training_rows: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON content of ``golden.json``.

    ``training_rows``: the version's training-row filter (the manifest's), so that the
    traffic gate can leave out of another version's golden set the rows this one
    trained on; absent, the file is as it was before filters.

    ``predictions``: each runtime's ``outputs`` on ``X``. ``X``: the encoded matrix (a
    categorical column holds positions in its values). ``y``: class labels (classifiers)
    or target values (regression). ``features``: the artifact's features list, needed when
    one is categorical (its values go into the file, so that the rows can be sent as
    requests without the manifest). A binary model over the classes 0 and 1 without
    categorical features gets exactly the bytes of the first golden sets.
    """
    classes = None if task == "regression" else tuple(classes or DEFAULT_CLASSES)
    check_task(task, classes)
    categories = _categories(features, feature_names)
    recorded: dict[str, Any] = {}
    for key, outputs in predictions.items():
        outputs = np.asarray(outputs, dtype=np.float64)
        if task == "regression":
            entry: dict[str, Any] = {"values": [float(v) for v in outputs]}
        else:
            entry = {
                "probabilities": outputs.tolist()
                if task == "multiclass"
                else [float(p) for p in outputs],
                "labels": [_scalar(v) for v in labels_of(outputs, task, classes)],
            }
        if y is not None:
            # ROC AUC is undefined on a one-class sample: null, never a bare NaN in JSON.
            entry["metrics"] = {
                name: value if math.isfinite(value) else None
                for name, value in quality(y, outputs, task, classes).items()
            }
        recorded[key] = entry
    content: dict[str, Any] = {"format": FORMAT, "rows": int(X.shape[0])}
    if task == "binary":
        content["threshold"] = THRESHOLD
    content["source"] = dict(source)
    if task != "binary" or classes != DEFAULT_CLASSES:
        content["task"] = task
        content["classes"] = None if classes is None else [_scalar(c) for c in classes]
    content["feature_names"] = list(feature_names)
    if categories:
        content["categories"] = {name: list(values) for name, values in categories.items()}
    # A null (NaN, a nullable feature's missing value) as JSON null, as a request sends it.
    content["features"] = [[None if v != v else v for v in row] for row in X.tolist()]
    if y is None:
        content["labels"] = None
    elif task == "regression":
        content["labels"] = [float(v) for v in np.asarray(y, dtype=np.float64)]
    else:
        content["labels"] = [_scalar(v) for v in np.asarray(y).tolist()]
    content["predictions"] = recorded
    if training_rows is not None:
        content["training_rows"] = dict(training_rows)
    return content


def _scalar(value: Any) -> Label:
    """A plain JSON scalar from a numpy or Python label."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # type: ignore[no-any-return]


def _categories(
    features: Sequence[Mapping[str, Any]] | None, feature_names: Sequence[str]
) -> dict[str, list[str | int]]:
    if features is None:
        return {}
    names = [f.get("name") for f in features]
    if names != list(feature_names):
        raise ValueError(f"features list names {names}, the golden set {list(feature_names)}")
    return {
        str(f["name"]): list(f["allowed"]["values"])
        for f in features
        if f.get("dtype") == "categorical"
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
    task = content.get("task", "binary")
    raw_classes = content.get("classes", list(DEFAULT_CLASSES))
    classes = (
        None
        if raw_classes is None
        else tuple(raw_classes)
        if isinstance(raw_classes, list)
        else raw_classes
    )
    check_task(task, classes, where)
    names = content.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: feature_names must be a non-empty list of names")
    try:
        X = np.asarray(content.get("features"), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: features must be rows of numbers") from None
    # null (NaN here) is a nullable feature's missing value; no other non-finite number.
    if X.ndim != 2 or X.shape[1] != len(names) or X.shape[0] == 0 or np.isinf(X).any():
        raise ValueError(
            f"{where}: features has shape {X.shape}: expected rows of {len(names)} finite "
            "numbers or nulls"
        )
    categories = _parse_categories(content.get("categories", {}), names, X, where)
    rows = X.shape[0]
    y = (
        None
        if content.get("labels") is None
        else _parse_y(content["labels"], rows, task, classes, where)
    )
    raw = content.get("predictions")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}: predictions must name at least one artifact")
    predictions = {
        str(key): _parse_recorded(entry, rows, task, classes, f"{where}: predictions.{key}")
        for key, entry in raw.items()
    }
    return GoldenSet(tuple(names), X, y, predictions, task, classes, categories)


def _parse_categories(
    raw: Any, names: list[str], X: NDArray[np.float64], where: str
) -> dict[str, list[str | int]]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: categories must map feature names to their values")
    categories = {}
    for name, values in raw.items():
        if name not in names:
            raise ValueError(f"{where}: categories names {name!r}, not one of feature_names")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values)
        ):
            raise ValueError(f"{where}: categories.{name} must be a list of strings or integers")
        codes = X[:, names.index(name)]
        codes = codes[~np.isnan(codes)]
        if not np.all((codes == np.floor(codes)) & (codes >= 0) & (codes < len(values))):
            raise ValueError(f"{where}: feature {name!r} holds codes outside 0..{len(values) - 1}")
        categories[name] = values
    return categories


def _parse_y(
    raw: Any, rows: int, task: str, classes: tuple[Any, ...] | None, where: str
) -> NDArray[Any]:
    if task == "regression":
        try:
            y = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            y = np.empty(0)
        if y.shape != (rows,) or not np.all(np.isfinite(y)):
            raise ValueError(f"{where}: labels must be {rows} finite numbers")
        return y
    assert classes is not None
    allowed = {_key(c) for c in classes}
    if (
        not isinstance(raw, list)
        or len(raw) != rows
        or not all(
            isinstance(v, str | int) and not isinstance(v, bool) and _key(v) in allowed for v in raw
        )
    ):
        if list(classes) == list(DEFAULT_CLASSES):
            raise ValueError(f"{where}: labels must be {rows} values, each 0 or 1")
        raise ValueError(f"{where}: labels must be {rows} values, each one of {list(classes)}")
    return np.asarray(raw)


def _parse_recorded(
    entry: Any, rows: int, task: str, classes: tuple[Any, ...] | None, at: str
) -> Recorded:
    if task == "regression":
        try:
            values = np.asarray(entry["values"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            values = np.empty(0)
        if values.shape != (rows,):
            raise ValueError(f"{at} needs values, {rows} of them")
        return Recorded(values, None)
    assert classes is not None
    shape = (rows,) if task == "binary" else (rows, len(classes))
    try:
        outputs = np.asarray(entry["probabilities"], dtype=np.float64)
        labels = np.asarray(entry["labels"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{at} needs probabilities and labels, {rows} of each") from None
    if outputs.shape != shape or labels.shape != (rows,):
        raise ValueError(f"{at} needs probabilities {shape} and {rows} labels")
    if task == "binary" and list(classes) == list(DEFAULT_CLASSES):
        labels = labels.astype(np.int64)
    return Recorded(outputs, labels)


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

"""Reference distributions for a manifest: what the training data and the model's answers
looked like, so that drift in live traffic can be measured against them.

Training calls ``reference_distributions(X, manifest["features"], holdout_outputs, task=...,
classes=...)``
and stores the result under ``manifest["reference_distributions"]``; the drift tool and
monitor read it back with ``read_reference``. Bins come from ``serving.histograms`` so that both
sides bin alike: quantile bins (deciles) for numbers, one bin per value for integer
features with at most ``serving.histograms.MAX_CATEGORIES`` distinct values (codes such as the
contract type), one bin per allowed value for categorical features (the values requests
send, strings or integers), plus a bin for categories the reference never saw, and for a
nullable feature (``"nullable": true``) a last bin for nulls (NaN in the matrix). The
prediction is binned per task: binary the probability of the positive class and
regression the value (deciles), multiclass the predicted class (one bin per class).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serving import histograms
from serving.tasks import TASKS

MANIFEST_KEY = "reference_distributions"
FORMAT = "reference-distributions/1"


@dataclass(frozen=True)
class Reference:
    features: dict[str, histograms.Histogram]
    prediction: histograms.Histogram
    # What ``prediction`` bins: binary the probability of classes[1]; multiclass the
    # predicted class label; regression the predicted value.
    task: str = "binary"


def reference_distributions(
    features: NDArray[np.float64] | Sequence[Mapping[str, Any]],
    schema: Sequence[Mapping[str, Any]],
    predictions: ArrayLike,
    *,
    bins: int = histograms.DEFAULT_BINS,
    kinds: Mapping[str, histograms.Kind] | None = None,
    task: str = "binary",
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The JSON-serializable reference for a manifest.

    ``features``: a matrix with the schema's columns in order (a categorical column holds
    each value's position in its ``allowed.values``; NaN a null of a nullable feature,
    -1 an unlisted category of one with ``"unknown": "pass"``), or records keyed by
    feature name (categorical features as the request's values, None for null).
    ``schema``: the manifest's ``features`` entries (``name``, ``dtype``, ``allowed``,
    ``nullable``, ``unknown``). ``predictions``: the model's
    ``outputs`` on the holdout: binary the probabilities of classes[1]; multiclass the
    probability rows (binned as the predicted class, over ``classes``); regression the
    predicted values (quantile bins). ``kinds`` forces a numeric feature to be binned as
    ``numeric`` or ``categorical`` instead of by the rule above.
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    names = [_name(entry, index) for index, entry in enumerate(schema)]
    unknown = sorted(set(kinds or {}) - set(names))
    if unknown:
        raise ValueError(f"kinds names features not in the schema: {', '.join(unknown)}")
    allowed = {name: _values(entry) for name, entry in zip(names, schema, strict=True)}
    matrix = _matrix(features, names, allowed, schema)
    by_feature = {}
    for column, (name, entry) in enumerate(zip(names, schema, strict=True)):
        values = allowed[name]
        missing = entry.get("nullable") is True
        if values is not None:
            # Requests send (and capture records keep) the value, not its code.
            observed = [_value(values, code) for code in matrix[:, column].tolist()]
            by_feature[name] = histograms.value_histogram(
                observed, values, missing=missing
            ).to_json()
            continue
        by_feature[name] = histograms.reference_histogram(
            matrix[:, column],
            integer=entry.get("dtype") == "integer",
            bins=bins,
            kind=(kinds or {}).get(name),
            missing=missing,
        ).to_json()
    reference = {
        "format": FORMAT,
        "bins": bins,
        "psi_floor": histograms.PSI_FLOOR,
        "rows": int(matrix.shape[0]),
    }
    if task != "binary":
        reference["task"] = task
    reference["features"] = by_feature
    reference["prediction"] = _prediction(predictions, task, classes, bins).to_json()
    return reference


def _prediction(
    predictions: ArrayLike, task: str, classes: Sequence[Any] | None, bins: int
) -> histograms.Histogram:
    outputs = np.asarray(predictions, dtype=np.float64)
    if task == "multiclass":
        if classes is None or len(classes) < 3:
            raise ValueError(
                f"a multiclass reference needs its classes (3 or more), got {classes!r}"
            )
        if outputs.ndim != 2 or outputs.shape[1] != len(classes) or outputs.shape[0] == 0:
            raise ValueError(
                f"predictions must be probability rows of {len(classes)} classes, got shape "
                f"{outputs.shape}"
            )
        # The answer's label: the most probable class, the first on ties (as the handler).
        labels = [classes[int(i)] for i in np.argmax(outputs, axis=1)]
        return histograms.value_histogram(labels, list(classes))
    if outputs.ndim != 1 or outputs.size == 0:
        raise ValueError(f"predictions must be a non-empty vector, got shape {outputs.shape}")
    if task == "regression":
        if not np.all(np.isfinite(outputs)):
            raise ValueError("predictions must be finite values")
    elif not np.all((outputs >= 0) & (outputs <= 1)):
        raise ValueError("predictions must be probabilities in [0, 1]")
    return histograms.numeric_histogram(outputs, bins)


def read_reference(manifest: Mapping[str, Any], where: str = "manifest") -> Reference:
    """Parse ``manifest[MANIFEST_KEY]``; ``ValueError`` names the path of a bad field."""
    key = f"{where}.{MANIFEST_KEY}"
    data = manifest.get(MANIFEST_KEY)
    if data is None:
        raise ValueError(
            f"{where} has no {MANIFEST_KEY!r}: the version was trained before reference "
            "distributions were recorded; retrain or repackage it"
        )
    if not isinstance(data, Mapping):
        raise ValueError(f"{key} must be an object")
    if data.get("format") != FORMAT:
        raise ValueError(f"{key}.format is {data.get('format')!r}: expected {FORMAT!r}")
    task = data.get("task", "binary")
    if task not in TASKS:
        raise ValueError(f"{key}.task is {task!r}: expected one of {', '.join(TASKS)}")
    features = data.get("features")
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"{key}.features must be a non-empty object")
    prediction = histograms.Histogram.from_json(data.get("prediction"), f"{key}.prediction")
    expected = "categorical" if task == "multiclass" else "numeric"
    if prediction.kind != expected:
        raise ValueError(
            f"{key}.prediction.kind is {prediction.kind!r}: a {task} model's is {expected!r}"
        )
    return Reference(
        {
            str(name): histograms.Histogram.from_json(value, f"{key}.features.{name}")
            for name, value in features.items()
        },
        prediction,
        task,
    )


# Stands for an unlisted category (code -1) in a reference: it falls into the unseen bin.
_UNLISTED = "\x00unlisted category"


def _value(values: Sequence[Any], code: float) -> Any:
    if math.isnan(code):
        return None
    return _UNLISTED if code < 0 else values[int(code)]


def _values(entry: Mapping[str, Any]) -> list[Any] | None:
    """A categorical feature's allowed values (None for numbers)."""
    if entry.get("dtype") != "categorical":
        return None
    values = (entry.get("allowed") or {}).get("values")
    if not isinstance(values, list) or not values:
        raise ValueError(f"categorical feature {entry.get('name')!r} lists no allowed values")
    return values


def _name(entry: Mapping[str, Any], index: int) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"schema entry {index} has no name: {entry!r}")
    return name


def _matrix(
    features: NDArray[np.float64] | Sequence[Mapping[str, Any]],
    names: Sequence[str],
    allowed: Mapping[str, list[Any] | None],
    schema: Sequence[Mapping[str, Any]],
) -> NDArray[np.float64]:
    nullable = {entry.get("name") for entry in schema if entry.get("nullable") is True}
    passing = {entry.get("name") for entry in schema if entry.get("unknown") == "pass"}
    if isinstance(features, np.ndarray):
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(
                f"feature matrix has shape {matrix.shape}: expected one column per schema "
                f"feature ({len(names)})"
            )
        for column, name in enumerate(names):
            values = allowed[name]
            codes = matrix[:, column]
            lowest = -1 if name in passing else 0
            valid = (codes == np.floor(codes)) & (codes >= lowest) & (codes < len(values or ()))
            if values is not None and not np.all(valid | (np.isnan(codes) & (name in nullable))):
                raise ValueError(
                    f"feature {name!r} is categorical: its column must hold positions "
                    f"0..{len(values) - 1} in its values"
                    + (" (-1: an unlisted one)" if lowest else "")
                    + (" or NaN (null)" if name in nullable else "")
                )
    else:
        codes_of = {
            name: {histograms.category_key(v): i for i, v in enumerate(values)}
            for name, values in allowed.items()
            if values is not None
        }
        rows = []
        for index, record in enumerate(features):
            missing = [name for name in names if name not in record]
            if missing:
                raise ValueError(f"feature record {index} lacks {', '.join(missing)}")
            row = []
            for name in names:
                if record[name] is None and name in nullable:
                    row.append(math.nan)
                elif name in codes_of:
                    code = codes_of[name].get(histograms.category_key(record[name]))
                    if code is None and name in passing and isinstance(record[name], str | int):
                        code = -1
                    if code is None:
                        raise ValueError(
                            f"feature record {index}: {name}={record[name]!r} is not one of "
                            f"its values {allowed[name]}"
                        )
                    row.append(float(code))
                else:
                    row.append(float(record[name]))
            rows.append(row)
        matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(names))
    if matrix.shape[0] == 0:
        raise ValueError("no feature rows to build reference distributions from")
    return matrix

"""Reference distributions for a manifest: what the training data and the model's answers
looked like, so that drift in live traffic can be measured against them.

Training calls ``reference_distributions(X, manifest["features"], holdout_probabilities)``
and stores the result under ``manifest["reference_distributions"]``; the drift tool and
monitor read it back with ``read_reference``. Bins come from ``tools.stats`` so that both
sides bin alike: quantile bins (deciles) for numbers, one bin per value for integer
features with at most ``tools.stats.MAX_CATEGORIES`` distinct values (codes such as the
contract type), plus a bin for categories the reference never saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tools import stats

MANIFEST_KEY = "reference_distributions"
FORMAT = "reference-distributions/1"


@dataclass(frozen=True)
class Reference:
    features: dict[str, stats.Histogram]
    prediction: stats.Histogram


def reference_distributions(
    features: NDArray[np.float64] | Sequence[Mapping[str, float]],
    schema: Sequence[Mapping[str, Any]],
    predictions: ArrayLike,
    *,
    bins: int = stats.DEFAULT_BINS,
    kinds: Mapping[str, stats.Kind] | None = None,
) -> dict[str, Any]:
    """The JSON-serializable reference for a manifest.

    ``features``: a matrix with the schema's columns in order, or records keyed by feature
    name. ``schema``: the manifest's ``features`` entries (``name``, ``dtype``).
    ``predictions``: the positive-class probabilities on the holdout. ``kinds`` forces a
    feature to be binned as ``numeric`` or ``categorical`` instead of by the rule above.
    """
    names = [_name(entry, index) for index, entry in enumerate(schema)]
    unknown = sorted(set(kinds or {}) - set(names))
    if unknown:
        raise ValueError(f"kinds names features not in the schema: {', '.join(unknown)}")
    matrix = _matrix(features, names)
    histograms = {}
    for column, (name, entry) in enumerate(zip(names, schema, strict=True)):
        histograms[name] = stats.reference_histogram(
            matrix[:, column],
            integer=entry.get("dtype") == "integer",
            bins=bins,
            kind=(kinds or {}).get(name),
        ).to_json()
    probabilities = np.asarray(predictions, dtype=np.float64)
    if probabilities.ndim != 1 or probabilities.size == 0:
        raise ValueError(f"predictions must be a non-empty vector, got shape {probabilities.shape}")
    if not np.all((probabilities >= 0) & (probabilities <= 1)):
        raise ValueError("predictions must be probabilities in [0, 1]")
    return {
        "format": FORMAT,
        "bins": bins,
        "psi_floor": stats.PSI_FLOOR,
        "rows": int(matrix.shape[0]),
        "features": histograms,
        "prediction": stats.numeric_histogram(probabilities, bins).to_json(),
    }


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
    features = data.get("features")
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"{key}.features must be a non-empty object")
    return Reference(
        {
            str(name): stats.Histogram.from_json(value, f"{key}.features.{name}")
            for name, value in features.items()
        },
        stats.Histogram.from_json(data.get("prediction"), f"{key}.prediction"),
    )


def _name(entry: Mapping[str, Any], index: int) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"schema entry {index} has no name: {entry!r}")
    return name


def _matrix(
    features: NDArray[np.float64] | Sequence[Mapping[str, float]], names: Sequence[str]
) -> NDArray[np.float64]:
    if isinstance(features, np.ndarray):
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(
                f"feature matrix has shape {matrix.shape}: expected one column per schema "
                f"feature ({len(names)})"
            )
    else:
        rows = []
        for index, record in enumerate(features):
            missing = [name for name in names if name not in record]
            if missing:
                raise ValueError(f"feature record {index} lacks {', '.join(missing)}")
            rows.append([float(record[name]) for name in names])
        matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(names))
    if matrix.shape[0] == 0:
        raise ValueError("no feature rows to build reference distributions from")
    return matrix

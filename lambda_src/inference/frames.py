"""A pipeline fitted on a DataFrame is called the way it was fitted: columns by name, values
as values (strings as strings), NaN where a request sent null.

Everything before the model (validation, golden sets, parity rows) holds rows as one
float64 matrix in schema order (``serving/schema.py``: a categorical value as its code, a
null as NaN, a passed unknown category as ``UNKNOWN_CODE``). ``to_frame`` turns that
matrix back into the DataFrame the pipeline saw at fit time. The sklearn runtime calls it
for an artifact whose payload says ``"input": "frame"`` (written by ``training.package``
for a pipeline with ``feature_names_in_``); training and packaging call it too, so what
the parity and quality gates judge is what the handler sends.

``dtypes`` (the payload's ``"frame_dtypes"``, recorded by packaging from the user's data)
gives each column the pandas dtype it had at fit time; without it a numeric column is
float64, a categorical one holds Python values (object dtype). pandas is imported here
lazily; the compiled runtime never loads it, but scikit-learn (1.9) imports it at
``import sklearn`` whenever it is installed, so in the sklearn image every model pays for
it (docs/performance.md, "sklearn runtime: pipelines fitted on a DataFrame").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.validation import CategoryValue, Feature

# The payload's "input" for a pipeline fitted on a DataFrame (absent: the codes matrix).
FRAME_INPUT = "frame"
# Stand-ins for an unknown category when no request value is at hand (parity rows, golden
# sets): every encoder treats all values it has never seen alike, so any unseen value will
# do; these are chosen to be unlike any real category.
UNKNOWN_TEXT = "\x00unknown category"
UNKNOWN_INTEGER = -(2**31) + 7


def placeholder(feature: Feature) -> CategoryValue:
    """A value of ``feature``'s category type that is not one of its values."""
    values = feature.values or ()
    if values and all(isinstance(value, int) for value in values):
        candidate = UNKNOWN_INTEGER
        while candidate in values:
            candidate -= 1
        return candidate
    return UNKNOWN_TEXT


def to_frame(
    X: NDArray[np.float64],
    features: Sequence[Feature],
    *,
    unknown: Mapping[tuple[int, int], CategoryValue] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> Any:
    """The pandas DataFrame of ``X`` (rows in schema order, codes for categories)."""
    import pandas as pd

    if X.ndim != 2 or X.shape[1] != len(features):
        raise ValueError(f"rows of {X.shape[1:]} values for {len(features)} features")
    unknown = unknown or {}
    columns: dict[str, Any] = {}
    for j, feature in enumerate(features):
        column = X[:, j]
        dtype = (dtypes or {}).get(feature.name)
        if feature.values is None:
            columns[feature.name] = _numeric(pd, column, dtype)
        else:
            columns[feature.name] = _categorical(pd, column, j, feature, unknown, dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(X.shape[0]), copy=False)


def _numeric(pd: Any, column: NDArray[np.float64], dtype: str | None) -> Any:
    if dtype is None or dtype == "float64":
        return column
    missing = np.isnan(column)
    if dtype.startswith(("int", "uint")) and missing.any():
        # What pandas itself reads from a CSV integer column with an empty cell.
        return column
    return pd.Series(column).astype(dtype)


def _categorical(
    pd: Any,
    column: NDArray[np.float64],
    j: int,
    feature: Feature,
    unknown: Mapping[tuple[int, int], CategoryValue],
    dtype: str | None,
) -> Any:
    assert feature.values is not None
    table = np.empty(len(feature.values) + 1, dtype=object)
    table[:-1] = feature.values
    table[-1] = np.nan
    missing = np.isnan(column)
    codes = np.where(missing | (column < 0), len(feature.values), column).astype(np.intp)
    out = table[codes]
    for row in np.flatnonzero(~missing & (column < 0)):
        out[row] = unknown.get((int(row), j), placeholder(feature))
    if dtype is None or dtype == "object":
        integers = all(isinstance(value, int) for value in feature.values)
        if integers and not (missing.any() or (column < 0).any()):
            return out.astype(np.int64)
        return out
    if dtype == "category":
        # An unknown value must stay itself: a Categorical turns values outside its
        # categories into NaN, which an encoder would read as missing, not unknown.
        passed = dict.fromkeys(out[~missing & (column < 0)].tolist())
        return pd.Categorical(out, categories=[*feature.values, *passed])
    return pd.Series(out, dtype=object).astype(dtype)


def fitted_on_frame(pipeline: Any) -> bool:
    """Whether ``pipeline`` was fitted on a DataFrame: it then records its columns' names
    (``feature_names_in_``, every one a string) and is called with a DataFrame."""
    names = getattr(pipeline, "feature_names_in_", None)
    return names is not None and all(isinstance(name, str) for name in names)


def column_mismatch(pipeline: Any, names: Sequence[str], *, listed: str = "schema") -> str | None:
    """How the columns ``pipeline`` was fitted on differ from ``names`` (the first column
    that differs, or the counts), or None when they are the same in the same order: the one
    check the runtime's loader, the compiler and packaging each make before they call a
    frame model with ``to_frame``'s columns. ``listed`` names what ``names`` come from."""
    fitted = [str(name) for name in getattr(pipeline, "feature_names_in_", ())]
    wanted = [str(name) for name in names]
    if fitted == wanted:
        return None
    for position, (got, want) in enumerate(zip(fitted, wanted, strict=False), start=1):
        if got != want:
            return (
                f"column {position} of the model is {got!r}, of the {listed} {want!r}: the "
                f"model was fitted on {', '.join(fitted)}"
            )
    return (
        f"the model was fitted on {len(fitted)} columns ({', '.join(fitted)}), the {listed} "
        f"lists {len(wanted)} ({', '.join(wanted)})"
    )


class FramePipeline:
    """A frame model seen through the codes matrix: ``predict``/``predict_proba`` take the
    matrix (and the raw unknown values) and call the pipeline with ``to_frame``'s DataFrame.
    Training, packaging and the gates hold one of these where they would hold a codes model,
    so every figure they produce is of what the handler sends."""

    def __init__(
        self,
        pipeline: Any,
        features: Sequence[Feature],
        dtypes: Mapping[str, str] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.features = tuple(features)
        self.dtypes = dict(dtypes or {})

    def frame(
        self,
        X: NDArray[np.float64],
        unknown: Mapping[tuple[int, int], CategoryValue] | None = None,
    ) -> Any:
        return to_frame(X, self.features, unknown=unknown, dtypes=self.dtypes)

    def predict(
        self,
        X: NDArray[np.float64],
        unknown: Mapping[tuple[int, int], CategoryValue] | None = None,
    ) -> Any:
        return self.pipeline.predict(self.frame(X, unknown))

    def predict_proba(
        self,
        X: NDArray[np.float64],
        unknown: Mapping[tuple[int, int], CategoryValue] | None = None,
    ) -> Any:
        return self.pipeline.predict_proba(self.frame(X, unknown))

    def __getattr__(self, name: str) -> Any:
        # classes_, n_features_in_, steps...: the pipeline's own.
        if name == "pipeline":
            raise AttributeError(name)
        return getattr(self.pipeline, name)

"""What a pipeline fitted on a DataFrame expects, against what the handler will send it.

A frame model (``inference.frames.fitted_on_frame``) is called with the DataFrame
``inference.frames.to_frame`` builds from the codes matrix. Before it is packaged, this
module checks, naming the step and the column of any mismatch:

* ``feature_names_in_`` equals the schema's names, in order;
* every encoder (``OneHotEncoder``, ``OrdinalEncoder``, anywhere in the pipeline: through
  ``ColumnTransformer`` and nested ``Pipeline``s) agrees with the schema: a numeric
  feature does not feed an encoder of strings, a listed value is one the encoder knows
  when it refuses unknown values, ``unknown: pass`` only reaches an encoder that handles
  unknown values, and then every category the encoder knows is listed (an unlisted one
  would arrive as unknown);
* the decisive check: on the given rows the handler's frame (``FramePipeline``) gives the
  same answers as the pipeline on the user's own DataFrame rows, within ``ANSWER_BOUND``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.frames import FramePipeline, column_mismatch
from serving.schema import FeatureSpec, Schema, quote

# The handler's frame and the user's own must give the same answers within this bound
# (the issue's: the served answers equal predict_proba on the same rows within 1e-9).
ANSWER_BOUND = 1e-9
ENCODERS = ("OneHotEncoder", "OrdinalEncoder")
# Steps that keep their input columns one for one (an encoder after them reads the same
# columns); anything else hides which column an encoder reads, and it is not checked.
COLUMNWISE = (
    "SimpleImputer",
    "StandardScaler",
    "MinMaxScaler",
    "RobustScaler",
    "MaxAbsScaler",
    "FunctionTransformer",
)


class FrameCheckError(ValueError):
    """The pipeline and the schema disagree; the message names the step and the column."""


@dataclass(frozen=True)
class Encoder:
    """A step of the pipeline (an encoder, for ``encoders``) and the columns it reads."""

    path: str  # "step 'pre' > transformer 'cat' > step 'onehotencoder'"
    encoder: Any
    columns: tuple[str, ...]  # the schema columns it reads, in its categories_ order
    imputed: bool  # an imputer before it fills missing values


def encoders(pipeline: Any) -> Iterator[Encoder]:
    """Every fitted encoder of ``pipeline`` whose input columns are known."""
    for found in column_steps(pipeline):
        kind = type(found.encoder).__name__
        if kind in ENCODERS and len(found.columns) == len(found.encoder.categories_):
            yield found


def column_steps(pipeline: Any) -> Iterator[Encoder]:
    """Every fitted step of ``pipeline`` (through ``Pipeline`` and ``ColumnTransformer``)
    whose input columns are known, with those columns."""
    names = tuple(str(n) for n in getattr(pipeline, "feature_names_in_", ()))
    yield from _leaves(pipeline, "", names, False)


def _leaves(step: Any, path: str, columns: tuple[str, ...] | None, imputed: bool) -> Any:
    kind = type(step).__name__
    if not hasattr(step, "steps") and not hasattr(step, "transformers_"):
        own = getattr(step, "feature_names_in_", None)
        known = tuple(str(n) for n in own) if own is not None else columns
        if known:
            yield Encoder(path or f"step {kind!r}", step, known, imputed)
        return
    if hasattr(step, "steps"):
        for name, inner in step.steps:
            if inner in (None, "passthrough"):
                continue
            yield from _leaves(inner, _join(path, f"step {name!r}"), columns, imputed)
            inner_kind = type(inner).__name__
            imputed = imputed or inner_kind == "SimpleImputer"
            if inner_kind not in COLUMNWISE or getattr(inner, "add_indicator", False):
                columns = None
        return
    if hasattr(step, "transformers_"):
        indices = getattr(step, "_transformer_to_input_indices", {})
        names = tuple(str(n) for n in getattr(step, "feature_names_in_", ()))
        for name, inner, _ in step.transformers_:
            if inner in ("drop", "passthrough"):
                continue
            selected = indices.get(name)
            inner_columns = (
                tuple(names[int(i)] for i in selected) if names and selected is not None else None
            )
            yield from _leaves(inner, _join(path, f"transformer {name!r}"), inner_columns, imputed)


def _join(path: str, part: str) -> str:
    return f"{path} > {part}" if path else part


def check_names(pipeline: Any, schema: Schema, where: str) -> None:
    problem = column_mismatch(pipeline, schema.feature_names)
    if problem is not None:
        raise FrameCheckError(
            f"{where}: {problem}; list the schema's features in that order, with those names"
        )


def check_encoders(pipeline: Any, schema: Schema, where: str) -> None:
    """Refuse a schema that sends an encoder what it cannot take, naming step and column."""
    specs = {spec.name: spec for spec in schema.features}
    for found in encoders(pipeline):
        refuses = getattr(found.encoder, "handle_unknown", "error") == "error"
        for column, categories in zip(found.columns, found.encoder.categories_, strict=True):
            spec = specs.get(column)
            if spec is None:
                continue
            at = f"{where}: {found.path}, column {column!r}"
            _check_column(at, spec, categories, refuses)
            missing_known = any(_is_missing(c) for c in categories)
            if spec.nullable and refuses and not found.imputed and not missing_known:
                raise FrameCheckError(
                    f"{at}: the schema says nullable, but a null would reach an encoder that "
                    "never saw a missing value and refuses unknown values "
                    "(handle_unknown='error'): impute it first, or remove nullable"
                )


def _check_column(at: str, spec: FeatureSpec, categories: Any, refuses: bool) -> None:
    known = [plain(c) for c in categories if not _is_missing(c)]
    strings = any(isinstance(c, str) for c in known)
    if spec.values is None:
        if strings:
            raise FrameCheckError(
                f"{at}: the schema says {spec.dtype} but the encoder's categories are strings "
                f"({', '.join(quote(c) for c in known[:5])}): make it categorical with those "
                "values"
            )
        return
    listed_strings = any(isinstance(v, str) for v in spec.values)
    if known and strings != listed_strings:
        kinds = ("strings", "integers") if strings else ("numbers", "strings")
        raise FrameCheckError(
            f"{at}: the encoder's categories are {kinds[0]} "
            f"({', '.join(quote(c) for c in known[:5])}), the schema's values {kinds[1]}"
        )
    keys = {_key(c) for c in known}
    if refuses:
        if spec.unknown == "pass":
            raise FrameCheckError(
                f"{at}: the schema passes unknown values (unknown: pass) to an encoder that "
                "refuses them (handle_unknown='error'): use unknown: refuse, or refit with "
                "handle_unknown='ignore'"
            )
        strange = [v for v in spec.values if _key(v) not in keys]
        if strange:
            raise FrameCheckError(
                f"{at}: the schema lists {', '.join(quote(v) for v in strange[:5])}, which the "
                "encoder does not know and refuses (handle_unknown='error'); it knows "
                f"{', '.join(quote(c) for c in known[:20])}"
            )
    elif spec.unknown == "pass":
        listed = {_key(v) for v in spec.values}
        unlisted = [c for c in known if _key(c) not in listed]
        if unlisted:
            raise FrameCheckError(
                f"{at}: the encoder knows {', '.join(quote(c) for c in unlisted[:5])}, which "
                "the schema does not list: with unknown: pass they would reach the model as "
                "unknown values; list them"
            )


def plain(value: Any) -> Any:
    """A category as a JSON value: numpy scalars as Python's, 3.0 as 3."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(value: Any) -> tuple[str, Any]:
    value = plain(value)
    return ("str", value) if isinstance(value, str) else ("num", value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def outputs(model: Any, task: str, X: Any, **kwargs: Any) -> NDArray[np.float64]:
    if task == "regression":
        return np.asarray(model.predict(X, **kwargs), dtype=np.float64).reshape(len(X), -1)
    return np.asarray(model.predict_proba(X, **kwargs), dtype=np.float64)


def check_answers(
    frame_model: FramePipeline,
    task: str,
    X: NDArray[np.float64],
    unknown: Mapping[tuple[int, int], Any],
    own_frame: Any,
    where: str,
) -> float:
    """Refuse unless the handler's frame gives the pipeline's answers on ``own_frame`` (the
    user's DataFrame of the same rows); returns the largest difference."""
    pipeline = frame_model.pipeline
    try:
        expected = outputs(pipeline, task, own_frame)
    except Exception as exc:
        raise FrameCheckError(
            f"{where}: the pipeline fails on your own DataFrame of these rows: {exc}"
        ) from None
    try:
        actual = outputs(frame_model, task, X, unknown=unknown)
    except Exception as exc:
        raise FrameCheckError(
            f"{where}: the pipeline fails on the DataFrame the handler sends: {exc}"
        ) from None
    differs = ~np.isclose(actual, expected, rtol=0.0, atol=ANSWER_BOUND, equal_nan=True)
    if not differs.any():
        return float(np.nanmax(np.abs(actual - expected))) if actual.size else 0.0
    row = int(np.flatnonzero(differs.any(axis=1))[0])
    row_unknown = {(0, j): v for (i, j), v in unknown.items() if i == row}
    sent = frame_model.frame(X[row : row + 1], row_unknown)
    column = first_difference(sent, own_frame.iloc[[row]].reset_index(drop=True))
    raise FrameCheckError(
        f"{where}: row {row + 1} of the data: the pipeline answers "
        f"{expected[row].tolist()} on your DataFrame and {actual[row].tolist()} on the one "
        f"the handler sends (bound {ANSWER_BOUND:g}); {column}"
    )


def first_difference(sent: Any, own: Any) -> str:
    """Which column of a one-row frame differs, as text for the refusal."""
    for name in own.columns:
        a, b = sent[name].iloc[0], own[name].iloc[0]
        if _is_missing(a) and _is_missing(b):
            continue
        if _is_missing(a) or _is_missing(b) or type(plain(a)) is not type(plain(b)) or a != b:
            return f"column {name!r} differs: the handler sends {a!r}, your data has {b!r}"
    for name in own.columns:
        if str(sent[name].dtype) != str(own[name].dtype):
            return (
                f"column {name!r} differs in dtype: the handler sends {sent[name].dtype}, "
                f"your data has {own[name].dtype}"
            )
    return "no column differs: the pipeline answers the same values differently"


def frame_dtypes(schema: Schema, own_frame: Any | None) -> dict[str, str]:
    """The payload's ``frame_dtypes``: each column's pandas dtype in the user's data; without
    data, what pandas reads from a CSV (float64 numbers, object categories; int64 for an
    integer feature without nulls)."""
    if own_frame is not None:
        return {name: str(own_frame[name].dtype) for name in schema.feature_names}
    dtypes = {}
    for spec in schema.features:
        if spec.values is not None:
            dtypes[spec.name] = "object"
        elif spec.dtype == "integer" and not spec.nullable:
            dtypes[spec.name] = "int64"
        else:
            dtypes[spec.name] = "float64"
    return dtypes


def reference_frame(
    X: NDArray[np.float64], unknown: Mapping[tuple[int, int], Any], schema: Schema
) -> Any:
    """Generated rows as a user would hold them (built independently of to_frame): values,
    NaN for null, and pandas' own dtype inference, as ``pandas.read_csv`` does."""
    import pandas as pd

    columns: dict[str, Sequence[Any]] = {}
    for j, spec in enumerate(schema.features):
        cells: list[Any] = []
        for i, code in enumerate(X[:, j].tolist()):
            if math.isnan(code):
                cells.append(np.nan)
            elif spec.values is None:
                cells.append(int(code) if spec.dtype == "integer" else code)
            elif code < 0:
                cells.append(unknown[(i, j)])
            else:
                cells.append(spec.values[int(code)])
        columns[spec.name] = cells
    return pd.DataFrame(columns)

"""Compile a pipeline's preprocessing into the compiled runtime's per-column arrays.

Each column of the estimator's input becomes one entry (see compiled_pipeline's
docstring): the model input it reads, a fill for a missing value, how it is transformed
(``compiled_pipeline.PASSTHROUGH``, ``STANDARD``, ``MINMAX``, ``ONEHOT``, ``TABLE``,
``MISSING``) and
that transform's numbers.

What compiles: no step; a chain of ``SimpleImputer`` (then) ``StandardScaler`` /
``MinMaxScaler`` / ``RobustScaler`` (a fill and an arithmetic transform per column; the
imputer's ``add_indicator`` columns as ``MISSING`` entries: one value for a present input,
another for a null, both computed by the chain itself); a
``ColumnTransformer`` (columns by name or index, remainder dropped or passed through) of
such chains, ``"passthrough"`` and transformers of categorical features (``OneHotEncoder``,
``OrdinalEncoder``, a ``SimpleImputer`` of categories before them, any option): over a
categorical feature's finite domain every output column is a lookup table, computed by
running the fitted transformer itself on every value of the domain and verified
(``training.compile_tables``). Anything else raises ``UnsupportedModelError`` naming the
step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from inference import compiled_pipeline
from inference.validation import Feature
from training.compile_support import FALLBACK, UnsupportedModelError, chain
from training.compile_tables import Probe, tables

SUPPORTED_PREPROCESSING = (
    "SimpleImputer",
    "StandardScaler",
    "MinMaxScaler",
    "RobustScaler",
    "OneHotEncoder",
    "OrdinalEncoder",
    "ColumnTransformer of those, their pipelines and 'passthrough'",
)
SCALERS = (StandardScaler, MinMaxScaler, RobustScaler)
# The steps a categorical feature's table may be computed through (any option of theirs).
TABLED = (SimpleImputer, OneHotEncoder, OrdinalEncoder, *SCALERS)


@dataclass
class Preprocessing:
    """One entry per column of the estimator's input (see compiled_pipeline's docstring)."""

    input: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    fill: list[float] = field(default_factory=list)
    table: list[float] = field(default_factory=list)

    def add(self, column: int, kind: int, a: float = 0.0, b: float = 1.0) -> None:
        self.input.append(column)
        self.kind.append(kind)
        self.a.append(float(a))
        self.b.append(float(b))
        self.low.append(-np.inf)
        self.high.append(np.inf)
        self.fill.append(np.nan)

    def add_table(self, column: int, values: NDArray[np.float64]) -> None:
        """A TABLE entry: ``values`` for codes 0..K-1, then null, then unknown."""
        self.add(column, compiled_pipeline.TABLE, len(self.table), len(values) - 2)
        self.table.extend(float(v) for v in values)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "pre_input": np.asarray(self.input, dtype=np.int32),
            "pre_kind": np.asarray(self.kind, dtype=np.int8),
            "pre_a": np.asarray(self.a, dtype=np.float64),
            "pre_b": np.asarray(self.b, dtype=np.float64),
            "pre_low": np.asarray(self.low, dtype=np.float64),
            "pre_high": np.asarray(self.high, dtype=np.float64),
            "pre_fill": np.asarray(self.fill, dtype=np.float64),
            "pre_table": np.asarray(self.table, dtype=np.float64),
        }


def preprocessing(
    step: Any | None,
    n_features: int,
    features: Sequence[Feature] | None = None,
    *,
    frame: bool = False,
    dtypes: dict[str, str] | None = None,
) -> Preprocessing:
    """The entries of ``step`` (None: every input passed through) over ``n_features`` inputs.

    ``features`` (the schema's, in order) tell categorical features apart; without them
    every input is a number (the codes contract). ``frame``: the pipeline was fitted on a
    DataFrame and is called with ``inference.frames.to_frame``'s (``dtypes``: its columns').
    """
    if features is not None and len(features) != n_features:
        raise ValueError(f"{len(features)} features for a step over {n_features} inputs")
    probe = Probe(features, n_features, frame=frame, dtypes=dtypes)
    pre = Preprocessing()
    columns = list(range(n_features))
    if isinstance(step, ColumnTransformer):
        _column_transformer(step, probe, pre)
    else:
        _group(step, columns, probe, pre, where="")
    return pre


def _column_transformer(ct: ColumnTransformer, probe: Probe, pre: Preprocessing) -> None:
    # A sparse output reaches the estimator as a sparse matrix of the same numbers; the
    # parity gate judges whether the estimator's answers on it are the dense ones.
    indices: dict[str, list[int]] = getattr(ct, "_transformer_to_input_indices", {})
    for name, transformer, _ in ct.transformers_:
        columns = [int(c) for c in indices.get(name, [])]
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not columns:
            continue
        if any(not 0 <= c < probe.n_features for c in columns):
            raise UnsupportedModelError(f"ColumnTransformer step {name!r} selects unknown columns")
        start = len(pre.input)
        _group(transformer, columns, probe, pre, where=f" (ColumnTransformer step {name!r})")
        # The compiled columns must sit where scikit-learn's hstack puts them.
        expected = ct.output_indices_[name]
        if (expected.start, expected.stop) != (start, len(pre.input)):
            raise UnsupportedModelError(
                f"ColumnTransformer step {name!r}: output columns {expected.start}.."
                f"{expected.stop} could not be reproduced; {FALLBACK}"
            )


def _group(step: Any, columns: list[int], probe: Probe, pre: Preprocessing, *, where: str) -> None:
    """The entries of one transformer (or chain) applied to ``columns``."""
    steps = chain(step)
    name = " + ".join(type(s).__name__ for s in steps) or "passthrough"
    where = f"{name}{where}"
    # Categorical features the arithmetic cannot take: a DataFrame's raw values (a codes
    # model's categories are numbers, its codes, and go through the arithmetic as they are).
    by_table = [p for p, c in enumerate(columns) if probe.frame and probe.categorical(c)]
    if all(type(s) in (SimpleImputer, *SCALERS) for s in steps):
        _arithmetic_group(step, steps, columns, by_table, probe, pre, where)
        return
    if (
        not probe.frame
        and len(steps) == 1
        and _plain_one_hot(steps[0])
        and not any(probe.nullable_or_unknown(c) for c in columns)
    ):
        # A codes model's one-hot encoding of its codes: x == category (format 2's way).
        for column, categories in zip(columns, steps[0].categories_, strict=True):
            for category in categories:
                pre.add(column, compiled_pipeline.ONEHOT, float(category))
        return
    numeric = [probe.name(c) for c in columns if not probe.categorical(c)]
    if numeric or not all(type(s) in TABLED for s in steps):
        raise UnsupportedModelError(
            f"the compiled runtime does not support the preprocessing step {where}"
            + (f" over numeric column(s) {', '.join(map(repr, numeric))}" if numeric else "")
            + f" (supported: {', '.join(SUPPORTED_PREPROCESSING)}; encoders over categorical "
            f"features only); {FALLBACK}"
        )
    looked_up = tables(step, columns, list(range(len(columns))), probe, where=where)
    # Output columns in the order the transformer writes them.
    ordered = sorted(
        (out, columns[position], values)
        for position, outs in looked_up.items()
        for out, values in outs
    )
    for _, column, values in ordered:
        pre.add_table(column, values)


def _arithmetic_group(
    step: Any,
    steps: list[Any],
    columns: list[int],
    by_table: list[int],
    probe: Probe,
    pre: Preprocessing,
    where: str,
) -> None:
    """An imputer/scaler chain: per column a fill and an arithmetic transform, then the
    imputer's missing-value indicators (``add_indicator``) after every column."""
    width = len(columns)
    indicators = _indicators(steps)
    # A table column moves its own output and its indicator's.
    outputs_of = {
        p: [p, *(width + i for i, q in enumerate(indicators) if q == p)] for p in by_table
    }
    looked_up = tables(step, columns, by_table, probe, where=where, aligned=outputs_of)
    found = {out: values for outs in looked_up.values() for out, values in outs}
    for position, column in enumerate(columns):
        if position in found:
            pre.add_table(column, found[position])
        else:
            fill, kind, a, b, low, high = _arithmetic(steps, position, where)
            pre.add(column, kind, a, b)
            pre.fill[-1], pre.low[-1], pre.high[-1] = fill, low, high
    if not indicators:
        return
    # Each indicator column's two values (present, missing), by the chain itself.
    X = np.zeros((2, probe.n_features))
    X[1, columns] = np.nan
    pair = probe.run(step, X, columns, where)
    for i, position in enumerate(indicators):
        out = width + i
        if out in found:
            pre.add_table(columns[position], found[out])
        else:
            pre.add(columns[position], compiled_pipeline.MISSING, pair[0, out], pair[1, out])


def _indicators(steps: list[Any]) -> list[int]:
    """The input positions a leading ``SimpleImputer(add_indicator=True)`` adds an indicator
    column for, in its order."""
    if not steps or type(steps[0]) is not SimpleImputer or not steps[0].add_indicator:
        return []
    return [int(f) for f in steps[0].indicator_.features_]


def _plain_one_hot(step: Any) -> bool:
    return bool(
        type(step) is OneHotEncoder
        and step.drop_idx_ is None
        and not getattr(step, "_infrequent_enabled", False)
        and np.dtype(step.dtype) == np.float64
        and all(
            c.dtype.kind in "iuf" and np.all(np.isfinite(c.astype(np.float64)))
            for c in step.categories_
        )
    )


def _arithmetic(
    steps: list[Any], i: int, where: str
) -> tuple[float, int, float, float, float, float]:
    """(fill, kind, a, b, low, high) of input column ``i`` through an imputer/scaler chain."""
    fill, kind, a, b, low, high = np.nan, compiled_pipeline.PASSTHROUGH, 0.0, 1.0, -np.inf, np.inf
    for n, step in enumerate(steps):
        if type(step) is SimpleImputer:
            if n and step.add_indicator:
                raise UnsupportedModelError(
                    f"{where}: SimpleImputer(add_indicator=True) after another step is not "
                    f"supported; {FALLBACK}"
                )
            if kind != compiled_pipeline.PASSTHROUGH:
                raise UnsupportedModelError(
                    f"{where}: a SimpleImputer after a scaler is not supported; {FALLBACK}"
                )
            fill = _fill(step, i, where)
            continue
        if kind != compiled_pipeline.PASSTHROUGH:
            raise UnsupportedModelError(
                f"{where}: more than one scaler in a row is not supported; {FALLBACK}"
            )
        if type(step) is StandardScaler:
            kind = compiled_pipeline.STANDARD
            a = float(step.mean_[i]) if step.with_mean else 0.0
            b = float(step.scale_[i]) if step.with_std and step.scale_ is not None else 1.0
        elif type(step) is RobustScaler:
            kind = compiled_pipeline.STANDARD
            a = float(step.center_[i]) if step.with_centering else 0.0
            b = float(step.scale_[i]) if step.with_scaling else 1.0
        else:
            kind, a, b = compiled_pipeline.MINMAX, float(step.scale_[i]), float(step.min_[i])
            if step.clip:
                low, high = map(float, step.feature_range)
    return fill, kind, a, b, low, high


def _fill(step: SimpleImputer, i: int, where: str) -> float:
    missing = step.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)) and missing is not None:
        raise UnsupportedModelError(
            f"{where}: SimpleImputer(missing_values={missing!r}) is not supported "
            f"(only NaN, the schema's null); {FALLBACK}"
        )
    statistics = np.asarray(step.statistics_)
    try:
        value = float(statistics[i])
    except (IndexError, TypeError, ValueError):
        raise UnsupportedModelError(
            f"{where}: SimpleImputer's fill for input column {i} is not a number; {FALLBACK}"
        ) from None
    if not np.isfinite(value):
        # scikit-learn drops a column it saw no value of (unless keep_empty_features).
        raise UnsupportedModelError(
            f"{where}: SimpleImputer has no fill for input column {i} (it saw no value "
            f"there); {FALLBACK}"
        )
    return value

"""Compile a pipeline's preprocessing step into the compiled runtime's per-column arrays.

What compiles: no step, ``StandardScaler``, ``MinMaxScaler`` (with or without ``clip``),
``OneHotEncoder`` over numeric category codes, or a ``ColumnTransformer`` of those (and
``passthrough``/``drop``). Each column of the estimator's input becomes one entry: the model
input it reads, how it is transformed (``compiled_pipeline.PASSTHROUGH``, ``STANDARD``,
``MINMAX``, ``ONEHOT``) and that transform's two numbers and clip range. Anything else
raises ``UnsupportedModelError`` naming the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler

from inference import compiled_pipeline
from training.compile_support import FALLBACK, UnsupportedModelError

SUPPORTED_PREPROCESSING = (
    "StandardScaler",
    "MinMaxScaler",
    "OneHotEncoder",
    "ColumnTransformer of those and 'passthrough'",
)


@dataclass
class Preprocessing:
    """One entry per column of the estimator's input (see compiled_pipeline's docstring)."""

    input: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def add(self, column: int, kind: int, a: float = 0.0, b: float = 1.0) -> None:
        self.input.append(column)
        self.kind.append(kind)
        self.a.append(float(a))
        self.b.append(float(b))
        self.low.append(-np.inf)
        self.high.append(np.inf)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "pre_input": np.asarray(self.input, dtype=np.int32),
            "pre_kind": np.asarray(self.kind, dtype=np.int8),
            "pre_a": np.asarray(self.a, dtype=np.float64),
            "pre_b": np.asarray(self.b, dtype=np.float64),
            "pre_low": np.asarray(self.low, dtype=np.float64),
            "pre_high": np.asarray(self.high, dtype=np.float64),
        }


def preprocessing(step: Any | None, n_features: int) -> Preprocessing:
    """The entries of ``step`` (None: every input passed through) over ``n_features`` inputs."""
    pre = Preprocessing()
    columns = list(range(n_features))
    if step is None:
        for column in columns:
            pre.add(column, compiled_pipeline.PASSTHROUGH)
    elif isinstance(step, ColumnTransformer):
        _column_transformer(step, n_features, pre)
    else:
        _transformer(step, columns, pre, where="")
    return pre


def _column_transformer(ct: ColumnTransformer, n_features: int, pre: Preprocessing) -> None:
    if getattr(ct, "sparse_output_", False):
        raise UnsupportedModelError(f"a ColumnTransformer with sparse output; {FALLBACK}")
    indices: dict[str, list[int]] = getattr(ct, "_transformer_to_input_indices", {})
    for name, transformer, _ in ct.transformers_:
        columns = [int(c) for c in indices.get(name, [])]
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not columns:
            continue
        if any(not 0 <= c < n_features for c in columns):
            raise UnsupportedModelError(f"ColumnTransformer step {name!r} selects unknown columns")
        start = len(pre.input)
        # remainder="passthrough" is fitted as FunctionTransformer(func=None): the identity.
        if (isinstance(transformer, str) and transformer == "passthrough") or (
            type(transformer) is FunctionTransformer and transformer.func is None
        ):
            for column in columns:
                pre.add(column, compiled_pipeline.PASSTHROUGH)
        else:
            _transformer(transformer, columns, pre, where=f" (ColumnTransformer step {name!r})")
        # The compiled columns must sit where scikit-learn's hstack puts them.
        expected = ct.output_indices_[name]
        if (expected.start, expected.stop) != (start, len(pre.input)):
            raise UnsupportedModelError(
                f"ColumnTransformer step {name!r}: output columns {expected.start}.."
                f"{expected.stop} could not be reproduced; {FALLBACK}"
            )


def _transformer(step: Any, columns: list[int], pre: Preprocessing, *, where: str) -> None:
    if type(step) is StandardScaler:
        mean = step.mean_ if step.with_mean else np.zeros(len(columns))
        scale = step.scale_ if step.with_std and step.scale_ is not None else np.ones(len(columns))
        for column, m, s in zip(columns, mean, scale, strict=True):
            pre.add(column, compiled_pipeline.STANDARD, m, s)
    elif type(step) is MinMaxScaler:
        for column, s, m in zip(columns, step.scale_, step.min_, strict=True):
            pre.add(column, compiled_pipeline.MINMAX, s, m)
            if step.clip:
                pre.low[-1], pre.high[-1] = map(float, step.feature_range)
    elif type(step) is OneHotEncoder:
        _one_hot(step, columns, pre, where=where)
    else:
        raise UnsupportedModelError(
            f"the compiled runtime does not support the preprocessing step "
            f"{type(step).__name__}{where} (supported: {', '.join(SUPPORTED_PREPROCESSING)}); "
            f"{FALLBACK}"
        )


def _one_hot(step: OneHotEncoder, columns: list[int], pre: Preprocessing, *, where: str) -> None:
    if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
        raise UnsupportedModelError(
            f"OneHotEncoder{where} with drop or infrequent categories; {FALLBACK}"
        )
    if step.sparse_output or np.dtype(step.dtype) != np.float64:
        raise UnsupportedModelError(
            f"OneHotEncoder{where} must have sparse_output=False and dtype float64; {FALLBACK}"
        )
    for column, categories in zip(columns, step.categories_, strict=True):
        if categories.dtype.kind not in "iuf" or not np.all(np.isfinite(categories)):
            raise UnsupportedModelError(
                f"OneHotEncoder{where}: categories must be numeric codes (encode "
                f"categoricals as positions in the schema list), not {categories.dtype}; "
                f"{FALLBACK}"
            )
        for category in categories:
            pre.add(column, compiled_pipeline.ONEHOT, float(category))

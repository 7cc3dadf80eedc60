"""Format ``sklearn-compiled-npz/3``'s preprocessing (fills, tables) and format 2 still loading.

The archives here are written by hand from the documented arrays (compiled_pipeline's
docstring), not by the training code: a format 2 archive as the writer before format 3
wrote it, and format 3 archives whose tables and fills make each row's answer known.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from inference import compiled_format, compiled_model, compiled_pipeline
from tests.training.compiled_archives import archive, rewrite

FEATURES = [
    {"name": "x", "dtype": "number", "allowed": {"min": -5.0, "max": 5.0}, "description": ""},
    {
        "name": "c",
        "dtype": "categorical",
        "allowed": {"values": ["a", "b", "c"]},
        "description": "",
    },
]


def _meta(**fields: Any) -> np.ndarray:  # type: ignore[type-arg]
    meta = {
        "model_name": "m",
        "model_version": "v1",
        "features": FEATURES,
        "classes": None,
        "pipeline": "hand-written",
        **fields,
    }
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _pre(kind: list[int], a: list[float], b: list[float], inputs: list[int]) -> dict[str, Any]:
    n = len(kind)
    return {
        "pre_input": np.asarray(inputs, dtype=np.int32),
        "pre_kind": np.asarray(kind, dtype=np.int8),
        "pre_a": np.asarray(a, dtype=np.float64),
        "pre_b": np.asarray(b, dtype=np.float64),
        "pre_low": np.full(n, -np.inf),
        "pre_high": np.full(n, np.inf),
    }


def _v2_logistic() -> tuple[Pipeline, bytes]:
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 3, 300)]).astype(float)
    y = (X[:, 0] + (X[:, 1] == 1) + rng.normal(0, 0.3, 300) > 0.5).astype(int)
    pipeline = Pipeline([("s", StandardScaler()), ("lr", LogisticRegression())]).fit(X, y)
    scaler, lr = pipeline[0], pipeline[-1]
    contents = {
        **_pre([1, 1], list(scaler.mean_), list(scaler.scale_), [0, 1]),
        "coef": lr.coef_[0],
        "intercept": np.asarray(lr.intercept_[0]),
        "meta": _meta(
            format=compiled_format.FORMAT_V2,
            estimator="linear",
            link="expit",
            task="binary",
            classes=[0, 1],
        ),
    }
    return pipeline, archive(contents)


def test_a_format_2_archive_loads_and_answers_as_before() -> None:
    pipeline, data = _v2_logistic()
    model = compiled_model.load(data)
    assert isinstance(model, compiled_pipeline.CompiledPipeline)
    X = np.column_stack([np.linspace(-3, 3, 50), np.tile([0.0, 1.0], 25)])
    expected = pipeline.predict_proba(X)[:, 1]
    assert np.max(np.abs(model.outputs(X) - expected)) <= 1e-12
    # No fill, no table: a null stays NaN as format 2 always did.
    assert model.preprocess.fill is None
    assert np.isnan(model.outputs(np.array([[np.nan, 0.0]]))).all()


def test_a_format_3_archive_needs_its_fill_and_table_arrays() -> None:
    _, data = _v2_logistic()
    relabelled = rewrite(data, meta_format=compiled_format.FORMAT_V3)
    with pytest.raises(
        compiled_model.CompiledModelError, match=r"lacks array\(s\) pre_fill, pre_table"
    ):
        compiled_model.load(relabelled)


def _v3_regression(table: list[float], **changes: Any) -> bytes:
    # Output column 0: x filled with 5.0 when null, then (x - 1) / 2; column 1: c's table.
    contents = {
        **_pre(
            [compiled_pipeline.STANDARD, compiled_pipeline.TABLE], [1.0, 0.0], [2.0, 3.0], [0, 1]
        ),
        "pre_fill": np.asarray([5.0, np.nan]),
        "pre_table": np.asarray(table, dtype=np.float64),
        "coef": np.asarray([1.0, 1000.0]),
        "intercept": np.asarray(0.0),
        "meta": _meta(
            format=compiled_format.FORMAT_V3, estimator="linear", link="identity", task="regression"
        ),
    }
    contents.update(changes)
    return archive(contents)


def test_fill_then_transform_and_table_rows_for_codes_null_and_unknown() -> None:
    model = compiled_model.load(_v3_regression([10.0, 11.0, 12.0, 13.0, 14.0]))
    X = np.array(
        [[1.0, 0.0], [3.0, 1.0], [np.nan, 2.0], [1.0, np.nan], [1.0, -1.0], [np.nan, -1.0]]
    )
    # (x - 1) / 2 + 1000 * table[row]; a null x is 5.0 before the transform: 2.0.
    expected = [10000.0, 11001.0, 12002.0, 13000.0, 14000.0, 14002.0]
    np.testing.assert_array_equal(model.outputs(X), expected)
    np.testing.assert_array_equal(model.outputs(X, unknown={(4, 1): "zebra"}), expected)


@pytest.mark.parametrize(
    "changes",
    [
        {"pre_table": np.asarray([10.0, 11.0, 12.0, 13.0])},  # K + 2 = 5 rows needed
        {"pre_fill": np.asarray([5.0, 0.0])},  # a table column with a fill
        {"pre_fill": np.asarray([np.inf, np.nan])},
        {"pre_fill": np.asarray([5.0])},
        {"pre_kind": np.asarray([compiled_pipeline.STANDARD, 6], dtype=np.int8)},
        {"pre_a": np.asarray([1.0, 0.5])},  # a table offset that is not a whole number
    ],
    ids=["table-too-short", "fill-on-table", "infinite-fill", "fill-length", "kind-6", "offset"],
)
def test_inconsistent_fills_and_tables_are_refused(changes: dict[str, Any]) -> None:
    data = _v3_regression([10.0, 11.0, 12.0, 13.0, 14.0], **changes)
    with pytest.raises(
        compiled_model.CompiledModelError, match="preprocessing arrays are inconsistent"
    ):
        compiled_model.load(data)


def test_missing_indicator_entries_read_whether_the_input_is_null() -> None:
    contents = {
        **_pre(
            [compiled_pipeline.MISSING, compiled_pipeline.PASSTHROUGH],
            [0.25, 0.0],
            [-4.0, 1.0],
            [0, 0],
        ),
        "pre_fill": np.asarray([np.nan, 7.0]),
        "pre_table": np.empty(0),
        "coef": np.asarray([1.0, 10.0]),
        "intercept": np.asarray(0.0),
        "meta": _meta(
            format=compiled_format.FORMAT_V3, estimator="linear", link="identity", task="regression"
        ),
    }
    model = compiled_model.load(archive(contents))
    # Column 0: 0.25 when x is present, -4.0 when null; column 1: x, 7.0 when null.
    X = np.array([[1.0, 0.0], [np.nan, 0.0], [-2.0, 1.0]])
    np.testing.assert_array_equal(model.outputs(X), [10.25, 66.0, -19.75])
    with pytest.raises(compiled_model.CompiledModelError, match="preprocessing arrays"):
        compiled_model.load(archive({**contents, "pre_fill": np.asarray([1.0, 7.0])}))

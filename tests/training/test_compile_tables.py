"""Lookup tables are verified: an output column that is not a function of one categorical
input is refused, naming the step, whether single-column probes show it or only random
combinations of every column's values do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from inference.validation import schema_from_artifact
from training.compile_support import UnsupportedModelError
from training.compile_tables import Probe, tables

FEATURES = schema_from_artifact(
    [
        {"name": "p", "dtype": "categorical", "allowed": {"values": ["a", "b", "c"]}},
        {"name": "q", "dtype": "categorical", "allowed": {"values": ["x", "y"]}, "nullable": True},
    ]
)


def _codes_probe() -> Probe:
    return Probe(FEATURES, 2, frame=False, dtypes=None)


def _tables(func: Any) -> Any:
    step = FunctionTransformer(func).fit(np.zeros((2, 2)))
    return tables(step, [0, 1], [0, 1], _codes_probe(), where="FunctionTransformer")


def test_separable_outputs_get_one_table_per_output_column_with_null_and_unknown_rows() -> None:
    found = _tables(lambda X: np.column_stack([X[:, 0] * 10, np.nan_to_num(X[:, 1], nan=7.0)]))
    (out_p, table_p), (out_q, table_q) = found[0][0], found[1][0]
    assert (out_p, out_q) == (0, 1)
    # p: codes 0..2, no null (not nullable), no unknown (refused): NaN rows.
    np.testing.assert_array_equal(table_p, [0.0, 10.0, 20.0, np.nan, np.nan])
    # q: codes 0..1, null -> 7.0, unknown refused.
    np.testing.assert_array_equal(table_q, [0.0, 1.0, 7.0, np.nan])


def test_an_output_two_inputs_move_is_refused_naming_both() -> None:
    with pytest.raises(UnsupportedModelError, match=r"output column 0 depends on both 'p' and 'q'"):
        _tables(lambda X: (X[:, 0] + np.nan_to_num(X[:, 1]))[:, None])


def test_a_dependence_single_column_probes_miss_is_caught_by_the_verification() -> None:
    # p * q is 0 whenever either is at the probes' base (code 0): only combinations show it.
    with pytest.raises(
        UnsupportedModelError,
        match=r"FunctionTransformer: output column 0 is not a function of 'p' alone",
    ) as refused:
        _tables(lambda X: (X[:, 0] * np.nan_to_num(X[:, 1]))[:, None])
    assert str(refused.value).endswith("runtime 'sklearn' serves this model")


def test_an_encoder_that_refuses_a_null_the_schema_lets_through_is_refused() -> None:
    encoder = OneHotEncoder(handle_unknown="error").fit(
        np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    )
    with pytest.raises(UnsupportedModelError, match=r"OneHotEncoder does not give numbers .* p, q"):
        tables(encoder, [0, 1], [0, 1], _codes_probe(), where="OneHotEncoder")

"""Packaging a pipeline fitted on a DataFrame: checked against the schema, then held as a
``FramePipeline`` so that every figure packaging produces is of what the handler sends.

``prepare`` runs ``training.frame_checks`` (names and order, encoders' categories, then
the answers on the handler's DataFrame against those on the user's own rows: the
``--data`` CSV as ``pandas.read_csv`` reads it, or generated rows when there is no data)
and records the pandas dtype of each column for the payload's ``frame_dtypes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.frames import FramePipeline, placeholder
from inference.validation import schema_from_artifact
from serving.schema import UNKNOWN_CODE, Schema
from training import frame_checks
from training.dataset import DatasetError, Table, read_frame

# Generated rows (no --data): how many, and the share of nulls and unknown categories
# put in where the schema allows them, so that the check sees both.
GENERATED_ROWS = 400
GENERATED_SEED = 7
MISSING_SHARE = 0.1
UNKNOWN_SHARE = 0.05


@dataclass(frozen=True)
class FrameModel:
    model: FramePipeline
    dtypes: dict[str, str]
    order: dict[str, Any]  # the manifest's feature_order


def prepare(
    pipeline: Any,
    schema: Schema,
    table: Table | None,
    data: Path | None,
    where: str,
    log: Callable[[str], Any],
) -> FrameModel:
    """Check ``pipeline`` against ``schema``; raises ``FrameCheckError`` naming the step and
    the column, or ``DatasetError`` when pandas reads ``data`` otherwise than the loader."""
    frame_checks.check_names(pipeline, schema, where)
    frame_checks.check_encoders(pipeline, schema, where)
    features = schema_from_artifact([spec.to_json() for spec in schema.features])
    if table is not None and data is not None:
        own = read_frame(data, schema)
        if len(own) != len(table.X):
            raise DatasetError(
                f"{data}: pandas reads {len(own)} rows, the loader {len(table.X)}: check the "
                "file for blank or malformed lines"
            )
        X, unknown, source = table.X, table.unknown, f"the {len(own)} rows of {data.name}"
        dtypes = frame_checks.frame_dtypes(schema, own)
    else:
        X, unknown = generated_rows(schema, features)
        own = frame_checks.reference_frame(X, unknown, schema)
        dtypes = frame_checks.frame_dtypes(schema, None)
        source = f"{len(X)} generated rows"
    model = FramePipeline(pipeline, features, dtypes)
    largest = frame_checks.check_answers(model, schema.task, X, unknown, own, where)
    log(
        f"frame model: the handler's DataFrame gives your pipeline's answers on {source} "
        f"(max |diff| {largest:.3g}, bound {frame_checks.ANSWER_BOUND:g})"
    )
    order = {"source": "feature_names_in_", "order": list(schema.feature_names)}
    return FrameModel(model, dtypes, order)


def generated_rows(
    schema: Schema, features: Any, rows: int = GENERATED_ROWS, seed: int = GENERATED_SEED
) -> tuple[NDArray[np.float64], dict[tuple[int, int], Any]]:
    """Rows over the schema's ranges and values, with nulls where a feature is nullable
    and unknown categories where it passes them (their raw values: stand-ins)."""
    from training.package import inputs_across_the_schema

    X = inputs_across_the_schema(schema, rows, seed)
    generator = np.random.default_rng(seed + 1)
    unknown: dict[tuple[int, int], Any] = {}
    for j, spec in enumerate(schema.features):
        if spec.unknown == "pass":
            for i in np.flatnonzero(generator.random(rows) < UNKNOWN_SHARE):
                X[i, j] = UNKNOWN_CODE
                unknown[(int(i), j)] = placeholder(features[j])
        if spec.nullable:
            missing = generator.random(rows) < MISSING_SHARE
            X[missing, j] = np.nan
            for i in np.flatnonzero(missing):
                unknown.pop((int(i), j), None)
    return X, unknown

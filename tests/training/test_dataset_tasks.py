"""CSV loading for every task: categorical cells become schema positions, labels keep their
type (integers, else strings; numbers for a regression), and every refusal names the file,
the line and the column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.schema import Schema
from training.dataset import DatasetError, classes_of, fingerprint, load_csv
from training.schema import load_schema

COLOURS = ["red", "green", 7, "blue"]


def _schema(tmp_path: Path, task: str) -> Schema:
    path = tmp_path / "schema.json"
    document: dict[str, Any] = {
        "task": task,
        "label": "y",
        "features": [
            {"name": "size", "type": "number", "min": 0, "max": 10},
            {"name": "colour", "type": "categorical", "values": COLOURS},
        ],
    }
    path.write_text(json.dumps(document))
    return load_schema(path)


def _csv(tmp_path: Path, labels: list[str], colours: list[str] | None = None) -> Path:
    colours = colours or [str(COLOURS[i % len(COLOURS)]) for i in range(len(labels))]
    lines = ["size,colour,y"] + [
        f"{i % 10},{colour},{label}"
        for i, (colour, label) in enumerate(zip(colours, labels, strict=True))
    ]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_categorical_cells_become_their_position_in_the_schema_list(tmp_path: Path) -> None:
    labels = ["0", "1"] * 60
    colours = ["red", "green", "7", " blue"] * 30
    X, y = load_csv(_csv(tmp_path, labels, colours), _schema(tmp_path, "binary"))
    # The integer 7 listed in the schema matches the cell "7"; spaces around a cell go.
    assert X[:4, 1].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert y.dtype == np.int64 and classes_of(y) == [0, 1]


def test_an_unknown_category_names_file_line_column_and_the_allowed_values(
    tmp_path: Path,
) -> None:
    colours = ["red"] * 120
    colours[4] = "purple"
    path = _csv(tmp_path, ["0", "1"] * 60, colours)
    with pytest.raises(
        DatasetError,
        match=rf"^{path}: line 6, column 'colour': 'purple' is not one of the allowed values "
        r"\('red', 'green', 7, 'blue'\)",
    ):
        load_csv(path, _schema(tmp_path, "binary"))


def test_string_labels_stay_strings_in_scikit_learn_order(tmp_path: Path) -> None:
    path = _csv(tmp_path, ["malignant", "benign", "benign"] * 40)
    X, y = load_csv(path, _schema(tmp_path, "binary"))
    assert y.dtype == object and classes_of(y) == ["benign", "malignant"]
    assert fingerprint(X, y, _schema(tmp_path, "binary"))["positive_rate"] == pytest.approx(1 / 3)


def test_multiclass_labels_need_three_classes(tmp_path: Path) -> None:
    schema = _schema(tmp_path, "multiclass")
    X, y = load_csv(_csv(tmp_path, ["1", "2", "3"] * 40), schema)
    assert classes_of(y) == [1, 2, 3]
    assert set(fingerprint(X, y, schema)["class_rates"]) == {"1", "2", "3"}  # type: ignore[call-overload]
    path = _csv(tmp_path, ["a", "b"] * 60)
    with pytest.raises(
        DatasetError, match=r"column 'y' has 2 class\(es\) \('a', 'b'\); a multiclass label"
    ):
        load_csv(path, schema)


def test_a_regression_label_must_be_a_finite_number(tmp_path: Path) -> None:
    schema = _schema(tmp_path, "regression")
    X, y = load_csv(_csv(tmp_path, [f"{i / 7:.3f}" for i in range(120)]), schema)
    assert y.dtype == np.float64 and y[7] == 1.0
    assert "label_mean" in fingerprint(X, y, schema)
    labels = ["1.5"] * 120
    labels[9] = "inf"
    path = _csv(tmp_path, labels)
    with pytest.raises(DatasetError, match=r"line 11, column 'y': 'inf' is not a finite number"):
        load_csv(path, schema)


def test_an_empty_class_label_is_named_by_line(tmp_path: Path) -> None:
    labels = ["a", "b"] * 60
    labels[2] = ""
    path = _csv(tmp_path, labels)
    with pytest.raises(DatasetError, match=r"line 4, column 'y': the label is empty"):
        load_csv(path, _schema(tmp_path, "binary"))


def test_every_class_needs_enough_rows(tmp_path: Path) -> None:
    path = _csv(tmp_path, ["a", "b"] * 60 + ["c"] * 3)
    with pytest.raises(DatasetError, match=r"has 3 rows of class 'c'; every class needs"):
        load_csv(path, _schema(tmp_path, "multiclass"))

"""Training CSVs as people keep them (issue 21): a nullable feature's empty or NA cell is
NaN in the matrix, an unlisted category of an ``unknown: pass`` feature is -1 with its raw
cell kept, a column the schema does not list is ignored with one notice; every other
refusal stays, naming the file, the line and the column."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.schema import schema_from_document
from training.dataset import DatasetError, load_table, read_frame

SCHEMA = schema_from_document(
    Path("test.json"),
    {
        "task": "binary",
        "label": "y",
        "features": [
            {"name": "mass", "type": "number", "min": 0, "max": 10, "nullable": True},
            {"name": "count", "type": "integer", "min": 0, "max": 5},
            {
                "name": "island",
                "type": "categorical",
                "values": ["Biscoe", "Dream"],
                "unknown": "pass",
                "nullable": True,
            },
            {"name": "code", "type": "categorical", "values": [1, 2], "unknown": "pass"},
        ],
    },
)


def _csv(tmp_path: Path, rows: list[str], header: str = "y,mass,count,island,code,year") -> Path:
    # 100 rows at least, balanced: the loader's own minimum.
    body = [f"{i % 2},1.5,{i % 5},Dream,2,2008" for i in range(100)]
    path = tmp_path / "data.csv"
    path.write_text("\n".join([header, *rows, *body]) + "\n")
    return path


def test_missing_cells_unknown_categories_and_unlisted_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["1,,3,Torgersen,7,2007", "0,NA,1,,1,2007", "1,null,0,NaN,2,2009", "0,2.5,2,Biscoe,2,2"]
    table = load_table(_csv(tmp_path, rows), SCHEMA)
    X = table.X
    assert all(math.isnan(v) for v in X[:3, 0]) and X[3, 0] == 2.5
    assert math.isnan(X[1, 2]) and math.isnan(X[2, 2]) and X[3, 2] == 0.0
    assert X[0, 2] == -1.0 and X[0, 3] == -1.0
    # The raw cell of each passed unknown: text, and an integer where the values are.
    assert table.unknown == {(0, 2): "Torgersen", (0, 3): 7}
    assert table.ignored == ("year",)
    notices = [line for line in capsys.readouterr().err.splitlines() if "year" in line]
    assert notices == [
        f"note: {tmp_path / 'data.csv'}: column(s) 'year' not in the schema: ignored"
    ]
    # The user's own DataFrame of the same rows: pandas' reading, NA kept.
    frame = read_frame(tmp_path / "data.csv", SCHEMA)
    assert list(frame.columns) == ["mass", "count", "island", "code"] and len(frame) == len(X)
    assert np.isnan(frame.loc[1, "mass"]) and frame.loc[0, "island"] == "Torgersen"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,1,,Dream,1,0", r"line 2, column 'count': '' is not a number"),
        ("1,1,NA,Dream,1,0", r"line 2, column 'count': 'NA' is not a number"),
        ("1,1,1,Dream,,0", r"line 2, column 'code': '' is not one of the allowed values"),
        ("1,nan7,1,Dream,1,0", r"line 2, column 'mass': 'nan7' is not a number"),
        ("1,11,1,Dream,1,0", r"line 2, column 'mass': 11 is outside the allowed range"),
    ],
)
def test_every_other_cell_refusal_stays(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_table(_csv(tmp_path, [row]), SCHEMA)


def test_the_label_column_is_still_required(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("mass,count,island,code,year\n1,1,Dream,1,0\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) y"):
        load_table(path, SCHEMA)


def test_a_refused_category_is_still_refused(tmp_path: Path) -> None:
    document: dict[str, Any] = {
        "task": "binary",
        "label": "y",
        "features": [{"name": "island", "type": "categorical", "values": ["Biscoe"]}],
    }
    schema = schema_from_document(Path("s.json"), document)
    path = tmp_path / "data.csv"
    path.write_text("y,island\n" + "".join(f"{i % 2},Biscoe\n" for i in range(100)) + "1,Dream\n")
    with pytest.raises(DatasetError, match=r"line 102, column 'island': 'Dream' is not one"):
        load_table(path, schema)
    path.write_text("y,island\n" + "".join(f"{i % 2},Biscoe\n" for i in range(100)) + "1,\n")
    with pytest.raises(DatasetError, match=r"line 102, column 'island': '' is not one"):
        load_table(path, schema)

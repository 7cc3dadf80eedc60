"""CSV files as spreadsheets and scripts export them parse to the same data as a plain one,
and their errors still name the file, the line and the column."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import WriteCsv
from training.dataset import DatasetError, load_csv
from training.schema import FEATURE_NAMES, LABEL


def _rewrite(
    plain: Path,
    out: Path,
    *,
    quote_all: bool = False,
    line_end: str = "\n",
    bom: bool = False,
    edit: Callable[[list[list[str]]], None] | None = None,
) -> Path:
    with plain.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if edit:
        edit(rows)
    buffer = io.StringIO()
    csv.writer(
        buffer, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator=line_end
    ).writerows(rows)
    out.write_bytes((codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode())
    return out


@pytest.mark.parametrize(
    "variant",
    [
        {"bom": True},
        {"line_end": "\r\n"},
        {"line_end": "\r"},
        {"quote_all": True},
        # What a spreadsheet's "CSV UTF-8" export looks like.
        {"bom": True, "line_end": "\r\n", "quote_all": True},
    ],
    ids=["bom", "crlf", "cr", "quoted", "bom-crlf-quoted"],
)
def test_exported_csv_reads_like_a_plain_one(
    tmp_path: Path, write_csv: WriteCsv, variant: dict[str, object]
) -> None:
    plain = write_csv(300)
    X, y = load_csv(plain)
    X2, y2 = load_csv(_rewrite(plain, tmp_path / "exported.csv", **variant))  # type: ignore[arg-type]
    assert np.array_equal(X, X2)
    assert np.array_equal(y, y2)


def test_byte_order_mark_is_not_part_of_the_first_column_name(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    # Refused before with "unexpected column(s) '\ufefftenure_months'".
    path = _rewrite(write_csv(300), tmp_path / "bom.csv", bom=True)
    assert path.read_bytes().startswith(codecs.BOM_UTF8 + FEATURE_NAMES[0].encode())
    X, _ = load_csv(path)
    assert X.shape == (300, len(FEATURE_NAMES))


def test_spaces_after_separators_and_quoted_cells_are_read(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    plain = write_csv(300)
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(
        "\n".join(
            ", ".join(f'"{cell}"' for cell in line.split(","))
            for line in plain.read_text().splitlines()
        )
    )
    assert np.array_equal(load_csv(spaced)[0], load_csv(plain)[0])


def test_bad_value_in_exported_csv_names_file_line_and_column(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    def bad(rows: list[list[str]]) -> None:
        rows[5][FEATURE_NAMES.index("monthly_charges")] = "12,5"  # rows[0] is the header

    path = _rewrite(
        write_csv(300),
        tmp_path / "exported.csv",
        bom=True,
        line_end="\r\n",
        quote_all=True,
        edit=bad,
    )
    with pytest.raises(DatasetError) as caught:
        load_csv(path)
    assert str(caught.value) == (
        f"{path}: line 6, column 'monthly_charges': '12,5' is not a number"
    )


def test_error_after_a_multiline_cell_names_the_line_the_row_starts_on(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    def edit(rows: list[list[str]]) -> None:
        rows[1][FEATURE_NAMES.index("tenure_months")] += "\r\n"  # a cell spanning two lines
        rows[3][len(FEATURE_NAMES)] = "yes"

    path = _rewrite(write_csv(300), tmp_path / "m.csv", line_end="\r\n", edit=edit)
    # rows[0] is the header (line 1); rows[1] spans lines 2-3, so rows[3] is on line 5.
    with pytest.raises(DatasetError, match=rf"line 5, column '{LABEL}': 'yes' makes 3 classes"):
        load_csv(path)


def test_byte_that_is_not_utf8_is_named_by_line_and_column(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    def latin1(rows: list[list[str]]) -> None:
        rows[3][FEATURE_NAMES.index("num_products")] = "MARKER"

    path = _rewrite(write_csv(300), tmp_path / "latin.csv", bom=True, edit=latin1)
    path.write_bytes(path.read_bytes().replace(b"MARKER", b"caf\xe9"))
    with pytest.raises(DatasetError) as caught:
        load_csv(path)
    assert str(caught.value) == (
        f"{path}: line 4, column 'num_products': byte 0xe9 is not valid UTF-8 "
        "(save the file as CSV UTF-8)"
    )


def test_utf16_export_is_refused_with_its_encoding_named(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + write_csv(300).read_text().encode("utf-16-le"))
    with pytest.raises(DatasetError, match=r"utf16\.csv: the file is UTF-16 encoded .* UTF-8"):
        load_csv(path)

"""Fuzzing training CSVs: whatever a CSV holds, ``training.dataset.load_csv`` (what
``python -m training.train --data`` reads it with) returns a dataset or refuses with
``DatasetError`` (exit status 2) naming the file, and the line when one row is at fault,
in a message of bounded length; it writes nothing.

Inputs: arbitrary bytes; and a valid churn CSV of 100 to 120 rows with one cell, the
header or the framing damaged (wrong column counts, invalid UTF-8, NaN, infinities, huge
numbers, labels beyond int64, quotes, byte-order marks, empty files, odd line ends).
"""

from __future__ import annotations

import codecs
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from serving.schema import FeatureSpec
from tests.reliability.conftest import count_fuzzed
from training.dataset import DatasetError, load_csv
from training.schema import CHURN

MAX_MESSAGE_CHARS = 1000
COLUMNS = [*CHURN.feature_names, CHURN.label]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-csv")


def check(folder: Path, data: bytes, bad_line: int | None = None) -> bool:
    """Load ``data`` as the training CSV; assert the contract; True when it loaded.

    ``bad_line``: the one line at fault, when the damage is one unquoted cell: a refusal
    then names it (or the whole file, for a count of rows or classes).
    """
    count_fuzzed("training CSVs (training.dataset.load_csv)")
    path = folder / "data.csv"
    path.write_bytes(data)
    before = sorted(p.name for p in folder.iterdir())
    try:
        X, y = load_csv(path, CHURN)
    except DatasetError as refused:
        message = str(refused)
        assert message.startswith(f"{path}: "), message[:2000]
        assert len(message) <= MAX_MESSAGE_CHARS, (len(message), message[:2000])
        if bad_line is not None and "line " in message:
            assert f"line {bad_line}" in message, (bad_line, message)
        loaded = False
    else:
        assert X.dtype == np.float64 and X.shape == (len(y), len(CHURN.features))
        assert np.isfinite(X).all()
        assert len(y) >= 100
        loaded = True
    assert sorted(p.name for p in folder.iterdir()) == before
    return loaded


def _cell(spec: FeatureSpec, rng: random.Random) -> str:
    if spec.values is not None:
        return str(rng.choice(spec.values))
    if spec.dtype == "integer":
        return str(rng.randint(int(spec.minimum), int(spec.maximum)))
    return repr(rng.uniform(spec.minimum, spec.maximum))


def valid_rows(seed: int, count: int) -> list[list[str]]:
    """``count`` valid rows, half of each class (from a seed: hypothesis drawing every cell
    of 100 rows would spend the time budget on valid data)."""
    rng = random.Random(seed)
    return [[*(_cell(spec, rng) for spec in CHURN.features), str(i % 2)] for i in range(count)]


HOSTILE_CELLS = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "1e999",
        "1e308",
        "-1",
        "9223372036854775808",
        "-9223372036854775809",
        "1" * 5000,
        "1.5",
        "0x10",
        "١٢",
        "1_000",
        "x" * 100_000,
        '"',
        '""',
        '"a,b"',
        "a,b",
        "\ufeff1",
        "\x00",
        "\u2028",
        "é",
        "\r",
        "\n",
        '"unterminated',
    ]
) | st.text(max_size=20)


@st.composite
def damaged_csvs(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A valid CSV with one thing wrong; the line at fault if a refusal must name it."""
    count = draw(st.integers(100, 120))
    rows = valid_rows(draw(st.integers(0, 2**32)), count)
    header = list(COLUMNS)
    bad_line: int | None = None
    kind = draw(
        st.sampled_from(
            ["cell", "label", "fields", "header", "bytes", "empty", "bom", "line ends", "none"]
        )
    )
    if kind in ("cell", "label"):
        index = draw(st.integers(0, count - 1))
        column = len(COLUMNS) - 1 if kind == "label" else draw(st.integers(0, len(COLUMNS) - 2))
        value = draw(HOSTILE_CELLS)
        rows[index][column] = value
        if not set(value) & set('"\r\n\x00') and not value.strip().startswith('"'):
            bad_line = index + 2
    elif kind == "fields":
        index = draw(st.integers(0, count - 1))
        if draw(st.booleans()):
            rows[index].append(draw(HOSTILE_CELLS))
        else:
            del rows[index][draw(st.integers(0, len(COLUMNS) - 1))]
    elif kind == "header":
        where = draw(st.integers(0, len(header) - 1))
        header[where] = draw(HOSTILE_CELLS | st.sampled_from(COLUMNS))
        if draw(st.booleans()):
            header += draw(st.lists(HOSTILE_CELLS, max_size=40))
    newline = (
        "\n" if kind != "line ends" else draw(st.sampled_from(["\r\n", "\r", "\n\n", "\r\r\n"]))
    )

    def render(cells: list[str]) -> str:
        return ",".join(cells)

    text = newline.join(render(r) for r in [header, *rows]) + newline
    data = text.encode("utf-8", errors="surrogatepass")
    if kind == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif kind == "empty":
        data = draw(st.sampled_from([b"", b"\n", b"\r\n", codecs.BOM_UTF8, b" ", b","]))
    elif kind == "bom":
        data = draw(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]))
        data += text.encode("utf-16" if data != codecs.BOM_UTF8 else "utf-8", errors="replace")
    return data, bad_line


@example(data=b"")
@example(data=codecs.BOM_UTF8 + b"\xff")
# Found by this fuzzer: a CR line end before a byte that is not UTF-8 made the column
# lookup raise csv.Error (a traceback, exit 1) instead of the refusal naming the line.
@example(data=b"\r\x80")
@given(data=st.binary(max_size=600))
def test_fuzz_csv_arbitrary_bytes(folder: Path, data: bytes) -> None:
    check(folder, data)


@given(
    header=st.lists(st.sampled_from(COLUMNS) | st.text(max_size=8), max_size=12),
    rows=st.lists(
        st.lists(HOSTILE_CELLS | st.sampled_from(["0", "1", "2.5"]), max_size=12), max_size=12
    ),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_fuzz_csv_arbitrary_rows(
    folder: Path, header: list[str], rows: list[list[str]], newline: str
) -> None:
    text = newline.join(",".join(row) for row in [header, *rows])
    check(folder, text.encode("utf-8", errors="surrogatepass"))


# Found by this fuzzer: an unclosed quote in the header swallowed the file into one
# "unexpected column", echoed whole (3,327 characters here; a 100 kB name, 100 kB).
@example(case=((",".join(COLUMNS) + ',"\n' + "0,1,2\n" * 500).encode(), None))
@given(case=damaged_csvs())
def test_fuzz_csv_one_fault_in_a_valid_file(folder: Path, case: tuple[bytes, int | None]) -> None:
    data, bad_line = case
    check(folder, data, bad_line)


def test_an_undamaged_file_loads(folder: Path) -> None:
    rows = [COLUMNS, *valid_rows(0, 100)]
    assert check(folder, "\n".join(",".join(row) for row in rows).encode())

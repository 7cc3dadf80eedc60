"""Loading a user's training CSV, refusing anything the model should not learn from.

Every refusal is a ``DatasetError`` that names the file, the column and, for a bad
value, the line number (line 1 is the header), so that the user can fix the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.schema import CHURN, Schema

MIN_ROWS = 100
MIN_ROWS_PER_CLASS = 10


class DatasetError(ValueError):
    """The training data cannot be used; the message says where and why."""


def load_csv(path: Path, schema: Schema = CHURN) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Read ``path`` into ``(X, y)`` with columns in the order of ``schema.features``.

    Accepts CSV as spreadsheets and scripts write it: UTF-8 with or without a byte-order
    mark, LF, CRLF or CR line ends, quoted fields (a quoted field may span lines; an error
    in such a row names the line it starts on).
    """
    text = _read_utf8(path)
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path}: the file is empty (expected a header row)") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1 is not valid CSV ({exc})") from None
    column_index = _check_header(path, [h.strip() for h in header], schema)
    features: list[list[float]] = []
    labels: list[int] = []
    line = reader.line_num + 1
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                if len(row) != len(header):
                    raise DatasetError(
                        f"{path}: line {line} has {len(row)} fields, the header has {len(header)}"
                    )
                features.append(
                    [
                        _feature_value(
                            path,
                            line,
                            spec.name,
                            row[column_index[spec.name]],
                            spec.dtype,
                            spec.minimum,
                            spec.maximum,
                        )
                        for spec in schema.features
                    ]
                )
                labels.append(
                    _label_value(path, line, schema.label, row[column_index[schema.label]])
                )
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {line} is not valid CSV ({exc})") from None

    X = np.asarray(features, dtype=np.float64).reshape(-1, len(schema.features))
    y = np.asarray(labels, dtype=np.int64)
    check_class_balance(y, source=str(path), label=schema.label)
    return X, y


def _read_utf8(path: Path) -> str:
    """The file's text, without a byte-order mark; a byte that is not UTF-8 is named by
    line and column, since a text reader decoding in blocks cannot tell where it was."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open ({exc.strerror})") from exc
    for bom, encoding in ((codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise DatasetError(
                f"{path}: the file is {encoding} encoded (it starts with a {encoding} "
                "byte-order mark); save it as CSV UTF-8"
            )
    # Decoded without the mark so that the error's offsets index ``data``.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        prefix = data[line_start : exc.start].decode("utf-8", errors="replace")
        column = _column_at(data, prefix)
        raise DatasetError(
            f"{path}: line {line}{column}: byte 0x{data[exc.start]:02x} is not valid UTF-8 "
            "(save the file as CSV UTF-8)"
        ) from None


def _column_at(data: bytes, prefix: str) -> str:
    """``, column 'name'`` for the field that ``prefix`` (a line up to a point) ends in."""
    index = len(next(csv.reader([prefix]), [""])) - 1
    first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    header = [h.strip() for h in next(csv.reader([first_line.rstrip("\r")]), [])]
    return f", column '{header[index]}'" if 0 <= index < len(header) else ""


def check_class_balance(y: NDArray[np.int64], *, source: str, label: str = CHURN.label) -> None:
    rows = len(y)
    if rows < MIN_ROWS:
        raise DatasetError(f"{source}: {rows} data rows, at least {MIN_ROWS} are needed")
    positives = int(y.sum())
    for cls, count in ((0, rows - positives), (1, positives)):
        if count < MIN_ROWS_PER_CLASS:
            raise DatasetError(
                f"{source}: column '{label}' has {count} rows of class {cls}; "
                f"both classes need at least {MIN_ROWS_PER_CLASS} rows"
            )


def fingerprint(
    X: NDArray[np.float64], y: NDArray[np.int64], schema: Schema = CHURN
) -> dict[str, object]:
    """A content hash of the training data, independent of file formatting."""
    digest = hashlib.sha256()
    digest.update(",".join((*schema.feature_names, schema.label)).encode())
    digest.update(np.ascontiguousarray(X, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": len(y),
        "positive_rate": round(float(y.mean()), 6),
    }


def _check_header(path: Path, header: list[str], schema: Schema) -> dict[str, int]:
    expected = (*schema.feature_names, schema.label)
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate column(s) {', '.join(duplicates)}")
    missing = [name for name in expected if name not in header]
    extra = [name for name in header if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(repr(e) for e in extra)}")
    if problems:
        raise DatasetError(
            f"{path}: {'; '.join(problems)} (expected exactly: {', '.join(expected)})"
        )
    return {name: header.index(name) for name in expected}


def _feature_value(
    path: Path, line: int, name: str, raw: str, dtype: str, minimum: float, maximum: float
) -> float:
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(
            f"{path}: line {line}, column '{name}': {raw!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise DatasetError(f"{path}: line {line}, column '{name}': {raw!r} is not a finite number")
    if dtype == "integer" and not value.is_integer():
        raise DatasetError(f"{path}: line {line}, column '{name}': {raw!r} is not a whole number")
    if not minimum <= value <= maximum:
        raise DatasetError(
            f"{path}: line {line}, column '{name}': {value:g} is outside the allowed range "
            f"[{minimum:g}, {maximum:g}]"
        )
    return value


def _label_value(path: Path, line: int, label: str, raw: str) -> int:
    text = raw.strip()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    raise DatasetError(f"{path}: line {line}, column '{label}': {raw!r} is not a label (0 or 1)")

"""Loading a user's training CSV, refusing anything the model should not learn from.

Every refusal is a ``DatasetError`` that names the file, the column and, for a bad
value, the line number (line 1 is the header), so that the user can fix the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from serving.labels import finite_number
from serving.schema import UNKNOWN_CODE, FeatureSpec, Schema, listing, quote
from training.schema import CHURN

MIN_ROWS = 100
MIN_ROWS_PER_CLASS = 10
# Integer class labels are stored as int64 (the artifact, the golden set, the handler).
INT64 = np.iinfo(np.int64)


# A nullable feature's missing cell, as spreadsheets and pandas write it (pandas reads
# each of these as NaN too): NaN in the matrix. A listed category wins over this list.
MISSING_CELLS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None"})


# Class labels (int64, or object holding str) or regression targets (float64).
Labels = NDArray[Any]

Notice = Callable[[str], Any]


class DatasetError(ValueError):
    """The training data cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Table:
    """A CSV read against a schema: the matrix, the labels, and the raw cell of each passed
    unknown category ((row, column) -> value; the matrix holds ``UNKNOWN_CODE`` there)."""

    X: NDArray[np.float64]
    y: Labels
    unknown: dict[tuple[int, int], str | int] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def load_csv(
    path: Path, schema: Schema = CHURN, *, notice: Notice = _stderr
) -> tuple[NDArray[np.float64], Labels]:
    """``(X, y)`` of ``load_table``."""
    table = load_table(path, schema, notice=notice)
    return table.X, table.y


def read_frame(path: Path, schema: Schema) -> Any:
    """The schema's feature columns of ``path`` as the user's own code reads them
    (``pandas.read_csv``: header names, pandas' dtypes, missing cells as NaN), in schema
    order, one row per row of ``load_table``'s matrix."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig")
    except Exception as exc:
        raise DatasetError(f"{path}: pandas cannot read it ({quote(str(exc), 200)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    names = list(schema.feature_names)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: pandas reads no column(s) {listing(missing)}")
    # Rows with no value at all are skipped by the loader: so here.
    frame = frame.loc[~frame.isna().all(axis=1)]
    return frame[names].reset_index(drop=True)


def load_table(path: Path, schema: Schema = CHURN, *, notice: Notice = _stderr) -> Table:
    """Read ``path`` into a ``Table`` with columns in the order of ``schema.features``.

    A categorical cell becomes its value's position in the schema's list (the encoding
    the handler applies to requests); a nullable feature's missing cell (empty, ``NA``,
    ``NaN``, ``null``: ``MISSING_CELLS``) NaN; an unlisted category of an
    ``unknown: pass`` feature ``UNKNOWN_CODE``. Columns the schema does not list are
    ignored and named in one ``notice``. Labels: for a classifier, integers when every
    label is an integer, else strings; for a regressor, finite numbers.

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
    column_index, ignored = _check_header(path, [h.strip() for h in header], schema)
    if ignored:
        notice(
            f"note: {path}: column(s) {listing([quote(i) for i in ignored])} not in the "
            "schema: ignored"
        )
    codes = [_category_codes(spec) for spec in schema.features]
    features: list[list[float]] = []
    unknown: dict[tuple[int, int], str | int] = {}
    raw_labels: list[tuple[int, str]] = []
    line = reader.line_num + 1
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                if len(row) != len(header):
                    raise DatasetError(
                        f"{path}: line {line} has {len(row)} fields, the header has {len(header)}"
                    )
                values = []
                for j, (spec, code) in enumerate(zip(schema.features, codes, strict=True)):
                    cell = row[column_index[spec.name]]
                    value = _feature_value(path, line, spec, cell, code)
                    if value == UNKNOWN_CODE and spec.values is not None:
                        unknown[(len(features), j)] = _raw_category(spec, cell.strip())
                    values.append(value)
                features.append(values)
                raw_labels.append((line, row[column_index[schema.label]].strip()))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {line} is not valid CSV ({exc})") from None

    X = np.asarray(features, dtype=np.float64).reshape(-1, len(schema.features))
    y = _labels(path, schema, raw_labels)
    check_class_balance(y, source=str(path), label=schema.label, task=schema.task)
    return Table(X, y, unknown, tuple(ignored))


def _raw_category(spec: FeatureSpec, text: str) -> str | int:
    """An unlisted cell as a request would send it: an integer where the values are."""
    if spec.values and all(isinstance(v, int) for v in spec.values):
        integer = _as_integer(text)
        if integer is not None and str(integer) == text:
            return integer
    return text


def _labels(path: Path, schema: Schema, raw: list[tuple[int, str]]) -> Labels:
    where = f"column '{schema.label}'"
    if schema.task == "regression":
        values = []
        for line, text in raw:
            value = finite_number(text)
            if value is None:
                raise DatasetError(
                    f"{path}: line {line}, {where}: {quote(text)} is not a finite number (the "
                    "label of a regression)"
                )
            values.append(value)
        return np.asarray(values, dtype=np.float64)
    for line, text in raw:
        if not text:
            raise DatasetError(f"{path}: line {line}, {where}: the label is empty")
    integers = [_as_integer(text) for _, text in raw]
    labels: list[Any] = integers if all(v is not None for v in integers) else [t for _, t in raw]
    if labels is integers:
        for (line, text), integer in zip(raw, integers, strict=True):
            if integer is not None and not INT64.min <= integer <= INT64.max:
                raise DatasetError(
                    f"{path}: line {line}, {where}: {quote(text)} is beyond the 64-bit integer "
                    f"range of a class label ({INT64.min} to {INT64.max})"
                )
    first_line: dict[Any, int] = {}
    counts: dict[Any, int] = {}
    for (line, _), value in zip(raw, labels, strict=True):
        first_line.setdefault(value, line)
        counts[value] = counts.get(value, 0) + 1
    if schema.task == "binary" and len(counts) > 2:
        # The rarest class is most likely the typo: named at the line it first shows up.
        odd = min(counts, key=lambda c: (counts[c], first_line[c]))
        shown = list(counts.items())[:10]
        found = ", ".join(f"{quote(c)} ({n} row{'s' if n != 1 else ''})" for c, n in shown)
        found += "" if len(counts) <= len(shown) else f", ... ({len(counts)} in all)"
        raise DatasetError(
            f"{path}: line {first_line[odd]}, {where}: {quote(odd)} makes {len(counts)} classes: a "
            f"binary label has exactly 2 (found {found})"
        )
    if labels and isinstance(labels[0], int):
        return np.asarray(labels, dtype=np.int64)
    return np.asarray(labels, dtype=object)


def _as_integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    # "1.0" is how some tools write the integer label 1.
    return int(value) if math.isfinite(value) and value.is_integer() else None


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
    try:
        index = len(next(csv.reader([prefix]), [""])) - 1
        first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        header = [h.strip() for h in next(csv.reader([first_line.rstrip("\r")]), [])]
    except csv.Error:
        # e.g. a lone CR (old Mac line ends) before the bad byte: the line alone is named.
        return ""
    return f", column {quote(header[index])}" if 0 <= index < len(header) else ""


def check_class_balance(
    y: Labels, *, source: str, label: str = CHURN.label, task: str = "binary"
) -> None:
    rows = len(y)
    if rows < MIN_ROWS:
        raise DatasetError(f"{source}: {rows} data rows, at least {MIN_ROWS} are needed")
    if task == "regression":
        return
    classes, counts = np.unique(y, return_counts=True)
    found = ", ".join(repr(_plain(c)) for c in classes)
    if task == "binary" and len(classes) != 2:
        raise DatasetError(
            f"{source}: column '{label}' has {len(classes)} class(es) ({found}); a binary "
            "label needs exactly 2"
        )
    if task == "multiclass" and len(classes) < 3:
        raise DatasetError(
            f"{source}: column '{label}' has {len(classes)} class(es) ({found}); a multiclass "
            "label needs at least 3 (use task binary for 2)"
        )
    for cls, count in zip(classes, counts, strict=True):
        if count < MIN_ROWS_PER_CLASS:
            raise DatasetError(
                f"{source}: column '{label}' has {count} rows of class {quote(_plain(cls))}; "
                f"every class needs at least {MIN_ROWS_PER_CLASS} rows"
            )


def classes_of(y: Labels) -> list[Any]:
    """The sorted class labels as plain JSON scalars (scikit-learn's ``classes_`` order)."""
    return [_plain(c) for c in np.unique(y)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def fingerprint(X: NDArray[np.float64], y: Labels, schema: Schema = CHURN) -> dict[str, object]:
    """A content hash of the training data, independent of file formatting."""
    digest = hashlib.sha256()
    digest.update(",".join((*schema.feature_names, schema.label)).encode())
    digest.update(np.ascontiguousarray(X, dtype="<f8").tobytes())
    if y.dtype == object:
        digest.update(json.dumps([_plain(v) for v in y]).encode())
    elif schema.task == "regression":
        digest.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
    else:
        digest.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    summary: dict[str, object] = {"sha256": digest.hexdigest(), "rows": len(y)}
    if schema.task == "regression":
        summary["label_mean"] = round(float(np.mean(y)), 6)
    elif schema.task == "binary":
        # The rate of the positive class, scikit-learn's second (the handler's classes[1]).
        summary["positive_rate"] = round(float(np.mean(y == np.unique(y)[-1])), 6)
    else:
        summary["class_rates"] = {str(c): round(float(np.mean(y == c)), 6) for c in classes_of(y)}
    return summary


def _check_header(
    path: Path, header: list[str], schema: Schema
) -> tuple[dict[str, int], list[str]]:
    """Each expected column's index, and the columns the schema does not list (ignored)."""
    expected = (*schema.feature_names, schema.label)
    # A header line may be anything (an unclosed quote swallows the whole file into one
    # "column"): names are quoted and listed through the schema's bounded helpers.
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate column(s) {listing([quote(d) for d in duplicates])}")
    missing = [name for name in expected if name not in header]
    extra = [name for name in header if name not in expected]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {listing(missing, limit=len(expected))} (expected: "
            f"{', '.join(expected)}; other columns are ignored)"
        )
    return {name: header.index(name) for name in expected}, extra


def _category_codes(spec: FeatureSpec) -> dict[str, int] | None:
    """Cell text -> code for a categorical feature. A CSV cell has no JSON type: "1" matches
    the listed integer 1 unless the string "1" is listed too (the string wins)."""
    if spec.values is None:
        return None
    codes = {str(v): k for k, v in enumerate(spec.values) if isinstance(v, int)}
    codes.update({v: k for k, v in enumerate(spec.values) if isinstance(v, str)})
    return codes


def _feature_value(
    path: Path, line: int, spec: FeatureSpec, raw: str, codes: dict[str, int] | None
) -> float:
    name = spec.name
    text = raw.strip()
    if codes is not None:
        code = codes.get(text)
        if code is None and spec.nullable and text in MISSING_CELLS:
            return math.nan
        if code is None and spec.unknown == "pass" and text:
            return UNKNOWN_CODE
        if code is None:
            allowed = ", ".join(quote(v) for v in (spec.values or ())[:20])
            more = "" if len(spec.values or ()) <= 20 else f", ... ({len(codes)} in all)"
            raise DatasetError(
                f"{path}: line {line}, column '{name}': {quote(raw)} is not one of the allowed "
                f"values ({allowed}{more})"
            )
        return float(code)
    if spec.nullable and text in MISSING_CELLS:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(
            f"{path}: line {line}, column '{name}': {quote(raw)} is not a number"
        ) from None
    if not math.isfinite(value):
        raise DatasetError(
            f"{path}: line {line}, column '{name}': {quote(raw)} is not a finite number"
        )
    if spec.dtype == "integer" and not value.is_integer():
        raise DatasetError(
            f"{path}: line {line}, column '{name}': {quote(raw)} is not a whole number"
        )
    if not spec.minimum <= value <= spec.maximum:
        raise DatasetError(
            f"{path}: line {line}, column '{name}': {value:g} is outside the allowed range "
            f"[{spec.minimum:g}, {spec.maximum:g}]"
        )
    return value

"""Batch-scoring tables: CSV with a header row, JSON Lines, Parquet; read whole, written
one answer per input row in the input's format (Parquet in: Parquet or JSON Lines out)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from inference.limits import echo
from tools.batch import RefusedError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
# The answer fields a row can carry, in the order columns are written.
ANSWER_FIELDS = ("prediction", "probability", "probabilities")


def format_of(path: str, *, what: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RefusedError(
            f"{what} {path}: unknown format {echo(suffix or '(no suffix)')}: use "
            f"{', '.join(FORMATS)}"
        )
    return FORMATS[suffix]


@dataclass(frozen=True)
class Table:
    format: str
    # CSV: the header, each row its cells (strings, as Step Functions' CSV reader gives
    # them); JSON Lines and Parquet: None, each row an object of typed values.
    header: list[str] | None
    rows: list[Any]


def read_table(path: Path) -> Table:
    fmt = format_of(str(path), what="input")
    try:
        if fmt == "csv":
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if header is None:
                    raise RefusedError(f"input {path}: empty file, expected a CSV header row")
                return Table(fmt, header, list(reader))
        if fmt == "jsonl":
            rows = []
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise RefusedError(
                                f"input {path} line {number}: not JSON: {exc.msg}"
                            ) from None
            return Table(fmt, None, rows)
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        table = pq.read_table(path)
        return Table(fmt, list(table.column_names), table.to_pylist())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RefusedError(f"input {path} is unreadable: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):
            raise RefusedError(f"input {path} is not readable Parquet: {exc}") from None
        raise


def check_header(header: Sequence[str], features: Sequence[str], key_column: str | None) -> None:
    """Refuse a header that does not name exactly the features (and the key column)."""
    expected = [*features, *([key_column] if key_column else [])]
    missing = [name for name in expected if name not in header]
    unknown = [name for name in header if name not in expected]
    repeated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(map(echo, missing))}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(echo, unknown))}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(map(echo, repeated))}")
    if problems:
        raise RefusedError(
            f"the header does not match the model's schema: {'; '.join(problems)} "
            f"(expected: {', '.join(expected)})"
        )


def output_format(input_format: str, path: str) -> str:
    fmt = format_of(path, what="output")
    allowed = {"csv": {"csv"}, "jsonl": {"jsonl"}, "parquet": {"parquet", "jsonl"}}[input_format]
    if fmt not in allowed:
        raise RefusedError(
            f"output {path}: a {input_format} input is written as "
            f"{' or '.join(sorted(allowed))}, not {fmt}"
        )
    return fmt


def columns(ident: str, rows_fields: Iterable[str]) -> list[str]:
    present = set(rows_fields)
    return [ident, *(name for name in ANSWER_FIELDS if name in present), "error"]


def flat(row: dict[str, Any], names: Sequence[str]) -> list[Any]:
    """A row's cells for CSV and Parquet: the error by its message (which names the first
    problem and counts the others; JSON Lines keeps the whole error object), multiclass
    probabilities as JSON."""
    out = []
    for name in names:
        value = row.get(name)
        if name == "error" and isinstance(value, dict):
            value = value.get("message")
        out.append(json.dumps(value, sort_keys=False) if isinstance(value, dict | list) else value)
    return out


def render(fmt: str, names: Sequence[str], rows: list[dict[str, Any]]) -> str | list[list[Any]]:
    """Answered rows as ``fmt`` text (CSV, JSON Lines), or Parquet's cells; worker
    processes render, so the process that writes the file only writes."""
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    if fmt == "csv":
        plain = _plain_csv(names, rows)
        if plain is not None:
            return plain
    nested = "probabilities" in names
    cells = [
        flat(row, names) if nested or "error" in row else [row.get(name) for name in names]
        for row in rows
    ]
    if fmt == "parquet":
        return cells
    text = io.StringIO()
    csv.writer(text).writerows(cells)
    return text.getvalue()


def _plain_csv(names: Sequence[str], rows: list[dict[str, Any]]) -> str | None:
    """``csv.writer``'s text for rows that all answer every column but the error with an
    int or a float (which it writes as ``str`` does, unquoted), formatted by one
    ``%`` a row and joined once; None for any other rows, which go through the writer."""
    answered = names[:-1]
    if names[-1] != "error" or not answered:
        return None
    fields = dict.fromkeys(answered).keys()
    try:
        # In C: a row that is not a dict raises TypeError; one with an error fails the test.
        if not all(map(fields.__eq__, map(dict.keys, rows))):
            return None
    except TypeError:
        return None
    values = list(map(itemgetter(*answered), rows))
    if len(answered) == 1:
        values = [(value,) for value in values]
    # type(), not isinstance(): a bool (an int subclass) or an int-like class label is not
    # written as an int; only ints and floats are written here.
    if not set(map(type, chain.from_iterable(values))) <= {int, float}:
        return None
    line = ",".join(["%s"] * len(answered)) + ",\r\n"  # the error cell empty; csv's \r\n
    return "".join(map(line.__mod__, values))


class Writer:
    """Streams answered rows to ``path`` in ``fmt``; CSV and JSON Lines as they come,
    Parquet at ``close``."""

    def __init__(self, path: Path, fmt: str, names: list[str]) -> None:
        self.path, self.fmt, self.names = path, fmt, names
        self.pending: list[list[Any]] = []
        self.handle = None if fmt == "parquet" else path.open("w", newline="", encoding="utf-8")
        if self.handle is not None and fmt == "csv":
            csv.writer(self.handle).writerow(names)

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.write_rendered(render(self.fmt, self.names, rows))

    def write_rendered(self, rendered: str | list[list[Any]]) -> None:
        if isinstance(rendered, str):
            assert self.handle is not None
            self.handle.write(rendered)
        else:
            self.pending.extend(rendered)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {name: [row[i] for row in self.pending] for i, name in enumerate(self.names)}
        pq.write_table(pa.table(data), self.path)

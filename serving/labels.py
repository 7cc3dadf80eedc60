"""Ground-truth outcomes from a CSV as people produce it.

Columns (header required, names matched case-insensitively, any order, others ignored):
``request_id``, ``label`` and optionally ``row`` (the row of a batch request, 0 when absent
or empty). The label is the model's task's (``read(path, task=...)``): binary 0/1,
true/false, yes/no; multiclass the class label as the service answers it (``bee``, ``2``);
regression a number. UTF-8 with or without a byte-order mark, CRLF or
LF line ends, quoted fields. Every refusal names the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from serving.capture_export import excerpt
from serving.tasks import TASKS

REQUEST_ID = "request_id"
ROW = "row"
LABEL = "label"
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


class LabelsError(ValueError):
    """The outcomes file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Outcome:
    line: int
    request_id: str
    row: int
    # binary: 0 or 1; multiclass: the class label's text; regression: the value.
    label: int | str | float


def read(path: Path, *, task: str = "binary") -> list[Outcome]:
    if task not in TASKS:
        raise LabelsError(f"task {task!r} is not one of {', '.join(TASKS)}")
    try:
        # utf-8-sig drops a byte-order mark; newline="" lets csv see quoted line breaks.
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise LabelsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    outcomes: list[Outcome] = []
    seen: dict[tuple[str, int], int] = {}
    with handle:
        # strict: an unterminated quote is an error, not a field that swallows the file.
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise LabelsError(f"{path}: the file is empty (expected a header row)")
            columns = _columns(path, header)
            for record in reader:
                line = reader.line_num
                if not record or all(not cell.strip() for cell in record):
                    continue
                outcome = _outcome(path, line, record, columns, task)
                key = (outcome.request_id, outcome.row)
                if key in seen:
                    raise LabelsError(
                        f"{path}: line {line}: request {excerpt(outcome.request_id)} row "
                        f"{outcome.row} is already labelled on line {seen[key]}"
                    )
                seen[key] = line
                outcomes.append(outcome)
        except csv.Error as exc:
            raise LabelsError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise LabelsError(
                f"{path}: after line {reader.line_num}: not UTF-8 text "
                f"(byte {exc.object[exc.start]:#04x})"
            ) from None
    if not outcomes:
        raise LabelsError(f"{path}: no outcomes after the header")
    return outcomes


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    found = {}
    for wanted in (REQUEST_ID, ROW, LABEL):
        positions = [i for i, name in enumerate(names) if name == wanted]
        if len(positions) > 1:
            raise LabelsError(f"{path}: line 1: column {wanted!r} appears {len(positions)} times")
        if positions:
            found[wanted] = positions[0]
    missing = [name for name in (REQUEST_ID, LABEL) if name not in found]
    if missing:
        raise LabelsError(
            f"{path}: line 1: missing column(s) {', '.join(missing)} (header: "
            f"{', '.join(repr(h) for h in header)}; expected request_id, label and optionally row)"
        )
    return found


def _outcome(
    path: Path, line: int, record: list[str], columns: dict[str, int], task: str
) -> Outcome:
    def cell(name: str) -> str:
        index = columns[name]
        if index >= len(record):
            raise LabelsError(
                f"{path}: line {line}, column {name!r}: missing (the line has {len(record)} fields)"
            )
        return record[index].strip()

    request_id = cell(REQUEST_ID)
    if not request_id:
        raise LabelsError(f"{path}: line {line}, column 'request_id': empty")
    row = 0
    if ROW in columns:
        text = cell(ROW)
        if text:
            try:
                row = int(text)
            except ValueError:
                row = -1
            if row < 0:
                raise LabelsError(
                    f"{path}: line {line}, column 'row': {excerpt(text)} is not a row number "
                    "(0, 1, ...)"
                )
    raw = cell(LABEL)
    if task == "multiclass":
        if not raw:
            raise LabelsError(f"{path}: line {line}, column 'label': empty (a class label)")
        return Outcome(line, request_id, row, raw)
    if task == "regression":
        value = finite_number(raw)
        if value is None:
            raise LabelsError(
                f"{path}: line {line}, column 'label': {excerpt(raw)} is not a finite number"
            )
        return Outcome(line, request_id, row, value)
    if raw.lower() in _TRUE:
        label = 1
    elif raw.lower() in _FALSE:
        label = 0
    else:
        raise LabelsError(
            f"{path}: line {line}, column 'label': {excerpt(raw)} is not a label (0 or 1)"
        )
    return Outcome(line, request_id, row, label)


def finite_number(text: str) -> float | None:
    """``text`` as a finite float; None when it is not a number, or is NaN or infinite."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None

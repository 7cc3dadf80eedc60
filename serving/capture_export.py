"""Reading a capture export: JSON lines of capture records (``serving.capture``), as the
delivery stream writes them to the capture bucket, plain or gzip-compressed (``.gz``).

Lines that are JSON objects without the capture marker (an export of the whole log group
holds ordinary log lines and metric documents too) are skipped and counted; anything else
that is wrong stops the read with an error naming the file, the line and the field.
"""

from __future__ import annotations

import codecs
import gzip
import json
import math
import reprlib
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from serving.capture import CAPTURE_FIELD, CAPTURE_MARKER, RECORD_FORMAT

# A capture record is under 64 KB and CloudWatch Logs keeps events under 256 KB: a longer
# line is no line of an export, and is refused without being held whole.
MAX_LINE_BYTES = 1024 * 1024
# An error message shows at most this much of a bad value or line.
EXCERPT_CHARS = 80


class CaptureFileError(ValueError):
    """The capture export cannot be read; the message names file, line and field."""


# slots: an export of a million rows is a million of these.
@dataclass(frozen=True, slots=True)
class CapturedRow:
    line: int
    request_id: str
    row: int
    model_name: str
    model_version: str
    lambda_version: str
    timestamp: str
    # binary: P(classes[1]); None for the other tasks.
    probability: float | None
    # binary and multiclass: the class label answered; regression: the value.
    prediction: Any
    # Numbers as floats; a categorical feature's value as the request sent it; None a null.
    features: dict[str, float | str | None] | None
    task: str = "binary"
    # multiclass: the probability per class, in class order.
    probabilities: tuple[float, ...] | None = None


@dataclass
class CaptureExport:
    path: Path
    rows: list[CapturedRow] = field(default_factory=list)
    skipped_lines: int = 0  # JSON objects that are not capture records

    def versions(self) -> list[str]:
        return sorted({row.model_version for row in self.rows}, key=version_key)


def version_key(version: str) -> tuple[int, str]:
    """v2 before v10: the number, when there is one, then the text."""
    digits = version.lstrip("v")
    return (int(digits), version) if digits.isdigit() else (-1, version)


def read(path: Path) -> CaptureExport:
    export = CaptureExport(path)
    try:
        with _open(path) as handle:
            for number, text in _lines(path, handle):
                if not text.strip():
                    continue
                record = _parse(path, number, text)
                if record is None:
                    export.skipped_lines += 1
                else:
                    export.rows.append(record)
    except OSError as exc:
        raise CaptureFileError(f"{path}: cannot read ({clip(str(exc.strerror or exc))})") from None
    return export


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as ``repr`` shows it, cut after ``limit`` characters: an export's field can
    be megabytes, and an error message echoes at most this much of it. Built from a
    bounded repr, never the whole value's."""
    text = _REPR.repr(value) if not isinstance(value, str | bytes) else repr(value[: limit + 1])
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut at {limit} characters)"


def clip(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Plain text (a field name, an error's words) cut as ``excerpt`` cuts a value."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut at {limit} characters)"


_REPR = reprlib.Repr(maxlevel=3, maxlist=8, maxdict=8, maxstring=EXCERPT_CHARS, maxother=40)


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _lines(path: Path, handle: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, each at most MAX_LINE_BYTES: a damaged gzip, a
    line over the bound or bytes that are not UTF-8 stop the read naming the line."""
    number = 0
    while True:
        number += 1
        try:
            raw = handle.readline(MAX_LINE_BYTES + 1)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CaptureFileError(
                f"{path}: line {number}: not a readable gzip file "
                f"({type(exc).__name__}: {clip(str(exc))})"
            ) from None
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES:
            raise CaptureFileError(
                f"{path}: line {number}: longer than {MAX_LINE_BYTES:,} bytes (a capture "
                f"record is under 64 KB, a log event under 256 KB): {excerpt(raw[:80])}"
            )
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CaptureFileError(
                f"{path}: line {number}: not UTF-8 (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1})"
            ) from None
        yield number, text


def _parse(path: Path, number: int, text: str) -> CapturedRow | None:
    where = f"{path}: line {number}"
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise CaptureFileError(f"{where}: not valid JSON ({clip(str(exc))})") from None
    except RecursionError:
        raise CaptureFileError(
            f"{where}: not a record: nested too deeply to read ({excerpt(text[:40])})"
        ) from None
    if not isinstance(record, dict):
        raise CaptureFileError(
            f"{where}: expected a JSON object, got {type(record).__name__} {excerpt(record)}"
        )
    marker = record.get(CAPTURE_FIELD)
    if marker is None:
        return None
    if marker != CAPTURE_MARKER or isinstance(marker, bool):
        raise CaptureFileError(f"{where}: field 'capture' is {excerpt(marker)}, expected 1")
    if record.get("format") != RECORD_FORMAT:
        raise CaptureFileError(
            f"{where}: field 'format' is {excerpt(record.get('format'))}: this reader knows "
            f"{RECORD_FORMAT!r} only"
        )

    def text_field(name: str) -> str:
        value = record.get(name)
        if not isinstance(value, str) or not value:
            raise CaptureFileError(f"{where}: field {name!r} must be a non-empty string")
        return value

    def whole(name: str, minimum: int) -> int:
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise CaptureFileError(
                f"{where}: field {name!r} must be an integer >= {minimum}, got {excerpt(value)}"
            )
        return value

    task, prediction, probability, probabilities = _answer(where, record)
    features = record.get("features")
    if features is not None:
        features = _features(where, features)
    return CapturedRow(
        line=number,
        request_id=text_field("request_id"),
        row=whole("row", 0),
        model_name=text_field("model_name"),
        model_version=text_field("model_version"),
        lambda_version=text_field("lambda_version"),
        timestamp=text_field("timestamp"),
        probability=probability,
        prediction=prediction,
        features=features,
        task=task,
        probabilities=probabilities,
    )


def _answer(
    where: str, record: dict[str, Any]
) -> tuple[str, Any, float | None, tuple[float, ...] | None]:
    """(task, prediction, probability, probabilities): the record's fields say its task
    (binary: ``probability``; multiclass: ``probabilities``; regression: neither)."""
    prediction = record.get("prediction")

    def label() -> str | int:
        if isinstance(prediction, bool) or not isinstance(prediction, str | int):
            raise CaptureFileError(
                f"{where}: field 'prediction' must be a class label (a string or an integer), "
                f"got {excerpt(prediction)}"
            )
        return prediction

    if "probabilities" in record:
        probabilities = record["probabilities"]
        if (
            not isinstance(probabilities, list)
            or len(probabilities) < 2
            or not all(_probability(p) for p in probabilities)
        ):
            raise CaptureFileError(
                f"{where}: field 'probabilities' must be a list of numbers in [0, 1], got "
                f"{excerpt(probabilities)}"
            )
        return "multiclass", label(), None, tuple(float(p) for p in probabilities)
    if "probability" in record or not _number(prediction):
        probability = record.get("probability")
        if not _probability(probability):
            raise CaptureFileError(
                f"{where}: field 'probability' must be a number in [0, 1], got "
                f"{excerpt(probability)}"
            )
        return "binary", label(), float(probability), None  # type: ignore[arg-type]
    assert isinstance(prediction, int | float)  # _number said so
    return "regression", float(prediction), None, None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _probability(value: Any) -> bool:
    return _number(value) and 0 <= value <= 1


def _features(where: str, features: Any) -> dict[str, float | str | None]:
    if not isinstance(features, dict):
        raise CaptureFileError(f"{where}: field 'features' must be an object or null")
    out: dict[str, float | str | None] = {}
    for name, value in features.items():
        if isinstance(value, str) or value is None:
            out[name] = value  # a categorical feature's value, or a null (nullable feature)
            continue
        if not _number(value):
            raise CaptureFileError(
                f"{where}: field 'features.{clip(name)}' must be a finite number, a "
                f"categorical value or null, got {excerpt(value)}"
            )
        out[name] = float(value)
    return out


# A bug in an analysis command: never Python's 1, which tools.drift documents as "drift found".
EXIT_FAILED = 4


def run_command(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Exit with ``main(argv)``'s status; a bug exits EXIT_FAILED with the exception's last
    line, bounded, instead of a traceback and status 1."""
    try:
        status = main(argv)
    except Exception as exc:
        print(
            f"error: the tool failed (a bug, not your input): "
            f"{type(exc).__name__}: {clip(str(exc))}",
            file=sys.stderr,
        )
        sys.exit(EXIT_FAILED)
    sys.exit(status)

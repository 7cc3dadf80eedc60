"""One JSON object per line on stdout: CloudWatch Logs Insights queries fields directly.

Deliberately tiny (no logging framework, no Powertools): it is imported on every cold start.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime

from inference import json_codec
from inference.limits import LOG_LINE_MAX_BYTES, clip

# A field of an oversized line is cut to this many characters (see ``bounded``).
FIELD_MAX_CHARS = 2048
# A stack trace keeps its end (where it was raised) within this many characters.
TRACEBACK_MAX_CHARS = 16 * 1024


def write_line(record: dict[str, object]) -> None:
    write_lines([record])


def write_lines(records: list[dict[str, object]]) -> None:
    """Each record on its own line, written and flushed at once (one flush per request).

    Lambda makes each line of stdout its own log event, so lines written together are
    still separate events.
    """
    text = "".join(_encode(record) + "\n" for record in records)
    # sys.stdout is looked up per call so that test capture and local servers see it.
    sys.stdout.write(text)
    # Lambda may freeze the environment right after the handler returns.
    sys.stdout.flush()


def _encode(record: dict[str, object]) -> str:
    # ASCII only (json_codec keeps json.dumps's escapes): characters are bytes here.
    line = json_codec.dumps(record, default=str)
    if len(line) >= LOG_LINE_MAX_BYTES:
        line = json_codec.dumps(bounded(record, len(line)), default=str)
    return line


def bounded(record: dict[str, object], size: int) -> dict[str, object]:
    """A last guard: CloudWatch Logs refuses events over 256 KB, and a huge line is useless.

    Every line is bounded by construction (callers truncate what they echo); this cuts
    each field of a line that still came out too long, and says so.
    """
    out: dict[str, object] = {}
    for name, value in record.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[name] = value if len(text) <= FIELD_MAX_CHARS else clip(text, FIELD_MAX_CHARS)
    out["log_truncated_from_bytes"] = size
    return out


def entry(level: str, message: str, **fields: object) -> dict[str, object]:
    """An ordinary log line's record, for ``write_lines`` with others."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "message": message,
        **fields,
    }


def log(level: str, message: str, **fields: object) -> None:
    write_line(entry(level, message, **fields))


def info(message: str, **fields: object) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: object) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: object) -> None:
    log("ERROR", message, **fields)


def exception(message: str, **fields: object) -> None:
    """An ERROR line carrying the active exception's stack (one log event, not many)."""
    trace = traceback.format_exc()
    if len(trace) > TRACEBACK_MAX_CHARS:
        trace = (
            f"... ({len(trace) - TRACEBACK_MAX_CHARS} characters cut)\n"
            + trace[-TRACEBACK_MAX_CHARS:]
        )
    log("ERROR", message, exception=trace, **fields)

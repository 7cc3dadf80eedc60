"""One JSON object per line on stdout: CloudWatch Logs Insights queries fields directly.

Deliberately tiny (no logging framework, no Powertools): it is imported on every cold start.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime


def write_line(record: dict[str, object]) -> None:
    # sys.stdout is looked up per call so that test capture and local servers see it.
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    # Lambda may freeze the environment right after the handler returns.
    sys.stdout.flush()


def log(level: str, message: str, **fields: object) -> None:
    write_line(
        {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "message": message,
            **fields,
        }
    )


def info(message: str, **fields: object) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: object) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: object) -> None:
    log("ERROR", message, **fields)


def exception(message: str, **fields: object) -> None:
    """An ERROR line carrying the active exception's stack (one log event, not many)."""
    log("ERROR", message, exception=traceback.format_exc(), **fields)

"""Size limits of answers and log lines, and the helpers that keep caller text within them.

Lambda refuses a response payload over 6 MB (the caller then sees a 502, not our 4xx), and
CloudWatch Logs refuses an event over 256 KB. Nothing a caller sends may make an answer or
a log line grow with it: every echo of caller text is truncated, lists are capped and the
number of left-out entries is reported instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar

_Item = TypeVar("_Item")

# Every 4xx/5xx answer and every log line stays below this, whatever the request.
ANSWER_MAX_BYTES = 64 * 1024
LOG_LINE_MAX_BYTES = 64 * 1024
# Caller text (a field name, a content type, a method) is echoed at most this long.
ECHO_MAX_CHARS = 64
# An error message (the first problem, with its context) is cut at this length.
MESSAGE_MAX_CHARS = 1024
# At most this many problems, and this many bytes of them, go into error.details.
MAX_REPORTED_PROBLEMS = 20
DETAILS_MAX_BYTES = 24 * 1024
# A prediction log line lists the first this many rows' probabilities and labels (and
# says how many it left out); aggregates over every row stand for the rest
# (inference/summaries.py), so a batch's line stays near 1 KB.
PREDICTION_LOG_MAX_ROWS = 10


def echo(text: object, limit: int = ECHO_MAX_CHARS) -> str:
    """``text`` quoted as ``repr`` does, cut after ``limit`` characters with a count of the rest."""
    raw = text if isinstance(text, str) else str(text)
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}... ({len(raw) - limit} more characters)"


def clip(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """``text`` cut after ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def json_size(value: object) -> int:
    """Bytes of ``value`` as JSON (ASCII-escaped, as json.dumps writes it by default)."""
    return len(json.dumps(value, default=str, separators=(",", ":")))


def capped(items: Sequence[_Item], *, max_items: int, max_bytes: int) -> tuple[list[_Item], int]:
    """The first items that fit both caps, and how many were left out."""
    kept: list[_Item] = []
    size = 0
    for item in items[:max_items]:
        item_size = json_size(item) + 1
        if size + item_size > max_bytes:
            break
        kept.append(item)
        size += item_size
    return kept, len(items) - len(kept)

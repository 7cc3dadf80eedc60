"""Lines written together: one flush, and still one JSON object per line, each bounded."""

from __future__ import annotations

import json

import pytest

from inference import logs
from inference.limits import LOG_LINE_MAX_BYTES


class Stream:
    def __init__(self) -> None:
        self.text = ""
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.text += text
        self.writes += 1
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def test_records_written_together_are_one_write_of_separate_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = Stream()
    monkeypatch.setattr("sys.stdout", stream)
    huge = {"message": "x", "blob": "y" * (LOG_LINE_MAX_BYTES * 2)}
    logs.write_lines([logs.entry("INFO", "prediction", rows=1), {"_aws": {}}, huge])
    assert (stream.writes, stream.flushes) == (1, 1)
    lines = stream.text.splitlines()
    assert [json.loads(line).get("message") for line in lines] == ["prediction", None, "x"]
    assert stream.text.endswith("\n")
    assert all(len(line) < LOG_LINE_MAX_BYTES for line in lines)
    assert json.loads(lines[2])["log_truncated_from_bytes"] > LOG_LINE_MAX_BYTES

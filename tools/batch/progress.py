"""A one-line progress bar on stderr: done/total, rate, elapsed."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    def __init__(self, total: int, unit: str = "rows", out: TextIO | None = None) -> None:
        self.total, self.unit, self.out = total, unit, out or sys.stderr
        self.started = time.perf_counter()
        self.done = 0

    def update(self, done: int, extra: str = "") -> None:
        self.done = done
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        share = done / self.total if self.total else 1.0
        filled = int(WIDTH * min(share, 1.0))
        bar = "#" * filled + "-" * (WIDTH - filled)
        self.out.write(
            f"\r[{bar}] {done:,}/{self.total:,} {self.unit} {done / elapsed:,.0f} {self.unit}/s"
            f"{'  ' + extra if extra else ''}"
        )
        self.out.flush()

    def finish(self) -> float:
        elapsed = time.perf_counter() - self.started
        self.out.write("\n")
        self.out.flush()
        return elapsed

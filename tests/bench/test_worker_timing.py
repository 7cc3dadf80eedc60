"""The benchmark worker's two clocks: wall-clock latency, and the CPU time of the work."""

from __future__ import annotations

import time

from benchmarks.report import metric
from benchmarks.worker import timed_with_cpu


def test_waiting_counts_as_latency_but_not_as_cpu_time() -> None:
    wall, cpu = timed_with_cpu(lambda: time.sleep(0.005), 3)
    assert len(wall) == len(cpu) == 3
    assert min(wall) >= 5.0
    assert max(cpu) < 2.0


def test_busy_work_counts_in_both() -> None:
    def spin() -> None:
        end = time.thread_time() + 0.003
        while time.thread_time() < end:
            pass

    wall, cpu = timed_with_cpu(spin, 3)
    assert min(cpu) >= 3.0
    assert min(wall) >= min(cpu) - 0.5


def test_a_run_recorded_without_cpu_figures_reads_as_not_available() -> None:
    assert metric({"warm": {}}, "warm_cpu:1000:p50_ms") is None

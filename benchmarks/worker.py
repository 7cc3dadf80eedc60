"""One fresh process = one new execution environment. Run by benchmarks/run.py.

    python -m benchmarks.worker <handler module> <request file> <output file>

Times everything a new environment does (imports, model load, first request), then
warm latency through the whole handler, the model's own ``predict_proba`` alone, the bytes
the handler writes to its log per request, and the predictions for the parity check. Every
latency sample is returned, so that run.py can pool rounds run at different times.
"""

import time

STARTED = time.perf_counter()  # before any other import: imports are part of a cold start

import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402


class Context:
    function_name = "bench"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench:production"
    memory_limit_in_mb = 1769
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


def url_event(body: Any) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {
                "method": "POST",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def peak_rss_mb() -> float:
    # VmHWM belongs to this program's memory map; ru_maxrss would also count the parent's
    # memory at fork time, before exec.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class CountingStream:
    """Stands in for stdout: counts what the handler would send to CloudWatch Logs."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)

    def flush(self) -> None:
        pass


def timed(call: Callable[[], Any], iterations: int) -> list[float]:
    return timed_with_cpu(call, iterations)[0]


def timed_with_cpu(call: Callable[[], Any], iterations: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU time (this thread's) of each call, in milliseconds.

    On a machine that other work loads, a process waits for a core a large share of the
    wall-clock time (measured: a 1,000-record request at 3.2 ms of CPU took 3.2 ms in one
    process and 7 ms in the next); its CPU time is the work itself. The wall-clock bracket
    sits inside the CPU one, so that reading the CPU clock is not counted as latency.
    """
    for _ in range(min(20, iterations)):
        call()
    latencies, cpu = [], []
    for _ in range(iterations):
        began_cpu = time.thread_time()
        began = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - began) * 1000)
        cpu.append((time.thread_time() - began_cpu) * 1000)
    return latencies, cpu


def model_predict(module: Any) -> Callable[[Any], Any]:
    """The loaded model's own prediction: ours (the runtime's ``outputs``) kept in the
    handler's state, the baselines' scikit-learn ``predict_proba`` in a module global."""
    if hasattr(module, "current_state"):
        return module.current_state().loaded.model.outputs  # type: ignore[no-any-return]
    return module.model.predict_proba  # type: ignore[no-any-return]


def main() -> None:
    module_name, request_path, output_path = sys.argv[1:4]
    with open(request_path) as handle:
        plan = json.load(handle)
    module = importlib.import_module(module_name)
    imported = time.perf_counter()
    context = Context()
    single = url_event(plan["single"])
    response = module.handler(single, context)
    first = time.perf_counter()
    result: dict[str, Any] = {
        "cold_ms": (first - STARTED) * 1000,
        "import_ms": (imported - STARTED) * 1000,
        "first_request_ms": (first - imported) * 1000,
        "first_status": response["statusCode"],
        "warm": {},
    }
    events = {
        size: url_event({"instances": plan["rows"][: int(size)]}) if size != "1" else single
        for size in plan.get("warm", {})
    }
    result["warm_cpu"] = {}
    for size, iterations in plan.get("warm", {}).items():
        event = events[size]
        result["warm"][size], result["warm_cpu"][size] = timed_with_cpu(
            functools.partial(module.handler, event, context), iterations
        )
    if plan.get("model_only"):
        import numpy as np

        predict = model_predict(module)
        X = np.asarray(plan["model_rows"], dtype=np.float64)
        result["model_only"] = {
            size: timed(functools.partial(predict, X[: int(size)]), iterations)
            for size, iterations in plan["model_only"].items()
        }
    if plan.get("log_bytes"):
        result["log_bytes"] = {}
        real_stdout = sys.stdout
        for size, event in events.items():
            counter = CountingStream()
            sys.stdout = counter
            try:
                for _ in range(5):
                    module.handler(event, context)
            finally:
                sys.stdout = real_stdout
            result["log_bytes"][size] = counter.bytes / 5
    if plan.get("parity_rows"):
        probabilities: list[float] = []
        rows = plan["parity_rows"]
        for start in range(0, len(rows), 1000):
            answer = module.handler(url_event({"instances": rows[start : start + 1000]}), context)
            body = json.loads(answer["body"])
            probabilities += [p["probability"] for p in body["predictions"]]
        result["parity_probabilities"] = probabilities
    result["peak_rss_mb"] = peak_rss_mb()
    with open(output_path, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()

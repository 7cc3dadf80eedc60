"""A Lambda Runtime API emulator on loopback, for the real runtime interface client.

It implements the endpoints AWS documents in "Using the Lambda runtime API for custom
runtimes" (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), API version
``2018-06-01``:

* ``GET  /2018-06-01/runtime/invocation/next``: blocks until an event is queued, then
  answers it with the headers ``Lambda-Runtime-Aws-Request-Id``,
  ``Lambda-Runtime-Deadline-Ms``, ``Lambda-Runtime-Invoked-Function-Arn`` and
  ``Lambda-Runtime-Trace-Id``;
* ``POST /2018-06-01/runtime/invocation/{id}/response``: the handler's result;
* ``POST /2018-06-01/runtime/invocation/{id}/error``: the handler raised;
* ``POST /2018-06-01/runtime/init/error``: the function could not initialise (the
  handler module did not import, or its module scope raised).

Each answer is ``202 Accepted`` as AWS documents. What it does not do: enforce the
deadline or freeze the process between invocations (Lambda's sandbox does that, not the
API), response streaming, or the Extensions and Telemetry APIs.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.lambda_runtime.loopback import JsonAnswers, LoopbackServer

PREFIX = "/2018-06-01/runtime"
_RESULT = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")


@dataclass(frozen=True)
class Outcome:
    """What the runtime posted back: ``response``, ``error`` or ``init_error``."""

    kind: str
    body: bytes
    headers: dict[str, str]
    request_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class RuntimeAPI(LoopbackServer):
    """One execution environment's Runtime API. ``invoke`` queues an event and waits."""

    def __init__(self, function_arn: str, timeout_s: int) -> None:
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self._queue: queue.Queue[_Invocation] = queue.Queue()
        self._pending: dict[str, _Invocation] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.init_error: Outcome | None = None
        self._init_failed = threading.Event()
        self.next_calls = 0
        super().__init__(self._handler_class())

    @property
    def address(self) -> str:
        return self.host_port

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        super().__exit__(*exc)

    def invoke(
        self,
        event: Any,
        *,
        wait_s: float = 60.0,
        alive: Any = None,
        invoked_arn: str | None = None,
    ) -> Outcome:
        """Queue ``event``; return what the runtime posted (or its init error).

        ``invoked_arn`` is the ARN the caller named (Lambda passes it on, with its
        qualifier, as ``Lambda-Runtime-Invoked-Function-Arn``); by default the function's.

        ``alive`` (a callable) is polled: a runtime that exited without answering fails
        at once instead of after ``wait_s``.
        """
        invocation = _Invocation(
            request_id=str(uuid.uuid4()),
            payload=json.dumps(event).encode(),
            deadline_ms=int(time.time() * 1000) + self.timeout_s * 1000,
            function_arn=invoked_arn or self.function_arn,
        )
        with self._lock:
            self._pending[invocation.request_id] = invocation
        self._queue.put(invocation)
        end = time.monotonic() + wait_s
        while not invocation.done.wait(0.05):
            if self.init_error is not None:
                return self.init_error
            if alive is not None and not alive():
                raise RuntimeError("the runtime exited without answering the invocation")
            if time.monotonic() > end:
                raise TimeoutError(f"no answer to invocation {invocation.request_id}")
        assert invocation.outcome is not None
        return invocation.outcome

    def wait_init_error(self, wait_s: float) -> Outcome | None:
        self._init_failed.wait(wait_s)
        return self.init_error

    def _next(self) -> _Invocation | None:
        while not self._closed.is_set():
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _finish(self, request_id: str, outcome: Outcome) -> bool:
        with self._lock:
            invocation = self._pending.pop(request_id, None)
        if invocation is None:
            return False
        invocation.outcome = outcome
        invocation.done.set()
        return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(JsonAnswers, BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"{}", **headers: str) -> None:
                self.send_json(status, body, {k.replace("_", "-"): v for k, v in headers.items()})

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._answer(404, b'{"errorType":"NotFound"}')
                    return
                api.next_calls += 1
                invocation = api._next()
                if invocation is None:
                    self._answer(500, b'{"errorType":"ShuttingDown"}')
                    return
                self._answer(
                    200,
                    invocation.payload,
                    Lambda_Runtime_Aws_Request_Id=invocation.request_id,
                    Lambda_Runtime_Deadline_Ms=str(invocation.deadline_ms),
                    Lambda_Runtime_Invoked_Function_Arn=invocation.function_arn,
                    Lambda_Runtime_Trace_Id=("Root=1-00000000-000000000000000000000000;Sampled=0"),
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path == f"{PREFIX}/init/error":
                    api.init_error = Outcome("init_error", body, headers)
                    api._init_failed.set()
                    self._answer(202, b'{"status":"OK"}')
                    return
                match = _RESULT.match(self.path)
                if match is None:
                    self._answer(404, b'{"errorType":"NotFound"}')
                    return
                request_id, kind = match.groups()
                if api._finish(request_id, Outcome(kind, body, headers, request_id)):
                    self._answer(202, b'{"status":"OK"}')
                else:
                    self._answer(400, b'{"errorType":"InvalidRequestID"}')

        return Handler

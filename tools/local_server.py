"""The local HTTP server shaped like a Function URL: each HTTP request becomes a Function
URL (payload 2.0) event for the handler, and its answer becomes the HTTP response.

The HTTP side is waitress (pinned in requirements-dev.txt), not a hand-written
``http.server`` handler: it is pure Python (no C extension to build), maintained, and
does what a server facing a hostile client must: it decodes chunked bodies itself (a
chunked body is one request body, never a second request), refuses a Content-Length that
is not ASCII digits, reads requests on one event loop and runs them on a pool bounded by
``threads`` (an idle or stalled connection costs no thread), caps the body
(``max_request_body_size``, the Function URL's 6 MB) and the head
(``max_request_header_size``), closes idle connections (``channel_timeout``) and accepts
at most ``connection_limit`` at once. This module adds a deadline for each whole request
(a body trickled a byte a second is never idle) and answers every refusal, waitress's own
included, in the handler's JSON error envelope. ``tools.serve`` runs it over a trained
model version.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import (
    BadRequest,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    ServerNotImplemented,
)
from waitress.utilities import Error as WaitressError

from inference.errors import ErrorCode
from inference.events import Shape
from inference.limits import ECHO_MAX_CHARS, clip, echo
from inference.responses import error_answer

# A Function URL refuses larger request bodies before invoking the function.
FUNCTION_URL_MAX_BODY = 6 * 1024 * 1024
# A request (head and body) must arrive whole this long after its first byte, or it gets a 408.
READ_TIMEOUT_S = 10.0
# A connection with no request in progress is closed after this long without a byte.
IDLE_TIMEOUT_S = 30
# Worker threads that run complete requests; reading them costs no thread.
THREADS = 4
# Connections open at once; more wait in the listen backlog until one closes.
CONNECTION_LIMIT = 500
# Request line and headers.
MAX_HEADER_BYTES = 64 * 1024
# The methods a Function URL passes to the function; the handler answers 405 to all but POST.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
TEXT_TYPES = re.compile(r"^(text/|application/(json|[a-z0-9.+-]*\+json|xml|x-www-form-urlencoded))")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LocalContext:
    """The parts of Lambda's context object the handler reads."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 0

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def to_event(
    method: str, target: str, headers: dict[str, str], body: bytes, peer: str
) -> dict[str, Any]:
    """An HTTP request as Lambda's Function URL would deliver it (payload format 2.0)."""
    url = urlsplit(target)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    now = datetime.now(UTC)
    content_type = lowered.get("content-type", "")
    is_text = bool(TEXT_TYPES.match(content_type.lower())) or not content_type
    try:
        text_body = body.decode("utf-8") if is_text else None
    except UnicodeDecodeError:
        text_body = None
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": peer,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": text_body is None,
    }
    if body:
        event["body"] = text_body if text_body is not None else base64.b64encode(body).decode()
    return event


class _RequestTimeoutError(WaitressError):
    """A request whose head and body did not arrive within the read deadline."""

    code = 408
    reason = "Request Timeout"


class _TimedParser(HTTPRequestParser):
    """waitress's parser, remembering when the request's first byte arrived."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.time()


@dataclass(frozen=True)
class _Refusal:
    """What the server answers itself: the handler's envelope, with the model's identity."""

    identity: Callable[[], Mapping[str, Any]] | None
    read_timeout_s: float
    max_header_bytes: int

    def answer(self, code: ErrorCode, message: str) -> tuple[int, dict[str, str], bytes]:
        answer = error_answer(
            Shape.HTTP_V2,
            code,
            request_id=str(uuid.uuid4()),
            identity=self.identity() if self.identity else {},
            message=message,
        )
        return int(answer["statusCode"]), dict(answer["headers"]), answer["body"].encode()

    def for_error(self, error: WaitressError) -> tuple[int, dict[str, str], bytes]:
        """waitress's own refusals (framing, sizes, timeouts) in the envelope.

        Their text can carry request bytes (a malformed method or header line): it is
        clipped, never echoed whole.
        """
        text = str(error.body)
        if isinstance(error, _RequestTimeoutError):
            return self.answer(
                ErrorCode.REQUEST_TIMEOUT,
                f"the request did not arrive within {self.read_timeout_s:g} s",
            )
        if isinstance(error, RequestEntityTooLarge):
            return self.answer(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"request body exceeds the Function URL limit of {FUNCTION_URL_MAX_BODY} bytes",
            )
        if isinstance(error, RequestHeaderFieldsTooLarge):
            return self.answer(
                ErrorCode.INVALID_REQUEST,
                f"request line and headers exceed {self.max_header_bytes} bytes",
            )
        if isinstance(error, BadRequest):
            if text == "Content-Length is invalid":
                text = "Content-Length is not a byte count"
            return self.answer(ErrorCode.INVALID_REQUEST, clip(text, ECHO_MAX_CHARS))
        if isinstance(error, ServerNotImplemented):  # a Transfer-Encoding other than chunked
            return self.answer(
                ErrorCode.INVALID_REQUEST,
                "Transfer-Encoding is not supported: send a Content-Length or chunked",
            )
        return self.answer(ErrorCode.INTERNAL_ERROR, "internal error")


def _error_task_class(refusal: _Refusal) -> type[ErrorTask]:
    class EnvelopeErrorTask(ErrorTask):
        """waitress's error task, writing the envelope instead of its text/plain page."""

        def execute(self) -> None:
            request: Any = self.request  # the stubs do not know its ``error``
            status, headers, body = refusal.for_error(request.error)
            self.status = f"{status} {HTTPStatus(status).phrase}"
            self.response_headers = [*self.response_headers, *headers.items()]
            self.set_close_on_finish()
            self.content_length = len(body)
            # A refused HEAD request: the length, no body (no command if the line was bad).
            if getattr(request, "command", None) != "HEAD":
                self.write(body)

    return EnvelopeErrorTask


def _channel_class(refusal: _Refusal) -> type[HTTPChannel]:
    class Channel(HTTPChannel):
        parser_class = _TimedParser
        error_task_class = _error_task_class(refusal)
        timed_out = False

        def received(self, data: bytes) -> bool:
            # Past its deadline a request gets its 408; what trickles in after is dropped.
            return False if self.timed_out else bool(super().received(data))

    return Channel


class _Server(TcpWSGIServer):
    """waitress's TCP server, plus a deadline for each whole request (head and body).

    waitress's ``channel_timeout`` closes connections *idle* that long; a client that
    sends one byte a second is never idle. ``maintenance`` (run every
    ``cleanup_interval``) also answers 408 to a request whose first byte arrived more than
    ``read_timeout_s`` ago and which is still incomplete.
    """

    read_timeout_s: float = READ_TIMEOUT_S

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # type: ignore[arg-type]  # the stubs say int: it is time.time()
        cutoff = now - self.read_timeout_s
        channels: dict[int, Any] = self.active_channels  # type: ignore[assignment]  # stubs
        for channel in list(channels.values()):
            with channel.requests_lock:
                request = channel.request
                if (
                    isinstance(request, _TimedParser)
                    and not request.completed
                    and not channel.requests
                    and not channel.will_close
                    and not channel.close_when_flushed
                    and request.started < cutoff
                ):
                    request.error = _RequestTimeoutError("deadline")
                    request.completed = True
                    channel.timed_out = True
                    channel.request = None
                    channel.requests.append(request)
                    self.add_task(channel)


class LocalServer:
    """The waitress server with the small interface of ``socketserver`` the callers use:
    ``serve_forever`` (blocks), ``shutdown`` (from another thread), ``server_close``,
    ``server_address``."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        raw: Any = server  # attributes the stubs leave out
        self._map: dict[int, Any] = raw._map
        self._stop = threading.Event()
        self._started = threading.Event()
        self._stopped = threading.Event()
        # Held while the loop closes its sockets and while shutdown wakes the loop: waking it
        # after the close would write to a closed (or by then reused) file descriptor.
        self._closing = threading.Lock()
        self._closed = False
        self.server_address: tuple[str, int] = (
            str(raw.effective_host),
            int(raw.effective_port),
        )

    def serve_forever(self) -> None:
        self._started.set()
        try:
            while not self._stop.is_set() and self._map:
                wasyncore.loop(
                    timeout=self._server.adj.asyncore_loop_timeout,
                    use_poll=True,
                    map=self._map,
                    count=1,
                )
        finally:
            self._close()
            self._stopped.set()

    def shutdown(self) -> None:
        with self._closing:
            self._stop.set()
            if self._started.is_set() and not self._closed:
                self._server.pull_trigger()  # wake the loop now, not at its next timeout
        if self._started.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        if not self._started.is_set():
            self._close()

    def _close(self) -> None:
        with self._closing:
            self._closed = True
            self._server.task_dispatcher.shutdown(timeout=5)
            wasyncore.close_all(self._map)


def make_server(
    host: str,
    port: int,
    handler: Handler,
    identity: Callable[[], Mapping[str, Any]] | None = None,
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
    idle_timeout_s: int = IDLE_TIMEOUT_S,
    threads: int = THREADS,
    connection_limit: int = CONNECTION_LIMIT,
) -> LocalServer:
    """Connections in parallel, invocations one at a time, like one Lambda environment.

    waitress reads requests on one event-loop thread and runs complete ones on
    ``threads`` worker threads, so a client that stalls holds only its own connection
    (up to ``connection_limit`` of them), never a thread. A request must arrive whole
    within ``read_timeout_s`` of its first byte; a connection idle for
    ``idle_timeout_s`` is closed. What the server refuses itself gets the handler's error
    envelope, as Function URLs answer before the function runs.
    """
    invoke_lock = threading.Lock()
    refusal = _Refusal(identity, read_timeout_s, MAX_HEADER_BYTES)

    def reply(
        start_response: Callable[..., Any],
        status: int,
        headers: Mapping[str, str],
        data: bytes,
        method: str,
    ) -> list[bytes]:
        pairs = [(name, str(value)) for name, value in headers.items()]
        pairs = [(n, v) for n, v in pairs if n.lower() != "content-length"]
        pairs.append(("Content-Length", str(len(data))))
        start_response(f"{status} {HTTPStatus(status).phrase}", pairs)
        # An answer to HEAD has no body (RFC 9110 9.3.2), only its length: waitress leaves
        # that to the application, and a body here would be read as the next response.
        return [] if method == "HEAD" else [data]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = str(environ["REQUEST_METHOD"])
        if method not in HTTP_METHODS:
            # A Function URL never invokes the function with such a method; the answer
            # is the handler's 405, and the method is cut to a few characters.
            status, headers, data = refusal.answer(
                ErrorCode.METHOD_NOT_ALLOWED, f"method {echo(method)} is not allowed: use POST"
            )
            return reply(start_response, status, headers, data, method)
        # waitress has read (and de-chunked) the whole body, within max_request_body_size.
        body = environ["wsgi.input"].read()
        request_headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                request_headers[key[5:].replace("_", "-").lower()] = value
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value != "":
                request_headers[key.replace("_", "-").lower()] = value
        event = to_event(
            method,
            environ["REQUEST_URI"],
            request_headers,
            body,
            str(environ.get("REMOTE_ADDR", "")),
        )
        context = LocalContext(aws_request_id=event["requestContext"]["requestId"])
        with invoke_lock:
            response = handler(event, context)
        payload = response.get("body", "")
        data = (
            base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        )
        return reply(
            start_response,
            int(response["statusCode"]),
            response.get("headers") or {},
            data,
            method,
        )

    adj = Adjustments(
        host=host,
        port=port,
        threads=threads,
        connection_limit=connection_limit,
        channel_timeout=idle_timeout_s,
        cleanup_interval=1,  # how often the deadlines are checked
        max_request_body_size=FUNCTION_URL_MAX_BODY,
        max_request_header_size=MAX_HEADER_BYTES,
        ident="sklearn-lambda-serving",
        asyncore_use_poll=True,  # select() cannot watch more than 1,024 sockets
        clear_untrusted_proxy_headers=False,  # the handler sees every header, as before
        expose_tracebacks=False,
    )
    server_class = type(
        "Server",
        (_Server,),
        {"channel_class": _channel_class(refusal), "read_timeout_s": read_timeout_s},
    )
    return LocalServer(server_class(app, map={}, adj=adj, sockinfo=adj.listen[0]))

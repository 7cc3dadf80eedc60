"""`tools.serve` against hostile HTTP clients, over raw sockets on loopback.

Each test here failed against the hand-written `http.server` version (issue 23, finding 5):
a Unicode-digit Content-Length dropped the connection, a chunked body was parsed as a
second request, unknown methods were echoed in an HTML 501, a trickling body held its
connection (and a thread) for ever, and every idle connection cost a thread.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.handler.conftest import valid_record
from tools import local_server, serve

pytestmark = pytest.mark.integration

# The per-request deadline the fixture's server uses: short, so a trickle ends quickly.
READ_TIMEOUT_S = 2.0
# An answer the server writes itself stays small whatever the request carried.
SMALL_ANSWER_BYTES = 2048


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, fresh_environment: Any) -> None:
    for name in (*serve.model_env("churn", "v1", "sklearn"), "MODEL_BUCKET", "MODEL_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(isolated_env: None) -> Iterator[tuple[str, int]]:
    module = serve.load_handler(serve.model_env("churn", "v1", "sklearn"))
    local = local_server.make_server(
        "127.0.0.1", 0, module.handler, module.identity, read_timeout_s=READ_TIMEOUT_S
    )
    thread = threading.Thread(target=local.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", int(local.server_address[1])
    local.shutdown()
    local.server_close()
    thread.join(timeout=30)
    assert not thread.is_alive()


Response = tuple[int, dict[str, str], bytes]


def parse_responses(data: bytes) -> list[Response]:
    """Every response in ``data`` (what one connection sent until the server closed it)."""
    responses: list[Response] = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"an incomplete response head: {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append((int(status_line.split(" ")[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def exchange(address: tuple[str, int], raw: bytes, *, timeout: float = 15.0) -> tuple[bytes, bool]:
    """Send ``raw``, then read until the server closes the connection or ``timeout`` passes.

    Returns what arrived and whether the server closed the connection (cleanly or not).
    """
    deadline = time.monotonic() + timeout

    def time_left() -> Iterator[float]:
        while time.monotonic() < deadline:
            yield max(0.01, deadline - time.monotonic())

    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(raw)
        return receive(sock, time_left())


def receive(sock: socket.socket, timeouts: Iterable[float]) -> tuple[bytes, bool]:
    """Read from ``sock``, one read per timeout in ``timeouts``, until the server closes the
    connection, a read times out or ``timeouts`` ends.

    Returns what arrived and whether the server closed the connection (cleanly or not).
    """
    received = b""
    for timeout in timeouts:
        sock.settimeout(timeout)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def envelope(data: bytes, code: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(data)
    assert body["error"]["code"] == code, body
    assert (body["model_name"], body["model_version"]) == ("churn", "v1")
    assert body["request_id"]
    return body


def post(address: tuple[str, int], payload: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{address[0]}:{address[1]}/",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, json.loads(response.read())


def without_request_id(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "request_id"}


@pytest.mark.parametrize("length", ["\u00b2", "1\u00b9", "abc", "-1", "+5", "1e3", "5 5", ""])
def test_a_bad_content_length_is_a_400_then_close_and_the_server_carries_on(
    server: tuple[str, int], length: str
) -> None:
    # "²" (the latin-1 byte 0xB2, as headers are decoded) passes str.isdigit(); the old
    # server then failed in int() and dropped the connection without an answer.
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}"
    data, closed = exchange(server, head.encode("latin-1") + b"\r\n\r\n{}")
    assert closed, "the server closes a connection whose framing it cannot trust"
    [(status, headers, body)] = parse_responses(data)
    assert status == 400
    assert headers["content-type"] == "application/json"
    answer = envelope(body, "invalid_request")
    assert "Content-Length" in answer["error"]["message"]
    assert post(server, valid_record())[0] == 200


def chunked(data: bytes, size: int) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def test_a_chunked_body_is_one_request_body_not_a_second_request(
    server: tuple[str, int],
) -> None:
    record = json.dumps(valid_record()).encode()
    with_length = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(record), record)
    )
    with_chunks = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked(record, 7)
    )
    # The chunked request, then a request with a length, on one connection: two answers,
    # each the prediction, and nothing parsed out of the chunks.
    data, closed = exchange(server, with_chunks + with_length)
    assert closed
    responses = parse_responses(data)
    assert [status for status, _, _ in responses] == [200, 200], responses
    first, second = (json.loads(body) for _, _, body in responses)
    assert "prediction" in first
    assert without_request_id(first) == without_request_id(second)


def test_a_chunked_body_carrying_a_request_is_not_smuggled(server: tuple[str, int]) -> None:
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked(smuggled, 11)
    )
    data, closed = exchange(server, raw)
    assert closed
    [(status, _, body)] = parse_responses(data)
    assert status == 400
    assert "not valid JSON" in envelope(body, "invalid_request")["error"]["message"]


@pytest.mark.parametrize(
    "method", ["FOO", "PROPFIND", "A" * 65_000, "a" * 65_000, "get"], ids=lambda m: m[:8]
)
def test_an_unknown_method_gets_a_small_envelope_that_does_not_echo_it(
    server: tuple[str, int], method: str
) -> None:
    raw = f"{method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    data, closed = exchange(server, raw)
    assert closed
    assert len(data) < SMALL_ANSWER_BYTES, f"{len(data)} bytes: {data[:300]!r}"
    [(status, headers, body)] = parse_responses(data)
    assert headers["content-type"] == "application/json"
    if method.isupper():
        assert status == 405 and headers["allow"] == "POST"
        message = envelope(body, "method_not_allowed")["error"]["message"]
    else:  # not a method at all (methods are case-sensitive and upper-case)
        assert status == 400
        message = envelope(body, "invalid_request")["error"]["message"]
    assert method[:100] not in message or len(method) < 100


def test_a_trickling_body_is_cut_off_at_the_read_deadline(server: tuple[str, int]) -> None:
    # One byte of a 100-byte body about every second: each read arrives well within any
    # per-read timeout, so only a deadline for the whole request ends it.
    received = b""
    closed = False
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        for _ in range(15):  # at most 15 bytes: about 15 s
            try:
                sock.sendall(b"{")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(1.0)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
        if received and not closed:
            rest, closed = exchange_rest(sock)
            received += rest
    assert closed, "the server still holds a connection that trickled for 15 s"
    [(status, _, body)] = parse_responses(received)
    assert status == 408
    message = envelope(body, "request_timeout")["error"]["message"]
    assert message == f"the request did not arrive within {READ_TIMEOUT_S:g} s"


def exchange_rest(sock: socket.socket) -> tuple[bytes, bool]:
    """What else arrives on ``sock``: up to 100 reads of at most 10 s each."""
    return receive(sock, itertools.repeat(10.0, 100))


def test_idle_connections_cost_no_thread_and_do_not_block_a_request(
    server: tuple[str, int],
) -> None:
    assert post(server, valid_record())[0] == 200  # the pool has started
    before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(server, timeout=10))
        # Half of them have started a request and stopped.
        for sock in idle[::2]:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        status, answer = post(server, valid_record())
        assert status == 200 and "prediction" in answer
        during = threading.active_count()
    finally:
        for sock in idle:
            sock.close()
    # The old server ran one thread per connection: 200 more.
    assert during <= before + 2, (before, during)
    assert during <= local_server.THREADS + 8, during


def test_the_handler_receives_the_same_function_url_event_as_before(isolated_env: None) -> None:
    # Passed against the old server too: the event is the contract, not the HTTP library.
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}

    local = local_server.make_server("127.0.0.1", 0, handler)
    thread = threading.Thread(target=local.serve_forever, daemon=True)
    thread.start()
    try:
        address = ("127.0.0.1", int(local.server_address[1]))
        text = b'{"a": 1}'
        binary = b"\x89PNG\x00\xff"
        for content_type, body in (("application/json", text), ("image/png", binary)):
            raw = (
                b"POST /p/x?q=1&r=%%2F HTTP/1.1\r\nHost: h.example\r\nUser-Agent: ua/1\r\n"
                b"X-Custom: v\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (content_type.encode(), len(body), body)
            )
            data, _ = exchange(address, raw)
            assert parse_responses(data)[0][0] == 200
    finally:
        local.shutdown()
        local.server_close()
        thread.join(timeout=30)
    assert len(events) == 2
    for event, content_type, length in zip(
        events, ("application/json", "image/png"), (len(text), len(binary)), strict=True
    ):
        assert set(event) == {
            "version", "routeKey", "rawPath", "rawQueryString", "headers",
            "requestContext", "isBase64Encoded", "body",
        }  # fmt: skip
        assert (event["version"], event["routeKey"]) == ("2.0", "$default")
        assert (event["rawPath"], event["rawQueryString"]) == ("/p/x", "q=1&r=%2F")
        assert event["headers"] == {
            "host": "h.example",
            "user-agent": "ua/1",
            "x-custom": "v",
            "content-type": content_type,
            "content-length": str(length),
            "connection": "close",
        }
        context = event["requestContext"]
        assert context["http"] == {
            "method": "POST",
            "path": "/p/x",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "ua/1",
        }
        assert context["domainName"] == "h.example"
    assert (events[0]["isBase64Encoded"], events[0]["body"]) == (False, '{"a": 1}')
    assert events[1]["isBase64Encoded"] is True
    assert base64.b64decode(events[1]["body"]) == binary


@pytest.mark.parametrize(
    ("head", "body", "status", "fragment"),
    [
        # waitress itself: 501 text/plain; here the envelope's 400
        ("Transfer-Encoding: gzip", b"", 400, "Transfer-Encoding is not supported"),
        ("Transfer-Encoding: chunked", b"zz\r\n{}\r\n0\r\n\r\n", 400, "chunk"),
        # waitress itself: 431 text/plain
        ("X-Big: " + "b" * 70_000, b"", 400, "exceed 65536 bytes"),
        ("Bad Header Line", b"", 400, "Invalid header"),
        (
            f"Content-Length: {local_server.FUNCTION_URL_MAX_BODY + 1}",
            b"",
            413,
            "Function URL limit",
        ),
    ],
    ids=["te-gzip", "bad-chunk", "big-head", "bad-header", "too-large"],
)
def test_what_waitress_refuses_itself_is_answered_in_the_envelope(
    server: tuple[str, int], head: str, body: bytes, status: int, fragment: str
) -> None:
    raw = f"POST / HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n".encode("latin-1") + body
    data, closed = exchange(server, raw)
    assert closed
    assert len(data) < SMALL_ANSWER_BYTES, data[:300]
    [(answered, headers, answer)] = parse_responses(data)
    assert (answered, headers["content-type"]) == (status, "application/json")
    code = "payload_too_large" if status == 413 else "invalid_request"
    assert fragment in envelope(answer, code)["error"]["message"]


def test_the_command_line_server_keeps_its_startup_line_and_a_bounded_thread_count(
    tmp_path: Any,
) -> None:
    # The command `make serve` runs, in its own process: the docs and the demo read the
    # port from this line; /proc/<pid>/task counts the process's threads.
    command = [
        sys.executable, "-m", "tools.serve", "--port", "0", "--version", "v1",
        "--runtime", "sklearn", "--threads", "3", "--read-timeout", "2", "--idle-timeout", "60",
    ]  # fmt: skip
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=serve.ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    try:
        line = ""
        for _ in range(600):  # up to 60 s for the model to load
            text = stderr_path.read_text()
            match = re.search(r"serving churn v1 \(sklearn\) at http://127\.0\.0\.1:(\d+)/", text)
            if match:
                line = match.group(0)
                break
            assert process.poll() is None, text
            time.sleep(0.1)
        assert line, stderr_path.read_text()
        address = ("127.0.0.1", int(line.rsplit(":", 1)[1].rstrip("/")))
        assert post(address, valid_record())[0] == 200
        tasks = Path(f"/proc/{process.pid}/task")
        before = len(list(tasks.iterdir()))
        idle = [socket.create_connection(address, timeout=10) for _ in range(200)]
        try:
            assert post(address, valid_record())[0] == 200
            during = len(list(tasks.iterdir()))
        finally:
            for sock in idle:
                sock.close()
        assert during <= before, (before, during)
        # The event loop (main thread), 3 workers, and the BLAS pool numpy starts (a few):
        # 6 on a 2-core machine. The old server had one more thread per connection.
        assert during <= 3 + 1 + 8, during
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_chunked_body_over_the_limit_is_a_413_envelope(server: tuple[str, int]) -> None:
    # Chunked, the size is known only while reading: waitress counts and stops at the limit.
    size = local_server.FUNCTION_URL_MAX_BODY + 1
    piece = b"x" * 65536
    received = b""
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % size
        )
        try:
            for _ in range(size // len(piece) + 1):
                sock.sendall(piece)
        except OSError:
            pass  # the server answered and closed while the rest was on its way
        rest, closed = exchange_rest(sock)
        received += rest
    assert closed
    [(status, _, body)] = parse_responses(received)
    assert status == 413
    assert "Function URL limit" in envelope(body, "payload_too_large")["error"]["message"]


def test_shutdown_after_the_loop_closed_touches_no_closed_descriptor(isolated_env: None) -> None:
    """The loop may close its sockets (and its wake-up pipe) before shutdown runs: waking it
    then would write to a closed, or reused, file descriptor."""
    module = serve.load_handler(serve.model_env("churn", "v1", "sklearn"))
    local = local_server.make_server("127.0.0.1", 0, module.handler, module.identity)
    thread = threading.Thread(target=local.serve_forever, daemon=True)
    thread.start()
    local._stop.set()  # the loop ends by itself, as it does when its map empties
    thread.join(timeout=30)
    assert not thread.is_alive()
    local.shutdown()  # raised OSError (EBADF) when it pulled the closed trigger

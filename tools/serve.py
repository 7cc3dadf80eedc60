"""`make serve`: the real Lambda handler behind a local HTTP server.

Each HTTP request becomes a Function URL (payload 2.0) event, the handler answers, and the
answer becomes the HTTP response, so what works here works behind a Function URL.

python -m tools.serve                           # churn, newest passed version, port 8080
python -m tools.serve --version v1 --port 9000
python -m tools.serve --model wine              # any model under model_artifacts/, any task
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "model_artifacts"
LAMBDA_SRC = ROOT / "lambda_src"
# The image puts the handler package at the top of sys.path; so does the local server.
if str(LAMBDA_SRC) not in sys.path:
    sys.path.insert(0, str(LAMBDA_SRC))

from inference.errors import ErrorCode  # noqa: E402
from inference.events import Shape  # noqa: E402
from inference.limits import echo  # noqa: E402
from inference.responses import error_answer  # noqa: E402
from inference.runtimes import NAMES as RUNTIMES  # noqa: E402
from training import artifacts, gate  # noqa: E402

# A Function URL refuses larger request bodies before invoking the function.
FUNCTION_URL_MAX_BODY = 6 * 1024 * 1024
# A client gets this long for each read of its request before its connection is closed.
READ_TIMEOUT_S = 10.0
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


def latest_version(model: str) -> str:
    """The newest version that passed the quality gate at training (see training/gate.py):
    one written with an accepted regression, or a refusal, is served only when named."""
    versions = artifacts.versions(ARTIFACTS / model)
    if not versions:
        raise SystemExit(f"no versions of {model!r} under {ARTIFACTS}: run `make models`")
    for version in reversed(versions):
        if gate.passed(artifacts.load_manifest(ARTIFACTS / model / version)):
            return version
    raise SystemExit(
        f"no version of {model!r} passed the quality gate ({', '.join(versions)}): "
        "name one with --version"
    )


def default_runtime(model: str, version: str) -> tuple[str, str | None]:
    """``compiled`` when the version has that artifact, else ``sklearn``, with the reason the
    manifest gives for the missing compiled form (a multiclass model, an estimator the
    compiler does not cover, ...)."""
    manifest = artifacts.load_manifest(ARTIFACTS / model / version)
    if "compiled" in manifest.get("artifacts", {}):
        return "compiled", None
    compiled = manifest.get("compiled_runtime")
    reason = compiled.get("reason") if isinstance(compiled, dict) else None
    return "sklearn", f"{model} {version} has no compiled artifact" + (
        f" ({reason})" if reason else ""
    )


def model_env(model: str, version: str, runtime: str) -> dict[str, str]:
    """The environment the CDK stack would set, pointing at ``model_artifacts/`` instead of S3."""
    version_dir = ARTIFACTS / model / version
    manifest_path = version_dir / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"{manifest_path} does not exist: is {model} {version} trained?")
    artifacts = json.loads(manifest_path.read_text())["artifacts"]
    if runtime not in artifacts:
        raise SystemExit(
            f"{model} {version} has no {runtime!r} artifact (it has: {', '.join(artifacts)})"
        )
    return {
        "MODEL_NAME": model,
        "MODEL_VERSION": version,
        "MODEL_RUNTIME": runtime,
        "MODEL_PATH": str(version_dir / artifacts[runtime]["file"]),
        "MODEL_SHA256": artifacts[runtime]["sha256"],
    }


def load_handler(env: dict[str, str]) -> ModuleType:
    """Import the handler the way Lambda does: environment first, then module-level init."""
    already_imported = "inference.handler" in sys.modules
    for name in ("MODEL_BUCKET", "MODEL_KEY"):
        os.environ.pop(name, None)
    os.environ.update(env)
    if str(LAMBDA_SRC) not in sys.path:
        sys.path.insert(0, str(LAMBDA_SRC))
    from inference import handler as module

    if already_imported:
        # Imported earlier (tests, the demo): init again, as a new environment would.
        module.configure(os.environ)
    return module


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


def make_server(
    host: str,
    port: int,
    handler: Handler,
    identity: Callable[[], Mapping[str, Any]] | None = None,
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> ThreadingHTTPServer:
    """Connections in parallel, invocations one at a time, like one Lambda environment.

    Each connection has its own thread and read timeout, so a client that stalls (or
    sends a body shorter than its Content-Length) holds only its own connection. What the
    server refuses itself gets the handler's error envelope, as Function URLs answer
    before the function runs.
    """
    invoke_lock = threading.Lock()

    class FunctionUrlHandler(BaseHTTPRequestHandler):
        server_version = "sklearn-lambda-serving"
        protocol_version = "HTTP/1.1"
        # The socket timeout of every read (headers and body) on this connection.
        timeout = read_timeout_s

        def _invoke(self) -> None:
            raw_length = self.headers.get("content-length")
            length = 0
            if raw_length is not None:
                if not raw_length.strip().isdigit():
                    self._refuse(
                        ErrorCode.INVALID_REQUEST,
                        f"Content-Length {echo(raw_length)} is not a byte count",
                    )
                    return
                length = int(raw_length)
            if length > FUNCTION_URL_MAX_BODY:
                self._refuse(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"request body of {length} bytes exceeds the Function URL limit of "
                    f"{FUNCTION_URL_MAX_BODY} bytes",
                )
                return
            try:
                body = self.rfile.read(length) if length else b""
            except TimeoutError:
                self._refuse(
                    ErrorCode.REQUEST_TIMEOUT,
                    f"the request body did not arrive within {read_timeout_s:g} s",
                )
                return
            if len(body) < length:
                self.close_connection = True
                return  # the client hung up mid-body: nobody is left to answer
            event = to_event(
                self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
            )
            context = LocalContext(aws_request_id=event["requestContext"]["requestId"])
            with invoke_lock:
                response = handler(event, context)
            payload = response.get("body", "")
            data = (
                base64.b64decode(payload)
                if response.get("isBase64Encoded")
                else str(payload).encode()
            )
            self._reply(int(response["statusCode"]), response.get("headers") or {}, data)

        def _refuse(self, code: ErrorCode, message: str) -> None:
            answer = error_answer(
                Shape.HTTP_V2,
                code,
                request_id=str(uuid.uuid4()),
                identity=identity() if identity else {},
                message=message,
            )
            # The body may not have been read: this connection cannot carry another request.
            self.close_connection = True
            self._reply(answer["statusCode"], answer["headers"], answer["body"].encode())

        def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                if self.close_connection:
                    self.send_header("connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client went away: nothing to tell it

        # Every method reaches the handler, which answers 405 to all but POST, like Lambda.
        do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _invoke  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            # The handler already logs every request as JSON; keep stderr for problems.
            pass

    server = ThreadingHTTPServer((host, port), FunctionUrlHandler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--model", default="churn")
    parser.add_argument(
        "--version",
        help="model version, e.g. v1 (default: the newest that passed the quality gate)",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="default: compiled when the version has it, else sklearn",
    )
    args = parser.parse_args(argv)
    version = args.version or latest_version(args.model)
    if args.runtime is None:
        if not (ARTIFACTS / args.model / version / "manifest.json").is_file():
            raise SystemExit(f"no {args.model} {version} under {ARTIFACTS}: is it trained?")
        args.runtime, why = default_runtime(args.model, version)
        if why:
            print(f"{why}: serving the sklearn runtime", file=sys.stderr, flush=True)
    started = time.perf_counter()
    module = load_handler(model_env(args.model, version, args.runtime))
    state = module.current_state()
    if isinstance(state, module.Unavailable):
        raise SystemExit(f"cannot serve {args.model} {version}: {state.reason}")
    try:
        server = make_server(args.host, args.port, module.handler, module.identity)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"error: port {args.port} on {args.host} is already in use: stop what listens "
                "there, or pick another port with --port (0 picks a free one)"
            ) from None
        raise SystemExit(f"error: cannot listen on {args.host}:{args.port}: {exc}") from None
    host, port = server.server_address[:2]
    print(
        f"serving {args.model} {version} ({args.runtime}) at http://{host!s}:{port}/ "
        f"(model loaded in {time.perf_counter() - started:.2f}s); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""`make serve`: the real Lambda handler behind a local HTTP server.

Each HTTP request becomes a Function URL (payload 2.0) event, the handler answers, and the
answer becomes the HTTP response, so what works here works behind a Function URL.

python -m tools.serve                           # churn, newest version, port 8080
python -m tools.serve --version v1 --port 9000
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "model_artifacts"
LAMBDA_SRC = ROOT / "lambda_src"
# A Function URL refuses larger request bodies before invoking the function.
FUNCTION_URL_MAX_BODY = 6 * 1024 * 1024
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
    versions = [p.name for p in (ARTIFACTS / model).glob("v*") if p.name[1:].isdigit()]
    if not versions:
        raise SystemExit(f"no versions of {model!r} under {ARTIFACTS}: run `make models`")
    return max(versions, key=lambda name: int(name[1:]))


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


def make_server(host: str, port: int, handler: Handler) -> HTTPServer:
    """One request at a time, like one Lambda execution environment."""

    class FunctionUrlHandler(BaseHTTPRequestHandler):
        server_version = "sklearn-lambda-serving"

        def _invoke(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > FUNCTION_URL_MAX_BODY:
                self._reply(413, {"content-type": "application/json"}, b'{"message":"too large"}')
                return
            body = self.rfile.read(length) if length else b""
            event = to_event(
                self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
            )
            context = LocalContext(aws_request_id=event["requestContext"]["requestId"])
            response = handler(event, context)
            payload = response.get("body", "")
            data = (
                base64.b64decode(payload)
                if response.get("isBase64Encoded")
                else str(payload).encode()
            )
            self._reply(int(response["statusCode"]), response.get("headers") or {}, data)

        def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        # Every method reaches the handler, which answers 405 to all but POST, like Lambda.
        do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _invoke  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            # The handler already logs every request as JSON; keep stderr for problems.
            pass

    return HTTPServer((host, port), FunctionUrlHandler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--model", default="churn")
    parser.add_argument("--version", help="model version, e.g. v1 (default: the newest)")
    parser.add_argument("--runtime", default="compiled", choices=["sklearn", "compiled"])
    args = parser.parse_args(argv)
    version = args.version or latest_version(args.model)
    started = time.perf_counter()
    module = load_handler(model_env(args.model, version, args.runtime))
    state = module.current_state()
    if isinstance(state, module.Unavailable):
        raise SystemExit(f"cannot serve {args.model} {version}: {state.reason}")
    server = make_server(args.host, args.port, module.handler)
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

"""The Python client in docs/calling.md sends what it signed.

The documented code runs unchanged against an HTTP server on loopback (only its URL is
pointed there), with fixed credentials; the server recomputes the SigV4 signature of the
request it received with botocore, as Lambda would, and answers like the endpoint.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from stacks.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "calling.md"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session")
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>\w+)$"
)


def documented_client() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"expected one Python client in {DOC.name}, found {len(blocks)}"
    return str(blocks[0])


class Endpoint(http.server.BaseHTTPRequestHandler):
    """Checks the signature like the real endpoint; answers 200, or the next queued status."""

    statuses: ClassVar[list[int]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        match = AUTHORIZATION.match(self.headers.get("authorization", ""))
        valid = False
        if match:
            signed = match["signed"].split(";")
            url = f"http://{self.headers['host']}{self.path}"
            request = AWSRequest(
                method="POST",
                url=url,
                data=body,
                headers={h: self.headers[h] for h in signed if h != "host"},
            )
            request.context["timestamp"] = self.headers["x-amz-date"]
            auth = SigV4Auth(CREDENTIALS, match["service"], match["region"])
            canonical = auth.canonical_request(request)
            expected = auth.signature(auth.string_to_sign(request, canonical), request)
            valid = expected == match["sig"]
        self.received.append({"match": match, "valid": valid, "body": body})
        status = self.statuses.pop(0) if self.statuses else 200
        answer = (
            {"predictions": [{"prediction": 1, "probability": 0.73}]}
            if status == 200
            else {"error": {"code": "invalid_input", "message": "bad"}}
        )
        if not valid:
            status, answer = 403, {"message": "The request signature we calculated does not match"}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


@pytest.fixture
def endpoint() -> Iterator[str]:
    Endpoint.statuses, Endpoint.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CREDENTIALS.token)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    namespace: dict[str, Any] = {"__name__": "documented_client"}
    exec(compile(documented_client(), str(DOC), "exec"), namespace)  # noqa: S102
    namespace["URL"] = endpoint
    return namespace


RECORD = {"tenure_months": 3, "monthly_charges": 80.5, "total_charges": 241.5}


def test_the_documented_client_signs_what_it_sends(client: dict[str, Any]) -> None:
    answer = client["predict"]([RECORD])
    (received,) = Endpoint.received
    assert received["valid"], "the signature does not match the request that arrived"
    assert received["match"]["service"] == "lambda"
    assert received["match"]["region"] == client["REGION"]
    assert "x-amz-security-token" in received["match"]["signed"]
    assert json.loads(received["body"]) == {"instances": [RECORD]}
    assert answer == {"predictions": [{"prediction": 1, "probability": 0.73}]}


def test_the_documented_client_returns_an_error_answer(client: dict[str, Any]) -> None:
    Endpoint.statuses.append(400)
    assert client["predict"]([RECORD])["error"]["code"] == "invalid_input"

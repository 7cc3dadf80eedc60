"""`tools.serve`: real HTTP on loopback, through the Function URL event, to the handler."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.handler.conftest import manifest, valid_record
from tools import local_server, serve, serve_demo
from tools.local_server import FUNCTION_URL_MAX_BODY

pytestmark = pytest.mark.integration


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, fresh_environment: Any) -> None:
    # load_handler writes os.environ as Lambda would; monkeypatch puts it back afterwards.
    for name in (*serve.model_env("churn", "v1", "sklearn"), "MODEL_BUCKET", "MODEL_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base_url(isolated_env: None) -> Iterator[str]:
    module = serve.load_handler(serve.model_env("churn", "v1", "sklearn"))
    server = local_server.make_server("127.0.0.1", 0, module.handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def request(
    url: str, body: bytes | None, *, method: str = "POST", content_type: str = "application/json"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": content_type}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, lowered(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, lowered(error.headers), json.loads(error.read())


def lowered(headers: Any) -> dict[str, str]:
    # Header names are case-insensitive; waitress writes them capitalized (Content-Type).
    return {name.lower(): value for name, value in headers.items()}


def test_model_env_comes_from_the_manifest() -> None:
    env = serve.model_env("churn", "v1", "sklearn")
    assert env["MODEL_SHA256"] == manifest("v1")["artifacts"]["sklearn"]["sha256"]
    assert env["MODEL_PATH"].endswith("model_artifacts/churn/v1/model.skops")
    assert (env["MODEL_VERSION"], env["MODEL_RUNTIME"]) == ("v1", "sklearn")


def test_unknown_version_or_runtime_is_a_clear_exit() -> None:
    with pytest.raises(SystemExit, match="v999"):
        serve.model_env("churn", "v999", "sklearn")
    if "compiled" not in manifest("v1")["artifacts"]:
        with pytest.raises(SystemExit, match="no 'compiled' artifact"):
            serve.model_env("churn", "v1", "compiled")


def test_latest_version_is_numeric_not_lexical() -> None:
    versions = [p.name for p in (serve.ARTIFACTS / "churn").glob("v*")]
    assert serve.latest_version("churn") == max(versions, key=lambda v: int(v[1:]))


def test_http_post_is_answered_by_the_handler(base_url: str) -> None:
    status, headers, body = request(base_url, json.dumps(valid_record()).encode())
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body["model_version"] == "v1"
    assert body["prediction"] in (0, 1)


def test_http_batch(base_url: str) -> None:
    payload = {"instances": [valid_record(), {**valid_record(), "tenure_months": 100}]}
    status, _, body = request(base_url, json.dumps(payload).encode())
    assert status == 200
    assert len(body["predictions"]) == 2


def test_http_errors_keep_their_status(base_url: str) -> None:
    status, _, body = request(base_url, b"{nope")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, _, body = request(base_url, b"a=1", content_type="application/x-www-form-urlencoded")
    assert status == 400 and "content-type" in body["error"]["message"]
    status, headers, _ = request(base_url, None, method="GET")
    assert status == 405 and headers["allow"] == "POST"


def test_binary_bodies_arrive_base64_encoded() -> None:
    event = local_server.to_event(
        "POST", "/p?q=1", {"Content-Type": "image/png"}, b"\x89PNG", "10.0.0.1"
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x89PNG"
    assert (event["rawPath"], event["rawQueryString"]) == ("/p", "q=1")
    assert event["headers"] == {"content-type": "image/png"}
    assert event["requestContext"]["http"]["method"] == "POST"


def test_demo_prints_a_single_and_a_batch_answer(
    isolated_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    single, batch = serve_demo.show_local_serving("churn", "v1")
    assert single["model_version"] == "v1" and "probability" in single
    # The batch's first record is the single one: same answer through either path.
    assert batch["predictions"][0] == {
        "prediction": single["prediction"],
        "probability": single["probability"],
    }
    assert len(batch["predictions"]) == 2
    out = capsys.readouterr().out
    assert out.count("POST http://127.0.0.1:") == 2
    assert "-> 200" in out
    assert '"_aws"' not in out, "handler log lines stay out of the demo's output"


# --- the local server under hostile clients: threaded, bounded reads, one envelope ------


@pytest.fixture
def server(isolated_env: None) -> Iterator[tuple[str, int]]:
    module = serve.load_handler(serve.model_env("churn", "v1", "sklearn"))
    server = local_server.make_server(
        "127.0.0.1", 0, module.handler, module.identity, read_timeout_s=1.0
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def raw_request(address: tuple[str, int], head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers) and ``body`` as given; status and body."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        response = http.client.HTTPResponse(sock, method=head.split(" ", 1)[0])
        response.begin()
        return response.status, response.read()


def assert_envelope(data: bytes, code: str, fragment: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(data)
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]
    assert (body["model_name"], body["model_version"]) == ("churn", "v1")
    assert body["request_id"]
    return body


def test_a_stalled_client_does_not_block_other_requests(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=10) as stalled:
        stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        status, _, body = request(f"http://{server[0]}:{server[1]}/", b'{"a": 1}')
        assert time.monotonic() - started < 0.9, "served while the stalled client waits"
        assert status == 400 and body["error"]["code"] == "invalid_input"
        # Past the read timeout the stalled client gets the envelope too.
        stalled.settimeout(10)
        response = http.client.HTTPResponse(stalled, method="POST")
        response.begin()
        assert response.status == 408
        assert_envelope(response.read(), "request_timeout", "did not arrive within 1 s")


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", ""])
def test_a_content_length_that_is_not_a_byte_count_is_a_400_envelope(
    server: tuple[str, int], length: str
) -> None:
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
    status, data = raw_request(server, head)
    assert status == 400
    assert_envelope(data, "invalid_request", "is not a byte count")


def test_a_body_over_the_limit_is_a_413_envelope_without_reading_it(
    server: tuple[str, int],
) -> None:
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {FUNCTION_URL_MAX_BODY + 1}\r\n"
    status, data = raw_request(server, head)
    assert status == 413
    assert_envelope(data, "payload_too_large", "exceeds the Function URL limit")


def test_options_and_head_get_a_405_with_allow(server: tuple[str, int]) -> None:
    status, data = raw_request(server, "OPTIONS / HTTP/1.1\r\nHost: x\r\n")
    assert status == 405
    assert_envelope(data, "method_not_allowed", "method OPTIONS is not allowed")
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(sock, method="HEAD")
        response.begin()
        assert (response.status, response.getheader("allow")) == (405, "POST")
        assert response.read() == b""


def test_a_busy_port_is_a_one_line_error(
    isolated_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            serve.main(["--port", str(port), "--version", "v1"])
    message = str(exit_info.value)
    assert message == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what listens there, or "
        "pick another port with --port (0 picks a free one)"
    )
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_any_task_serves_over_http_from_the_newest_passed_version(
    task: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: None,
) -> None:
    from tests.handler import task_artifacts

    monkeypatch.setattr(serve, "ARTIFACTS", tmp_path)
    task_artifacts.write(tmp_path, task, model_name="example", version="v1")
    refused = task_artifacts.write(tmp_path, task, model_name="example", version="v2")
    manifest_path = refused.path.parent / "manifest.json"
    refused_manifest = json.loads(manifest_path.read_text())
    refused_manifest["quality_gate"] = {"status": "refused"}
    refused_manifest["compiled_runtime"] = {"supported": False, "reason": "no compiler for it"}
    manifest_path.write_text(json.dumps(refused_manifest))

    assert serve.latest_version("example") == "v1"
    runtime, why = serve.default_runtime("example", "v2")
    assert runtime == "sklearn"
    assert why == "example v2 has no compiled artifact (no compiler for it)"
    module = serve.load_handler(serve.model_env("example", "v1", runtime))
    server = local_server.make_server("127.0.0.1", 0, module.handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        record = {"size": 2.0, "colour": "green", "count": 7}
        status, _, body = request(url, json.dumps({"instances": [record, record]}).encode())
        assert status == 200, body
        assert (body["model_name"], body["model_version"]) == ("example", "v1")
        first = body["predictions"][0]
        if task == "multiclass":
            assert list(first["probabilities"]) == task_artifacts.MULTICLASS_CLASSES
            assert first["prediction"] in task_artifacts.MULTICLASS_CLASSES
        else:
            assert set(first) == {"prediction"} and isinstance(first["prediction"], float)
        status, _, body = request(url, json.dumps({**record, "colour": 1}).encode())
        assert status == 400
        assert (
            body["error"]["message"]
            == 'colour: must be one of "red", "green", "blue", got number 1'
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_manifest_naming_a_file_outside_its_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools import serve

    version = tmp_path / "churn" / "v1"
    version.mkdir(parents=True)
    manifest = {"artifacts": {"compiled": {"file": "../../hostname", "sha256": "0" * 64}}}
    (version / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(serve, "ARTIFACTS", tmp_path)
    with pytest.raises(SystemExit, match="hostname"):
        serve.model_env("churn", "v1", "compiled")

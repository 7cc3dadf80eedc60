"""The serving part of `make demo`: one single and one batch request through `tools.serve`."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import urllib.error
import urllib.request
from typing import Any

from tools import local_server, serve
from training.schema import EXAMPLE_RECORDS

SINGLE = EXAMPLE_RECORDS[0]
BATCH = {"instances": list(EXAMPLE_RECORDS)}


def post(url: str, payload: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def show_local_serving(
    model: str = "churn", version: str | None = None, runtime: str = "compiled"
) -> list[dict[str, Any]]:
    """Serve on a free loopback port, send the two requests, print them; returns the answers."""
    version = version or serve.latest_version(model)
    print(
        f"\n== local serving: the real handler behind a Function URL-shaped server "
        f"({model} {version}, runtime {runtime}) =="
    )
    captured = io.StringIO()
    answers = []
    # The handler's JSON log lines and EMF metrics would interleave with the demo's output.
    with contextlib.redirect_stdout(captured):
        module = serve.load_handler(serve.model_env(model, version, runtime))
        server = local_server.make_server("127.0.0.1", 0, module.handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            exchanges = [(payload, post(url, payload)) for payload in (SINGLE, BATCH)]
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    for payload, (status, answer) in exchanges:
        print(f"POST {url}  {json.dumps(payload)}")
        print(f"  -> {status} {json.dumps(answer)}")
        answers.append(answer)
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    emf = sum(1 for line in lines if "_aws" in line)
    print(f"the handler wrote {len(lines) - emf} JSON log lines and {emf} EMF metric documents")
    return answers

"""The handler's cold start and plain requests import no explanation code (issue 26: image
and cold start unchanged when no request asks); the first request that asks does."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.handler.conftest import LAMBDA_SRC, ROOT, valid_record
from tests.handler.test_explanations import churn_archive


def test_only_a_request_asking_for_explanations_imports_them(tmp_path: Path) -> None:
    data = churn_archive()
    archive = tmp_path / "model.compiled.npz"
    archive.write_bytes(data)
    env = {
        "PYTHONPATH": f"{LAMBDA_SRC}:{ROOT}",
        "PATH": "",
        "MODEL_NAME": "churn",
        "MODEL_VERSION": "v2",
        "MODEL_RUNTIME": "compiled",
        "MODEL_PATH": str(archive),
        "MODEL_SHA256": hashlib.sha256(data).hexdigest(),
        "AWS_LAMBDA_FUNCTION_NAME": "churn-inference",
    }
    record = json.dumps(valid_record())
    script = (
        "import io, json, sys, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    from inference import handler\n"
        f"    plain = handler.handler(json.loads({record!r}), None)\n"
        "    loaded = 'inference.explain' in sys.modules\n"
        f"    asked = handler.handler({{**json.loads({record!r}), 'explain': True}}, None)\n"
        "now = 'inference.explain' in sys.modules\n"
        "print(plain['statusCode'], loaded, asked['statusCode'], now)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=LAMBDA_SRC,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    assert out == ["200", "False", "200", "True"]

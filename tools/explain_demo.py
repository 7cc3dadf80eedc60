"""The explanations part of `make demo`: a churn answer with its "why", from the real handler.

The committed churn versions (v1, v2) keep their compiled archives in the first format
(``gbm-trees-npz/1``, deployed by checksum): written before explanations, without the
per-node ``cover`` that TreeSHAP needs, so they cannot be explained, and rewriting them
would change what is deployed. Packaging writes every new version in the current format
with ``cover``, so the demo trains the next churn version the way its users would
(``python -m training.train --version v3``: the built-in GBM, 200 trees of depth 4, on the
synthetic data) into a temporary directory, serves it through the real handler behind the
local Function URL-shaped server, sends one record with ``"explain": true`` and prints its
top contributions. Nothing is written under ``model_artifacts/``. An answer without an
explanation fails the demo (``DemoError``): it would mean the handler lost the feature.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference import compiled_model
from inference.compiled_pipeline import CompiledPipeline
from serving.artifacts import load_manifest
from tools import local_server, serve
from tools.serve_demo import SINGLE, post
from training import train
from training.schema import FEATURE_NAMES

VERSION = "v3"
TOP = 3


class DemoError(RuntimeError):
    """The handler did not answer the explained request with its explanation."""


@dataclass(frozen=True)
class Shown:
    """What the step showed: the handler's status, its answer and the explanation in it."""

    status: int
    answer: dict[str, Any]
    explanation: dict[str, Any]


def train_version(output: Path, rows: int = 20_000) -> Path:
    """Churn ``VERSION`` as ``python -m training.train --version v3`` trains it, into
    ``output``; returns its directory."""
    return train.train(
        train.synthetic_data(rows, 7),
        model_name="churn",
        version=VERSION,
        output=output,
        log=lambda _: None,
    )


def model_env(version_dir: Path) -> dict[str, str]:
    """The handler's environment for the compiled artifact of ``version_dir`` (as
    ``tools.serve.model_env`` builds it for a version under model_artifacts/)."""
    entry = load_manifest(version_dir)["artifacts"]["compiled"]
    return {
        "MODEL_NAME": "churn",
        "MODEL_VERSION": version_dir.name,
        "MODEL_RUNTIME": "compiled",
        "MODEL_PATH": str(version_dir / entry["file"]),
        "MODEL_SHA256": entry["sha256"],
    }


def engine_explanation(version_dir: Path, record: Mapping[str, float]) -> dict[str, Any]:
    """``record`` explained by the compiled runtime's engine, in the answer's shape."""
    entry = load_manifest(version_dir)["artifacts"]["compiled"]
    model = compiled_model.load((version_dir / entry["file"]).read_bytes())
    if not isinstance(model, CompiledPipeline):
        raise TypeError(f"{version_dir}: a compiled archive without explanations")
    X = np.array([[record[name] for name in FEATURE_NAMES]], dtype=np.float64)
    explanation = model.explainer().explain(X)
    return {
        "space": explanation.space,
        "base": float(explanation.base[0]),
        "contributions": {
            name: float(explanation.contributions[0, i, 0]) for i, name in enumerate(FEATURE_NAMES)
        },
    }


def describe(explanation: Mapping[str, Any], probability: float | None) -> list[str]:
    """The lines that show an explanation: the top contributions and the sum they make."""
    contributions: dict[str, float] = dict(explanation["contributions"])
    base = float(explanation["base"])
    total = base + sum(contributions.values())
    top = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:TOP]
    lines = [
        f"  why ({explanation['space']}): base {base:+.4f}, top {TOP} of {len(contributions)}:"
    ]
    lines += [f"    {name:<24} {value:+.4f}" for name, value in top]
    rest = total - base - sum(value for _, value in top)
    lines.append(f"    {'the other features':<24} {rest:+.4f}")
    line = f"  base + contributions = {total:+.4f}"
    if explanation["space"] == "log_odds":
        line += f" log-odds: P(churn) {1 / (1 + math.exp(-total)):.4f}"
        if probability is not None:
            line += f" (the answer's probability: {probability:.4f})"
    lines.append(line)
    return lines


def show_explanations(trained: Path | None = None) -> Shown:
    """Train (unless ``trained`` is the version's directory already), serve, ask for
    explanations and print them; returns what was shown."""
    print(f"\n== explanations: why this customer (churn {VERSION}, runtime compiled) ==")
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        version_dir = trained or train_version(
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-")))
        )
        print(
            "the committed churn v1 and v2 compiled archives are format 1 (no 'cover'), so they "
            f"cannot be explained; trained churn {VERSION} as `python -m training.train "
            f"--version {VERSION}` would, into a temporary directory, in "
            f"{time.perf_counter() - started:.1f} s (format 3, with 'cover')"
        )
        payload = {**SINGLE, "explain": True}
        with contextlib.redirect_stdout(io.StringIO()):  # the handler's log lines
            module = serve.load_handler(model_env(version_dir))
            server = local_server.make_server("127.0.0.1", 0, module.handler)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                url = f"http://127.0.0.1:{server.server_address[1]}/"
                status, answer = post(url, payload)
            finally:
                server.shutdown()
                server.server_close()
                thread.join()
        print(f"POST {url}  {json.dumps(payload)}")
        print(f"  -> {status} {json.dumps(answer)}")
        if status != 200 or "explanation" not in answer:
            raise DemoError(f"the handler answered {status} without an explanation")
        explanation = answer["explanation"]
        for line in describe(explanation, answer.get("probability")):
            print(line)
    return Shown(status, answer, explanation)

"""The handler's side of the explanations benchmark (run by ``benchmarks/explain.py``).

* ``warm``: 1 row through ``inference.handler.handler`` (a Function URL event, as
  ``benchmarks/worker.py`` sends), with ``"explain": true`` and without, interleaved, in the
  measuring process; an explained request answered without its explanation stops the
  benchmark (``SystemExit``), and the handler's contributions are held to the engine's.
* ``cold``: fresh processes (``benchmarks.worker``: imports, load, checksum, first request
  without explanations), alternating an archive with ``cover`` and the same archive
  without it, so that a noise spike lands on both.
* ``image_dependencies``: what ``requirements-compiled.txt`` installs, and what
  ``inference/explain.py`` imports beyond the standard library.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_SRC = ROOT / "lambda_src"
REQUIREMENTS = LAMBDA_SRC / "images" / "inference" / "requirements-compiled.txt"
WITH_COVER, WITHOUT_COVER = "with_cover.npz", "without_cover.npz"
# The bound: cold start with cover within 10 % of cold start without.
TARGET_COLD_RATIO = 1.10


class _Sink(io.StringIO):
    """Stands in for stdout while the handler runs: its log lines are dropped."""

    def write(self, text: str) -> int:
        return len(text)


def model_env(path: Path, data: bytes) -> dict[str, str]:
    import hashlib

    return {
        "MODEL_NAME": "churn",
        "MODEL_VERSION": "v1",
        "MODEL_RUNTIME": "compiled",
        "MODEL_PATH": str(path),
        "MODEL_SHA256": hashlib.sha256(data).hexdigest(),
    }


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def warm(
    path: Path,
    data: bytes,
    record: Mapping[str, Any],
    engine_contributions: Mapping[str, float],
    rounds: int,
    timed: Callable[[Callable[[], object]], tuple[float, float]],
) -> dict[str, Any]:
    """Warm 1-row figures through the handler, serving the archive ``data`` at ``path``."""
    from benchmarks.worker import Context, url_event

    for name in ("MODEL_BUCKET", "MODEL_KEY"):
        os.environ.pop(name, None)
    os.environ.update(model_env(path, data))
    with redirect_stdout(_Sink()):
        already = "inference.handler" in sys.modules
        handler = importlib.import_module("inference.handler")
        if already:
            handler.configure(os.environ)
        context = Context()
        plain, asked = url_event(dict(record)), url_event({**record, "explain": True})
        first = handler.handler(plain, context)
        model = handler.current_state().loaded.model
        lazy = getattr(model, "_explainer", None) is None  # no explainer built by a request
        answer = handler.handler(asked, context)
        body = json.loads(answer["body"])
        if answer["statusCode"] != 200 or "explanation" not in body:
            raise SystemExit(
                f"the handler answered {answer['statusCode']} without an explanation: "
                f"{str(body)[:200]}"
            )
        plain_ms: list[tuple[float, float]] = []
        asked_ms: list[tuple[float, float]] = []
        for _ in range(rounds):
            for _ in range(50):
                plain_ms.append(timed(lambda: handler.handler(plain, context)))
                asked_ms.append(timed(lambda: handler.handler(asked, context)))
    out: dict[str, Any] = {
        "plain_status": first["statusCode"],
        "explainer_lazy": lazy,
        "one_row": {
            "wall_ms": _median([s[0] for s in plain_ms]),
            "cpu_ms": _median([s[1] for s in plain_ms]),
        },
        "explain_one_row": {
            "wall_ms": _median([s[0] for s in asked_ms]),
            "cpu_ms": _median([s[1] for s in asked_ms]),
        },
    }
    got = body["explanation"]["contributions"]
    out["parity_max_abs_diff"] = max(
        abs(float(got[name]) - value) for name, value in engine_contributions.items()
    )
    return out


def cold(out_dir: Path, runs: int, cpu: int | None) -> dict[str, Any]:
    """Cold starts (ms) of fresh processes serving the archive with and without ``cover``,
    alternated (which goes first alternates too)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith(("AWS_", "MODEL_"))
    }
    # Byte-compiled first, as the image's compileall step does.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(LAMBDA_SRC), str(ROOT / "benchmarks")],
        env=env,
        check=True,
    )
    record = json.loads((out_dir / "record.json").read_text())
    samples: dict[str, list[float]] = {WITH_COVER: [], WITHOUT_COVER: []}
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps({"single": record}))
        for run in range(runs):
            order = [WITH_COVER, WITHOUT_COVER][:: 1 if run % 2 == 0 else -1]
            for name in order:
                path = out_dir / name
                result = Path(tmp) / "result.json"
                command = ["-m", "benchmarks.worker", "inference.handler", str(plan)]
                subprocess.run(
                    [sys.executable, *command, str(result)],
                    env={
                        **env,
                        **model_env(path, path.read_bytes()),
                        "PYTHONPATH": f"{LAMBDA_SRC}{os.pathsep}{ROOT}",
                    },
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                    check=True,
                    timeout=300,
                    preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
                )
                figures = json.loads(result.read_text())
                if figures["first_status"] != 200:
                    raise SystemExit(f"cold start with {name}: status {figures['first_status']}")
                samples[name].append(figures["cold_ms"])
    with_cover = statistics.median(samples[WITH_COVER])
    without = statistics.median(samples[WITHOUT_COVER])
    return {
        "runs": runs,
        "with_cover_ms": round(with_cover, 2),
        "without_cover_ms": round(without, 2),
        "ratio": round(with_cover / without, 3),
        "samples": {k: [round(v, 2) for v in vs] for k, vs in samples.items()},
    }


def _requirement_names(path: Path) -> list[str]:
    names: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names += _requirement_names(path.parent / line[3:].strip())
        elif line:
            names.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def image_dependencies() -> dict[str, Any]:
    """The compiled image's Python packages, and ``inference/explain.py``'s imports that
    are neither the standard library nor the project."""
    tree = ast.parse((LAMBDA_SRC / "inference" / "explain.py").read_bytes())
    tops: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    third_party = sorted(t for t in tops if t not in sys.stdlib_module_names and t != "inference")
    return {
        "requirements_file": str(REQUIREMENTS.relative_to(ROOT)),
        "packages": sorted(_requirement_names(REQUIREMENTS)),
        "explain_imports": third_party,
    }

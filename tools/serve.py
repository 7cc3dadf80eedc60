"""`make serve`: the real Lambda handler behind a local HTTP server.

Each HTTP request becomes a Function URL (payload 2.0) event, the handler answers, and the
answer becomes the HTTP response, so what works here works behind a Function URL (the
server: tools/local_server.py).

python -m tools.serve                           # churn, newest passed version, port 8080
python -m tools.serve --version v1 --port 9000
python -m tools.serve --model wine              # any model under model_artifacts/, any task
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from inference.limits import echo
from inference.runtimes import NAMES as RUNTIMES
from serving import (
    artifacts,
    quality,
)
from serving.artifacts import load_manifest
from tools.local_server import IDLE_TIMEOUT_S, READ_TIMEOUT_S, THREADS, make_server

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "model_artifacts"
LAMBDA_SRC = ROOT / "lambda_src"


def latest_version(model: str) -> str:
    """The newest version that passed the quality gate at training (see serving/quality.py):
    one written with an accepted regression, or a refusal, is served only when named."""
    versions = artifacts.versions(ARTIFACTS / model)
    if not versions:
        raise SystemExit(f"no versions of {model!r} under {ARTIFACTS}: run `make models`")
    for version in reversed(versions):
        if quality.passed(artifacts.load_manifest(ARTIFACTS / model / version)):
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
    try:
        # Artifact file names checked to stay inside the version directory.
        artifacts = load_manifest(version_dir)["artifacts"]
    except ValueError as error:
        raise SystemExit(f"{manifest_path}: {error}") from None
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
    from inference import handler as module

    if already_imported:
        # Imported earlier (tests, the demo): init again, as a new environment would.
        module.configure(os.environ)
    return module


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` above 0 (and at most a day), else a clear error."""

    def parse(text: str) -> Any:
        what = "a whole number" if kind is int else "a number"
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{echo(text)} is not {what}") from None
        if not 0 < value <= 86_400:
            raise argparse.ArgumentTypeError(
                f"{echo(text)}: must be {what} above 0 and at most 86400"
            )
        return value

    return parse


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
    parser.add_argument(
        "--threads",
        type=_positive(int),
        default=THREADS,
        help=f"worker threads that run complete requests (default {THREADS})",
    )
    parser.add_argument(
        "--read-timeout",
        type=_positive(float),
        default=READ_TIMEOUT_S,
        metavar="SECONDS",
        help="a request must arrive whole this long after its first byte, else 408 "
        f"(default {READ_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive(int),
        default=IDLE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"close a connection idle this long (default {IDLE_TIMEOUT_S})",
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
        server = make_server(
            args.host,
            args.port,
            module.handler,
            module.identity,
            read_timeout_s=args.read_timeout,
            idle_timeout_s=args.idle_timeout,
            threads=args.threads,
        )
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

"""The inference image's entry point, run the way Lambda runs it, for every runtime.

Per runtime in ``inference.runtimes.REGISTRY``: the task root is built from the inference
asset (stacks/function_code.py) by its Dockerfile's COPY and RUN steps
(``--build-arg MODEL_RUNTIME=<runtime>``),
the handler named by its CMD is started by the real runtime interface client
(``python -m awslambdaric``) against the Runtime API emulator, as a non-root user with a
read-only task root, and the model comes from the model store's key on a moto S3 server,
with the environment the dev stack sets (tests/infra snapshots) and a loopback S3
endpoint (``AWS_ENDPOINT_URL_S3``, read by boto3 and by the compiled runtime's own client).

Proves: the image's CMD imports from the built task root with only its pinned packages
and the runtime's boto3; init loads the model once; warm requests, warm-up pings and
Function URL events are answered through the real client; a model that fails its
checksum gives the handler's documented 503 (not an init error). Cannot prove: the base
image's OS libraries and Python build (this machine's Python 3.12 runs it), Lambda's
freezing between invocations, init and memory limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inference.runtimes import REGISTRY
from tests.lambda_runtime import deployed, sandbox
from tests.lambda_runtime.conftest import Launch, inference_root

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[1] / "events"
GENERIC_503 = "the model is not available; retry later"


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def lines(text: str, message: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in parsed if line.get("message") == message]


def function(runtime: str, **overrides: str) -> sandbox.Function:
    root = inference_root(runtime)
    config = deployed.inference(runtime)
    return sandbox.Function(
        name=f"churn-inference-{runtime}",
        task_root=root.path,
        handler=root.cmd[0],
        environment={**config.environment, **overrides},
        memory_mb=config.memory_mb,
        timeout_s=config.timeout_s,
        runtime="Image",
    )


@pytest.fixture(params=sorted(REGISTRY))
def runtime(
    request: pytest.FixtureRequest,
    model_store: Callable[[str, str], None],
) -> str:
    name: str = request.param
    env = deployed.inference(name).environment
    model_store(env["MODEL_BUCKET"], env["MODEL_KEY"])
    return name


@pytest.fixture
def s3_env(moto_endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL_S3": moto_endpoint}


@pytest.fixture
def serving(runtime: str, launch: Launch, s3_env: dict[str, str]) -> Iterator[sandbox.Environment]:
    with launch(function(runtime), extra_env=s3_env) as environment:
        yield environment


def test_cmd_names_a_module_of_the_task_root(runtime: str) -> None:
    root = inference_root(runtime)
    (handler,) = root.cmd
    module, _, attribute = handler.rpartition(".")
    path = root.path / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"CMD {handler}: {path} is not in the task root"
    assert attribute.isidentifier()
    # compileall ran: the handler's module does not compile on a read-only file system
    assert list((path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"))


def test_compiled_image_has_no_scikit_learn() -> None:
    assert not (inference_root("compiled").path / "sklearn").exists()
    assert (inference_root("sklearn").path / "sklearn").is_dir()


def test_cold_start_warm_requests_and_warmup(runtime: str, serving: sandbox.Environment) -> None:
    cold = serving.invoke(event("function_url_v2.json"))
    assert cold.kind == "response", cold
    answer = cold.json()
    assert answer["statusCode"] == 200, answer
    body = json.loads(answer["body"])
    assert body["model_version"] == "v1" and body["prediction"] in (0, 1)
    warm = serving.invoke(event("function_url_v2.json"))
    assert json.loads(warm.json()["body"])["probability"] == body["probability"]
    direct = serving.invoke(event("direct_batch.json"))
    assert direct.json()["statusCode"] == 200, direct.json()
    ping = serving.invoke(event("warmup.json"))
    assert ping.kind == "response"
    assert ping.json() == {
        "statusCode": 200,
        "warmup": True,
        "model_loaded": True,
        "model_name": "churn",
        "model_version": "v1",
        "lambda_version": "$LATEST",
    }
    logs = serving.logs()
    (loaded,) = lines(logs, "model loaded")  # once, at init: warm requests reuse it
    assert (
        loaded["runtime"] == runtime
        and loaded["sha256"] == function(runtime).environment["MODEL_SHA256"]
    )
    starts = [line["cold_start"] for line in lines(logs, "prediction")]
    assert starts == [True, False, False]
    assert serving.process.poll() is None


def test_a_model_failing_its_checksum_answers_503(
    runtime: str, launch: Launch, s3_env: dict[str, str]
) -> None:
    wrong = function(runtime, MODEL_SHA256="0" * 64)
    with launch(wrong, extra_env=s3_env) as environment:
        # Init does not fail: the environment stays up and answers 503 (inference.state).
        outcome = environment.invoke(event("function_url_v2.json"))
        assert environment.api.init_error is None
        assert outcome.kind == "response", outcome
        answer = outcome.json()
        assert answer["statusCode"] == 503, answer
        body = json.loads(answer["body"])
        assert body["error"] == {"code": "model_unavailable", "message": GENERIC_503}
        assert answer["headers"]["retry-after"] == str(body["retry_after_seconds"])
        ping = environment.invoke(event("warmup.json")).json()
        assert ping["statusCode"] == 503 and ping["model_loaded"] is False
        unavailable = lines(environment.logs(), "model unavailable")
        reasons = [line.get("reason", "") for line in unavailable]
        assert reasons and all(r.startswith("checksum mismatch for s3://") for r in reasons)

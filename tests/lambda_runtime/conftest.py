"""Session fixtures: the built trees (cached under build/), a moto server, a launcher."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import cache, partial
from pathlib import Path
from typing import Any

import boto3
import pytest

from stacks import function_code
from tests.handler import moto_server
from tests.lambda_runtime import build, deployed, sandbox

Launch = Callable[..., AbstractContextManager[sandbox.Environment]]
# The assets CDK builds the images from (stacks/function_code.py): Dockerfile and task/.
INFERENCE_CONTEXT = function_code.stage("inference")
INFERENCE_DOCKERFILE = INFERENCE_CONTEXT / "Dockerfile"
MONITORS_CONTEXT = function_code.stage("monitors")


@cache
def inference_root(runtime: str) -> build.TaskRoot:
    """``docker build --build-arg MODEL_RUNTIME=<runtime> <inference asset>``'s /var/task."""
    return build.image_task_root(
        INFERENCE_DOCKERFILE,
        INFERENCE_CONTEXT,
        {"MODEL_RUNTIME": runtime},
        name=f"inference-{runtime}",
    )


@cache
def drift_root() -> build.TaskRoot:
    """The monitors' image (the drift monitor and the canary evaluator)."""
    return build.image_task_root(MONITORS_CONTEXT / "Dockerfile", MONITORS_CONTEXT, name="monitors")


@pytest.fixture(scope="session")
def launch() -> Launch:
    """``launch(function, extra_env=...)``: a context manager running one environment."""
    return partial(sandbox.start, runtime_dir=build.runtime_dir(), lang=build.interpreter())


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server.running() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    """``aws("s3")``: a boto3 client of the moto server (the tests' own, not the function's)."""

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name=sandbox.REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture(scope="session")
def model_store(aws: Callable[[str], Any]) -> Callable[[str, str], None]:
    """``put(bucket, key)``: the committed file behind a model store key, in moto's S3."""
    s3 = aws("s3")
    buckets: set[str] = set()

    def put(bucket: str, key: str) -> None:
        if bucket not in buckets:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": sandbox.REGION}
            )
            buckets.add(bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=deployed.artifact_file(key).read_bytes())

    return put


@pytest.fixture
def make_root() -> Iterator[Callable[[dict[str, str]], Path]]:
    """``make_root({path: text})``: a small task root, read-only like the built ones."""
    made: list[Path] = []

    def make(files: dict[str, str]) -> Path:
        # Under the machine's /tmp: pytest's tmp_path is root's (mode 700).
        root = Path(tempfile.mkdtemp(prefix="lambda-task-"))
        made.append(root)
        root.chmod(0o755)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        build.make_read_only(root)
        return root

    yield make
    for root in made:
        build.remove(root)

"""The serving runtimes, by name: the one list every other place reads.

A runtime is a module of ``inference`` with ``load(data: bytes)`` returning an object that
follows ``model_loader.Model``, the artifact formats it reads, the manifest ``artifacts``
keys it serves, and the requirements file of its image (``requirements-<name>.txt``, which
the Dockerfile installs for ``--build-arg MODEL_RUNTIME=<name>``). Adding one is a module,
a record below, a requirements file, and its name in ``serving.runtimes.ModelRuntime`` (the
list the CDK configuration reads too).

The modules are imported only when ``load_module`` is called: the compiled image has no
scikit-learn, and this module is imported on every cold start, so it holds plain tuples.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from serving.runtimes import ModelRuntime


class Runtime:
    # A plain class with __slots__, not a dataclass: building dataclasses costs cold start.
    __slots__ = ("artifact_keys", "formats", "lean_fetch", "module", "name", "requirements")

    def __init__(
        self,
        *,
        name: str,
        module: str,
        formats: tuple[str, ...],
        artifact_keys: tuple[str, ...],
        lean_fetch: bool,
    ) -> None:
        self.name = name
        self.module = module  # imported by load_module, never here
        self.formats = formats  # the artifact formats its load() accepts
        self.artifact_keys = artifact_keys  # manifest "artifacts" keys whose file it loads
        # True: the image has no boto3 and downloads with inference/s3_fetch.py.
        self.lean_fetch = lean_fetch
        self.requirements = f"requirements-{name}.txt"  # in lambda_src/images/inference/


REGISTRY: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        Runtime(
            name=ModelRuntime.SKLEARN.value,
            module="inference.sklearn_model",
            formats=("sklearn-pipeline-skops/1", "sklearn-pipeline-joblib/1"),
            artifact_keys=("sklearn", "sklearn-joblib"),
            lean_fetch=False,
        ),
        Runtime(
            name=ModelRuntime.COMPILED.value,
            module="inference.compiled_model",
            formats=("gbm-trees-npz/1", "sklearn-compiled-npz/2", "sklearn-compiled-npz/3"),
            artifact_keys=("compiled",),
            lean_fetch=True,
        ),
    )
}
NAMES: tuple[str, ...] = tuple(REGISTRY)
if set(NAMES) != {runtime.value for runtime in ModelRuntime}:  # pragma: no cover - a code error
    raise RuntimeError(f"registered runtimes {NAMES} are not serving.runtimes.ModelRuntime's")
DEFAULT = "sklearn"
# manifest artifacts key -> the runtime that loads that file
RUNTIME_OF_ARTIFACT: dict[str, str] = {
    key: runtime.name for runtime in REGISTRY.values() for key in runtime.artifact_keys
}


class UnknownRuntimeError(ValueError):
    pass


class RuntimeUnavailableError(RuntimeError):
    """The runtime is registered but its module is not in this image."""


def get(name: str) -> Runtime:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownRuntimeError(
            f"unknown runtime {name!r}: use one of {', '.join(NAMES)}"
        ) from None


def load_module(name: str) -> ModuleType:
    """The runtime's module, imported now; ``RuntimeUnavailableError`` if the image lacks it."""
    runtime = get(name)
    try:
        return importlib.import_module(runtime.module)
    except ModuleNotFoundError as exc:
        # Only the runtime's own module missing means "not in this image"; a missing
        # dependency of a present module is a broken image and keeps its own error.
        if exc.name not in (runtime.module, None):
            raise
        raise RuntimeUnavailableError(f"runtime {name!r} is not available in this image") from None

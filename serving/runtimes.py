"""The serving runtimes' names: what a manifest's runtime, the stack's ``function.runtime``
and the inference image's ``MODEL_RUNTIME`` build argument may say.

The one list: the handler's registry (``inference.runtimes``, which adds each runtime's
module, formats and requirements) and the CDK configuration both read it.
"""

from enum import StrEnum


class ModelRuntime(StrEnum):
    SKLEARN = "sklearn"
    COMPILED = "compiled"

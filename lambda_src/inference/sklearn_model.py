"""The "sklearn" runtime: the pipeline exactly as training wrote it, in one of two formats.

* ``sklearn-pipeline-skops/1`` (``model.skops``, what the stack deploys): skops rebuilds
  the objects from a zip of JSON and arrays without unpickling, and refuses any type not
  on ``TRUSTED_TYPES`` or skops' own list of safe scikit-learn and numpy types.
* ``sklearn-pipeline-joblib/1`` (``model.joblib``): a pickle, loading it runs code; kept
  for local use and older deployments, always behind the SHA-256 check.

Only ``model_loader`` imports this module, and only after the SHA-256 check passed.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT = "sklearn-pipeline-joblib/1"
SKOPS_FORMAT = "sklearn-pipeline-skops/1"
# Types skops does not trust by itself that the churn pipeline needs. Anything else in an
# artifact is refused by name: extending this list is a reviewed code change.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)
ZIP_MAGIC = b"PK\x03\x04"
POSITIVE_CLASS = 1


class SklearnModelError(ValueError):
    """The bytes are not an artifact this runtime can serve."""


@dataclass(frozen=True)
class SklearnModel:
    model_name: str
    model_version: str
    features: list[dict[str, Any]]
    pipeline: Any
    positive_column: int

    def predict_proba(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        proba = self.pipeline.predict_proba(X)
        return np.asarray(proba[:, self.positive_column], dtype=np.float64)


def load(data: bytes) -> SklearnModel:
    # Heavy imports live here so that the compiled runtime never pays for them.
    from sklearn.exceptions import InconsistentVersionWarning

    skops = data.startswith(ZIP_MAGIC)
    expected = SKOPS_FORMAT if skops else FORMAT

    with warnings.catch_warnings():
        # A pipeline unpickled by another scikit-learn version may predict differently
        # without any error; the image pins training's version, so a mismatch is a
        # packaging bug and must not serve.
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            payload = _load_skops(data) if skops else _load_joblib(data)
        except InconsistentVersionWarning as exc:
            raise SklearnModelError(
                f"artifact was made with scikit-learn {exc.original_sklearn_version} but this "
                f"image has {exc.current_sklearn_version} ({exc.estimator_name}); rebuild the "
                "image with the training version"
            ) from None
    if not isinstance(payload, dict) or payload.get("format") != expected:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise SklearnModelError(f"artifact format is {found!r}, expected {expected!r}")
    pipeline = payload["pipeline"]
    classes = [int(c) for c in getattr(pipeline, "classes_", [])]
    if POSITIVE_CLASS not in classes:
        raise SklearnModelError(f"pipeline classes are {classes}: no positive class 1")
    features = payload["features"]
    n_inputs = getattr(pipeline, "n_features_in_", len(features))
    if n_inputs != len(features):
        raise SklearnModelError(
            f"pipeline expects {n_inputs} inputs but the artifact lists {len(features)} features"
        )
    return SklearnModel(
        model_name=str(payload["model_name"]),
        model_version=str(payload["model_version"]),
        features=list(features),
        pipeline=pipeline,
        positive_column=classes.index(POSITIVE_CLASS),
    )


def _load_joblib(data: bytes) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


def _load_skops(data: bytes) -> Any:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    # skops audits every type before it builds any object, in the same pass as the load.
    try:
        return skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        found = str(exc).splitlines()[0].removeprefix("Untrusted types found in the file: ")
        raise SklearnModelError(
            f"skops artifact holds types that are not trusted: {found[:1000]}"
        ) from None

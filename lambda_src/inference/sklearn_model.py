"""The "sklearn" runtime: the pipeline exactly as training wrote it, in one of two formats.

* ``sklearn-pipeline-skops/1`` (``model.skops``, what the stack deploys): skops rebuilds
  the objects from a zip of JSON and arrays without unpickling, and refuses any type not
  on ``TRUSTED_TYPES`` or skops' own list of safe scikit-learn and numpy types.
* ``sklearn-pipeline-joblib/1`` (``model.joblib``): a pickle, loading it runs code; kept
  for local use and older deployments, always behind the SHA-256 check.

Only ``model_loader`` imports this module, and only after the SHA-256 check passed.

A payload with ``"input": "frame"`` holds a pipeline fitted on a pandas DataFrame: its
``feature_names_in_`` must be the artifact's feature names in order (checked at load), and
it is called with ``inference.frames.to_frame``'s DataFrame of the codes matrix, the
columns given the payload's ``"frame_dtypes"``. Without ``"input"`` the pipeline gets the
codes matrix itself (every artifact written before frame models).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from inference.frames import FRAME_INPUT, FramePipeline, column_mismatch
from inference.validation import CategoryValue, schema_from_artifact
from serving.tasks import TASKS

FORMAT = "sklearn-pipeline-joblib/1"
SKOPS_FORMAT = "sklearn-pipeline-skops/1"
# Types skops does not trust by itself that the standard steps need (found with
# skops.io.get_untrusted_types on dumped pipelines of SimpleImputer, OneHotEncoder,
# OrdinalEncoder, ColumnTransformer, the scalers, HistGradientBoosting*, RandomForest*,
# ExtraTrees*, GradientBoosting*, DecisionTree*, linear models), each with why it runs no
# code. Anything else in an artifact is refused by name: extending this list is a reviewed
# code change.
TRUSTED_TYPES = (
    # The fitted tree of the tree models: arrays of nodes and thresholds, rebuilt by
    # scikit-learn's own __setstate__ from them.
    "sklearn.tree._tree.Tree",
    # A HistGradientBoosting* tree: an array of nodes and the bin thresholds.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # A dtype descriptor (SimpleImputer._fit_dtype, the encoders' dtypes): numpy builds it
    # from a type string such as "float64" or "<U6"; it holds no data and calls nothing.
    "numpy.dtype",
)
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
    task: str
    # Classification: the class labels in the pipeline's column order (binary: the second
    # is the positive class). Regression: None.
    classes: tuple[Any, ...] | None
    # A frame model (payload "input": "frame"): the pipeline called with a DataFrame.
    frame: FramePipeline | None = None

    def outputs(
        self,
        X: NDArray[np.float64],
        unknown: Mapping[tuple[int, int], CategoryValue] | None = None,
    ) -> NDArray[np.float64]:
        """binary: P(classes[1]) per row, shape (n,); multiclass: (n, len(classes));
        regression: the predicted value per row, shape (n,). ``unknown``: the request's
        value of each passed unknown category (a frame model's DataFrame holds it)."""
        given = X if self.frame is None else self.frame.frame(X, unknown)
        if self.task == "regression":
            return np.asarray(self.pipeline.predict(given), dtype=np.float64).reshape(-1)
        proba = np.asarray(self.pipeline.predict_proba(given), dtype=np.float64)
        return proba[:, 1] if self.task == "binary" else proba


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
    # Artifacts written before tasks existed are binary over the classes 0 and 1.
    task = payload.get("task", "binary")
    if task not in TASKS:
        raise SklearnModelError(f"artifact task {task!r} is not one of {', '.join(TASKS)}")
    classes = _classes(pipeline, task, payload.get("classes"))
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
        task=task,
        classes=classes,
        frame=_frame(payload, pipeline, features),
    )


def _frame(payload: dict[str, Any], pipeline: Any, features: Any) -> FramePipeline | None:
    """The frame model of a payload with ``"input": "frame"`` (None without), after
    checking that the pipeline was fitted on the artifact's features, by name and order."""
    given = payload.get("input")
    if given is None:
        return None
    if given != FRAME_INPUT:
        raise SklearnModelError(
            f"artifact input is {given!r}: expected {FRAME_INPUT!r} or no input (the codes)"
        )
    dtypes = payload.get("frame_dtypes") or {}
    if not isinstance(dtypes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in dtypes.items()
    ):
        raise SklearnModelError(f"artifact frame_dtypes must map names to dtypes, got {dtypes!r}")
    names = [str(entry.get("name")) for entry in features]
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is None:
        raise SklearnModelError(
            "artifact input is 'frame' but the pipeline has no feature_names_in_ (it was not "
            "fitted on a DataFrame)"
        )
    problem = column_mismatch(pipeline, names, listed="artifact's features")
    if problem is not None:
        raise SklearnModelError(f"{problem}: feature_names_in_ must be the feature names in order")
    unused = sorted(set(dtypes) - set(names))
    if unused:
        raise SklearnModelError(f"artifact frame_dtypes names no feature: {unused[0]!r}")
    try:
        schema = schema_from_artifact(features)
    except ValueError as exc:
        raise SklearnModelError(str(exc)) from None
    return FramePipeline(pipeline, schema, dtypes)


def _classes(pipeline: Any, task: str, recorded: Any) -> tuple[Any, ...] | None:
    """The class labels, checked against the pipeline's ``classes_`` (same order)."""
    if task == "regression":
        if hasattr(pipeline, "classes_"):
            raise SklearnModelError("artifact task is regression but the pipeline is a classifier")
        return None
    if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
        raise SklearnModelError(f"artifact task is {task} but the pipeline has no predict_proba")
    fitted = tuple(c.item() if isinstance(c, np.generic) else c for c in pipeline.classes_)
    if recorded is None:
        # Before tasks: binary over 0/1, positive class 1 in the second column.
        if list(fitted) != [0, POSITIVE_CLASS]:
            raise SklearnModelError(f"pipeline classes are {list(fitted)}: expected [0, 1]")
        return fitted
    if list(recorded) != list(fitted):
        raise SklearnModelError(
            f"artifact classes {list(recorded)} differ from the pipeline's {list(fitted)}"
        )
    expected = 2 if task == "binary" else None
    if (expected and len(fitted) != expected) or (not expected and len(fitted) < 3):
        raise SklearnModelError(f"a {task} artifact with {len(fitted)} classes")
    return fitted


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

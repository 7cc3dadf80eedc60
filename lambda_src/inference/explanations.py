"""Explanations through the handler: the request's ``explain`` flag, who may answer it, the
row limit, and each row's ``explanation`` field (docs/calling.md).

A request asks with ``"explain": true`` beside a record's features or beside ``instances``
(``serving.reserved.EXPLAIN_KEY``). Only the compiled runtime explains, and only an archive
that holds what explanations read (``inference.explain``: format 2 or 3 with ``cover`` for
trees); every other model answers a 400 saying why. At most ``MAX_EXPLAIN_ROWS`` rows get
explanations per request (a 413 beyond), and the answer's 6 MB bound counts them
(``answers.row_bytes``).

Each row's answer gains ``"explanation": {"space", "base", "contributions"}``, one
contribution per schema feature; for a multiclass model ``base`` is ``{label: value}`` and
each feature's contribution ``{label: value}``, in class order. ``base`` plus the
contributions is the model's raw output in ``space`` (local accuracy). A binary model's
explanation is of ``classes[1]``, the class ``probability`` is of.

Explanations are not logged: the prediction line carries only ``explain_ms`` and the names
of each logged row's three largest contributions by magnitude (for a multiclass row, to its
predicted class), within the line's row cap (``limits.PREDICTION_LOG_MAX_ROWS``; names are
at most 64 characters, ``serving.schema``). Capture records carry nothing of them.

``inference.explain`` is imported only when a request asks: cold start is unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from inference.errors import bad_request, too_large
from inference.limits import ECHO_MAX_CHARS, PREDICTION_LOG_MAX_ROWS, clip
from serving.reserved import EXPLAIN_KEY

if TYPE_CHECKING:
    from inference.answers import Answers
    from inference.explain import Explainer
    from inference.state import Ready

# The compiled runtime's name (serving.runtimes.ModelRuntime.COMPILED).
COMPILED = "compiled"
# Names of each logged row's largest contributions in the prediction log line.
LOG_TOP_FEATURES = 3


def take_flag(payload: object) -> tuple[object, bool]:
    """``payload`` without ``EXPLAIN_KEY``, and whether it asked for explanations; a value
    other than ``true`` or ``false`` is a 400 naming it."""
    if not isinstance(payload, Mapping) or EXPLAIN_KEY not in payload:
        return payload, False
    value = payload[EXPLAIN_KEY]
    if not isinstance(value, bool):
        # JSON text is ASCII (ensure_ascii): shown as the caller wrote it, cut if long.
        shown = clip(json.dumps(value, default=str), ECHO_MAX_CHARS)
        raise bad_request(f"{EXPLAIN_KEY!r} must be true or false, got {shown}")
    return {key: item for key, item in payload.items() if key != EXPLAIN_KEY}, value


def explainer(state: Ready, rows: int) -> Explainer:
    """The model's explainer for a request of ``rows`` rows that asks for explanations;
    a 400 if this model cannot explain, a 413 beyond ``MAX_EXPLAIN_ROWS``."""
    settings, loaded = state.settings, state.loaded
    named = f"{loaded.model_name} {loaded.model_version}"
    if settings.runtime != COMPILED:
        raise bad_request(
            f"explanations need the compiled runtime: {named} is served by runtime "
            f"{settings.runtime!r}; send the request without {EXPLAIN_KEY!r}"
        )
    build = getattr(loaded.model, "explainer", None)
    if build is None:
        raise bad_request(
            f"explanations are unavailable for {named}: its compiled archive is format "
            "'gbm-trees-npz/1', which holds no node cover; package the version again "
            f"(training.package) to explain it, or send the request without {EXPLAIN_KEY!r}"
        )
    from inference import explain  # only when a request asks

    try:
        built: Explainer = build()
    except explain.ExplanationsUnavailableError as exc:
        raise bad_request(f"explanations are unavailable for {named}: {exc}") from None
    if rows > settings.max_explain_rows:
        raise too_large(
            f"batch of {rows} instances asks for explanations, more than "
            f"MAX_EXPLAIN_ROWS={settings.max_explain_rows}: send at most "
            f"{settings.max_explain_rows} instances per request with {EXPLAIN_KEY!r}"
        )
    return built


def add(
    answered: Answers,
    explainer: Explainer,
    X: NDArray[np.float64],
    features: Sequence[str],
    task: str,
    classes: Sequence[Any] | None,
    *,
    batch: bool,
) -> Answers:
    """``answered`` with each row's ``explanation`` and the log line's bounded fields."""
    started = time.perf_counter()
    got = explainer.explain(X)
    contributions, base = got.contributions, got.base
    rows = X.shape[0]
    # A binary model's explanation is of classes[1] alone: one output, as a regressor's.
    labels = [str(c) for c in classes or ()] if task == "multiclass" else None
    expected = (rows, len(features), len(labels) if labels else 1)
    if contributions.shape != expected or base.shape != expected[2:]:
        raise RuntimeError(
            f"explainer returned contributions {contributions.shape} and base {base.shape} "
            f"for {expected}"
        )
    if not (np.all(np.isfinite(contributions)) and np.all(np.isfinite(base))):
        raise RuntimeError("explainer returned a non-finite contribution or base")
    answer_rows = answered.body["predictions"] if batch else [answered.body]
    if labels is None:
        shown_base: Any = float(base[0])
        values: list[list[Any]] = contributions[:, :, 0].tolist()
        magnitude = np.abs(contributions[:, :, 0])
    else:
        shown_base = dict(zip(labels, base.tolist(), strict=True))
        values = [
            [dict(zip(labels, per_class, strict=True)) for per_class in row]
            for row in contributions.tolist()
        ]
        winners = [labels.index(str(row["prediction"])) for row in answer_rows]
        magnitude = np.abs(contributions[np.arange(rows), :, winners])
    for row, row_values in zip(answer_rows, values, strict=True):
        row["explanation"] = {
            "space": got.space,
            "base": shown_base,
            "contributions": dict(zip(features, row_values, strict=True)),
        }
    shown = magnitude[:PREDICTION_LOG_MAX_ROWS]
    # Largest first; a stable sort keeps schema order among equal magnitudes.
    top = np.argsort(-shown, axis=1, kind="stable")[:, :LOG_TOP_FEATURES].tolist()
    log_fields = {
        **answered.log_fields,
        "explain_ms": round((time.perf_counter() - started) * 1000, 3),
        "top_features": [[features[i] for i in row] for row in top],
    }
    return replace(answered, log_fields=log_fields)


def answer_fields(explainer: Explainer, features: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """What sizes a row's explanation (``answers.row_bytes``): its space and the features."""
    return explainer.space, tuple(features)

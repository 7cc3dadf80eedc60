"""The 6 MB bound counts explanations (issue 26): at the bound an answer whose every row
carries the widest explanation its model can give fits Lambda's response limit as Lambda
encodes it, and one row more is the 413 naming the limit.

A stub model answers the widest outputs (``test_answer_size.WorstModel``) and a stub
explainer the widest numbers (``answers.WIDEST_VALUE``) for every base and contribution,
behind the real handler: flag, bound, answer building and response shaping.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from inference import answers
from inference import handler as handler_module
from inference.events import Shape
from inference.explain import Explanation
from serving.payload import LAMBDA_PAYLOAD_LIMIT_BYTES
from serving.reserved import EXPLAIN_KEY
from tests.handler.conftest import valid_record
from tests.reliability.conftest import Served
from tests.reliability.strategies import event_for
from tests.reliability.test_answer_size import (
    CHURN,
    TIGHT_FROM_ROWS,
    WorstModel,
    lambda_bytes,
    message,
    status,
    warm,
    widest_column,
)

__all__ = ["warm"]  # the module-scoped fixture, shared
SPACE = "probability"  # the longest space name


class WorstExplainer:
    space = SPACE

    def __init__(self, outputs: int) -> None:
        self.outputs = outputs

    def explain(self, X: NDArray[np.float64]) -> Explanation:
        rows, features = X.shape
        return Explanation(
            np.full(self.outputs, answers.WIDEST_VALUE),
            np.full((rows, features, self.outputs), answers.WIDEST_VALUE),
            SPACE,
        )


@dataclasses.dataclass(frozen=True)
class ExplainedWorstModel(WorstModel):
    def explainer(self) -> WorstExplainer:
        return WorstExplainer(len(self.classes or ()) if self.task == "multiclass" else 1)


def invoke(served: Served, state: handler_module.Ready, shape: str, rows: int) -> dict[str, Any]:
    event = event_for(shape, {"instances": [valid_record()] * rows, EXPLAIN_KEY: True})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handler_module, "_state", state)
        response, _ = served.invoke(event)
    return response


@pytest.mark.parametrize("shape", ["http-v2", "direct"])
@pytest.mark.parametrize(
    ("task", "classes"),
    [
        ("binary", (0, 1)),
        ("multiclass", tuple(f"class_{i}" for i in range(40))),
        ("regression", None),
    ],
    ids=["churn", "40-classes", "regression"],
)
def test_a_maximal_explained_batch_fits_and_one_row_more_is_a_413(
    warm: Served, shape: str, task: str, classes: tuple[Any, ...] | None
) -> None:
    winner = widest_column(classes, shape) if task == "multiclass" and classes else 0
    model = ExplainedWorstModel(task, classes, winner=winner)
    state = warm.state
    assert state.settings.runtime == "compiled"
    loaded = dataclasses.replace(state.loaded, model=model, **CHURN)
    unbounded = dataclasses.replace(
        state.settings,
        max_batch_size=10**7,
        max_body_bytes=10**9,
        capture_sample_rate=0.0,
        max_explain_rows=10**7,
    )
    ready = handler_module.Ready(unbounded, loaded)
    names = tuple(feature.name for feature in loaded.schema)
    envelope = {**handler_module._identity(ready), "request_id": "0" * 36}
    most = answers.max_answer_rows(task, classes, Shape(shape), envelope, (SPACE, names))
    plain = answers.max_answer_rows(task, classes, Shape(shape), envelope)
    # Explanations cost room: each row carries features x classes more numbers.
    assert 0 < most < plain

    one = invoke(warm, ready, shape, 1)
    full = invoke(warm, ready, shape, most)
    assert status(full) == 200, str(full)[:500]
    assert lambda_bytes(full) <= LAMBDA_PAYLOAD_LIMIT_BYTES
    if most >= 2:
        per_row = (lambda_bytes(full) - lambda_bytes(one)) / (most - 1)
        fits = math.floor((LAMBDA_PAYLOAD_LIMIT_BYTES - (lambda_bytes(one) - per_row)) / per_row)
        if fits >= TIGHT_FROM_ROWS:
            assert most >= 0.9 * fits, (most, fits)
    refused = invoke(warm, ready, shape, most + 1)
    assert status(refused) == 413, str(refused)[:500]
    text = message(refused)
    assert f"send at most {most} instances" in text
    assert f"explanations of {len(names)} features" in text
    assert f"{answers.ANSWER_LIMIT_BYTES:,}-byte (6 MB) response limit" in text


def test_an_explanation_s_size_grows_with_features_times_classes() -> None:
    classes = tuple(f"c{i}" for i in range(10))
    plain = answers.row_bytes("multiclass", classes, Shape.DIRECT)
    one = answers.row_bytes("multiclass", classes, Shape.DIRECT, (SPACE, ("a",)))
    two = answers.row_bytes("multiclass", classes, Shape.DIRECT, (SPACE, ("a", "b")))
    # Each feature adds its name and one widest number per class.
    per_feature = two - one
    assert per_feature == len('"b": {}, ') + 10 * (len('"c0": ') + 24) + 9 * len(", ")
    assert one > plain


def test_the_prediction_line_stays_bounded_with_explanations_of_long_names(warm: Served) -> None:
    """Feature names of the most characters a schema allows (64), a batch of 1,000
    explained rows: the line grows by three names for each of the 10 rows it lists."""
    state = warm.state
    schema = tuple(
        dataclasses.replace(feature, name=f"f{i}_".ljust(64, "x"))
        for i, feature in enumerate(state.loaded.schema)
    )
    loaded = dataclasses.replace(
        state.loaded, model=ExplainedWorstModel("binary", (0, 1)), schema=schema, **CHURN
    )
    settings = dataclasses.replace(
        state.settings, max_batch_size=10**4, max_explain_rows=10**4, capture_sample_rate=0.0
    )
    ready = handler_module.Ready(settings, loaded)
    record = {
        feature.name: value for feature, value in zip(schema, valid_record().values(), strict=True)
    }
    lines = {}
    for explain in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(handler_module, "_state", ready)
            response, out = warm.invoke({"instances": [record] * 1000, EXPLAIN_KEY: explain})
        assert status(response) == 200
        [line] = [text for text in out.splitlines() if '"message":"prediction"' in text]
        lines[explain] = line
    parsed = json.loads(lines[True])
    assert "log_truncated_from_bytes" not in parsed
    assert [len(names) for names in parsed["top_features"]] == [3] * 10
    assert all(len(name) == 64 for names in parsed["top_features"] for name in names)
    growth = len(lines[True]) - len(lines[False])
    # 10 rows of 3 quoted names and their commas and brackets, and explain_ms.
    assert growth <= 10 * (3 * (64 + 3) + 2) + len('"explain_ms":1234567.891,"top_features":[],')

"""Duplicate keys: the cheap count-based check must refuse exactly what the per-object hook does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import events
from inference.errors import RequestError
from inference.events import parse_json
from tests.handler import json_texts

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)


def strict(text: str) -> object:
    """The reference: every object built through the duplicate-refusing hook."""
    return json.loads(text, object_pairs_hook=events._object_without_duplicates)


def outcome(call: Any, text: str) -> tuple[str, object]:
    try:
        return "ok", call(text)
    except RequestError as exc:
        return "refused", exc.message


def record(**overrides: Any) -> str:
    fields = {"tenure_months": 3, "monthly_charges": 50.5, **overrides}
    return ", ".join(f'"{name}": {json.dumps(value)}' for name, value in fields.items())


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": 1, "a": 2}', "a"),
        # Deep in a batch: the 999th record of 1,000 repeats a field.
        (
            '{"instances": ['
            + ", ".join(
                "{" + record() + (', "tenure_months": 4' if i == 998 else "") + "}"
                for i in range(1000)
            )
            + "]}",
            "tenure_months",
        ),
        # A colon inside a string must not hide a repeated key from the count.
        ('{"note": "a:b", "x": 1, "x": 2}', "x"),
        # Equal after decoding escapes.
        ('{"a": 1, "\\u0061": 2}', "a"),
        # Nested below the two levels the cheap check counts.
        ('{"instances": [{"a": {"b": 1, "b": 2}}]}', "b"),
        ('[{"k": 1, "k": 2}]', "k"),
        ('{"instances": {"c": 1, "c": 2}}', "c"),
    ],
)
def test_a_duplicate_anywhere_is_refused_naming_it(text: str, key: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_json(text.encode())
    assert info.value.status == 400
    assert info.value.message == f"duplicate field {key!r} in a JSON object"


def test_a_clean_batch_is_parsed_once_without_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        raise AssertionError("the per-object hook ran on a clean batch")

    monkeypatch.setattr(events, "_object_without_duplicates", hook)
    text = '{"instances": [' + ", ".join("{" + record() + "}" for _ in range(100)) + "]}"
    assert parse_json(text.encode()) == json.loads(text)


# Keys that may repeat, or repeat once decoded, or hide a colon or brace from the count.
keys = st.sampled_from(["a", "b", "\\u0061", "a:b", "{", "instances"])
scalars = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(['"x"', '"a:b"', '"{"', '"}:"', "true", "null", "1.5"]),
)
documents = json_texts.documents(keys, scalars)


@PROPERTY
@given(documents)
def test_the_cheap_check_agrees_with_the_hook_on_any_document(text: str) -> None:
    assert outcome(lambda t: parse_json(t.encode()), text) == outcome(strict, text)

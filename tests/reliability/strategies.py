"""Hypothesis strategies for what callers can send: event shapes, payloads, bad values.

Feature names and ranges come from the v1 manifest, like the handler's schema does from
the artifact, so the generators stay right when the model's features change.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from hypothesis import strategies as st

from tests.handler.conftest import manifest

FEATURES: list[dict[str, Any]] = manifest("v1")["features"]
NAMES = [feature["name"] for feature in FEATURES]
HTTP_SHAPES = ("http-v2", "http-v2-base64", "rest-v1")
ALL_SHAPES = (*HTTP_SHAPES, "direct")


def _value_for(feature: dict[str, Any]) -> st.SearchStrategy[int | float]:
    low, high = feature["allowed"]["min"], feature["allowed"]["max"]
    if feature["dtype"] == "integer":
        return st.integers(int(low), int(high))
    return st.floats(float(low), float(high), allow_nan=False, allow_infinity=False)


valid_records = st.fixed_dictionaries({f["name"]: _value_for(f) for f in FEATURES})

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # includes NaN and +-Infinity, which json.dumps writes as literals
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)

NUMERIC_LOOKING = st.sampled_from(
    ["12", "12.5", "-1", "1e3", "0x10", " 12 ", "NaN", "Infinity", "1_000", "١٢", "", "null"]
) | st.one_of(st.integers(), st.floats()).map(str)


def bad_values(feature: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema must refuse for ``feature``: wrong types, non-finite, out of range."""
    low, high = float(feature["allowed"]["min"]), float(feature["allowed"]["max"])
    out_of_range = st.floats(max_value=low, exclude_max=True) | st.floats(
        min_value=high, exclude_min=True
    )
    options = [
        st.none(),
        st.booleans(),
        NUMERIC_LOOKING,
        st.lists(json_scalars, max_size=3),
        st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        out_of_range,
        st.integers(max_value=int(low) - 1) | st.integers(min_value=int(high) + 1),
        st.sampled_from([10**30, -(10**30), 1e308, -1e308]),
    ]
    if feature["dtype"] == "integer":
        options.append(
            st.floats(low, high, allow_nan=False).filter(lambda value: not value.is_integer())
        )
    return st.one_of(options)


@st.composite
def one_bad_field(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """A valid record with exactly one problem; returns it, the field and what's wrong."""
    record = dict(draw(valid_records))
    feature = draw(st.sampled_from(FEATURES))
    name = feature["name"]
    kind = draw(st.sampled_from(["bad value", "missing", "unknown"]))
    if kind == "bad value":
        record[name] = draw(bad_values(feature))
        return record, name, "must be"
    if kind == "missing":
        del record[name]
        return record, name, "required field is missing"
    extra = draw(
        st.text(min_size=1, max_size=12).filter(lambda key: key not in NAMES and key != "instances")
    )
    record[extra] = draw(json_values)
    return record, extra, "unknown field"


def number_literals() -> st.SearchStrategy[str]:
    """JSON number texts, including the ones a float cannot hold or Python will not parse."""
    return st.sampled_from(
        ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0", "0.0e0"]
    ) | st.builds(
        lambda digits, exponent: digits + exponent,
        st.integers(1, 6000).map(lambda n: "1" + "0" * (n - 1)),
        st.sampled_from(["", ".0", ".5", "e2", "e-2", "E+400"]),
    )


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def http_event(
    shape: str,
    body: str | bytes | None,
    *,
    method: object = "POST",
    headers: object = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Function URL / HTTP API 2.0 or API Gateway REST event carrying ``body``."""
    if headers is None:
        headers = {"content-type": "application/json"}
    encoded: str | None
    if shape == "http-v2-base64":
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        encoded = None if raw is None else base64.b64encode(raw).decode()
    else:
        encoded = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
    if shape == "rest-v1":
        event: dict[str, Any] = {
            "resource": "/predict",
            "path": "/predict",
            "httpMethod": method,
            "headers": headers,
            "requestContext": {"requestId": "fuzz", "stage": "prod"},
            "body": encoded,
            "isBase64Encoded": False,
        }
    else:
        event = {
            "version": "2.0",
            "rawPath": "/",
            "headers": headers,
            "requestContext": {"http": {"method": method, "path": "/"}, "requestId": "fuzz"},
            "body": encoded,
            "isBase64Encoded": shape == "http-v2-base64",
        }
    event.update(extra or {})
    return event


def event_for(shape: str, payload: Any) -> Any:
    """``payload`` as ``shape`` delivers it: a JSON body, or the event itself (direct)."""
    if shape == "direct":
        return payload
    return http_event(shape, dumps(payload))

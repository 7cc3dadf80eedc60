"""From an event to the model's input matrix: fast for a valid request, exact for the rest.

The body is parsed by orjson (``events.parse_json_fast``), whose value equals
``json.loads``'s but for one thing: an integer beyond 64 bits becomes the nearest float,
where ``json.loads`` keeps every digit. That never changes a clean batch's matrix, but it
could change what validation says of a bad value, or decide a value right on a range
bound. So the standard library's parse decides every request that orjson's value might
not answer the same way: one that is refused (its messages are the API's), and one
holding a number of magnitude 2**63 or more. Both are rare; a valid request is parsed once.
"""

from __future__ import annotations

from collections.abc import Sequence

from inference.errors import RequestError
from inference.events import Shape, read_payload
from inference.explanations import take_flag
from inference.json_codec import MAX_EXACT_MAGNITUDE
from inference.validation import Feature, Instances, parse_instances


def read_instances(
    shape: Shape,
    event: object,
    schema: Sequence[Feature],
    *,
    max_body_bytes: int,
    max_batch_size: int,
) -> Instances:
    """The request's instances; raises ``RequestError`` exactly as the standard library would."""
    return read_request(
        shape, event, schema, max_body_bytes=max_body_bytes, max_batch_size=max_batch_size
    )[0]


def read_request(
    shape: Shape,
    event: object,
    schema: Sequence[Feature],
    *,
    max_body_bytes: int,
    max_batch_size: int,
) -> tuple[Instances, bool]:
    """The request's instances and whether it asks for explanations (``"explain": true``)."""

    # A body orjson refuses is parsed, or refused, by the standard library right here.
    payload, explain = take_flag(read_payload(shape, event, max_body_bytes=max_body_bytes))
    if shape is Shape.DIRECT:
        # Lambda's runtime parsed this event: its value is the one to validate.
        return parse_instances(payload, schema, max_batch_size=max_batch_size), explain
    try:
        fast = parse_instances(payload, schema, max_batch_size=max_batch_size)
    except RequestError:
        # Rare, and where the wording matters: the standard library's value says it.
        return _exact(shape, event, schema, max_body_bytes, max_batch_size), explain
    X = fast.X
    if X.max() >= MAX_EXACT_MAGNITUDE or X.min() <= -MAX_EXACT_MAGNITUDE:
        return _exact(shape, event, schema, max_body_bytes, max_batch_size), explain
    return fast, explain


def _exact(
    shape: Shape,
    event: object,
    schema: Sequence[Feature],
    max_body_bytes: int,
    max_batch_size: int,
) -> Instances:
    payload = read_payload(shape, event, max_body_bytes=max_body_bytes, exact=True)
    payload, _ = take_flag(payload)
    return parse_instances(payload, schema, max_batch_size=max_batch_size)

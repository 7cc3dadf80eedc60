"""orjson where it gives the standard library's result, the standard library everywhere else.

On a batch of 1,000 records the standard library's ``json`` was most of the handler's own
time (parsing the body ~1.1 ms, encoding the answer ~0.6 ms; orjson: ~0.4 and ~0.05 ms).
orjson differs from it at the edges, and each difference is sent back to the standard
library here or by the callers:

* it refuses what ``json.loads`` accepts (NaN and Infinity literals, lone surrogates, an
  integer too large for a float): ``loads`` returns None and the caller parses with the
  standard library, which accepts or words the error as it always did;
* it reads an integer beyond 64 bits as a float (``json.loads`` keeps every digit): see
  ``MAX_EXACT_MAGNITUDE``;
* it writes NaN and Infinity as ``null`` (``json.dumps`` writes ``NaN``, or refuses with
  ``allow_nan=False``): ``dumps`` gives an output that holds ``null`` to the standard
  library, which writes the same ``null`` for a None and keeps its NaN behaviour;
* it refuses what it cannot encode exactly (an integer beyond 64 bits, a lone surrogate,
  a non-string key), and is not asked to encode what it would write its own way (a
  dataclass, a datetime, a subclass of str, int, float, list or dict such as numpy's
  float64 or a StrEnum, and anything only ``default`` converts): ``dumps`` leaves those
  to the standard library;
* it writes text as UTF-8 where ``json.dumps`` escapes every non-ASCII character: an
  output that is not pure ASCII goes to the standard library too, so an encoded line's
  length in characters stays its length in bytes (the log's size bounds count on it).

What orjson still writes its own way: floats in its shortest round-trip form (``0.00001``
where ``json.dumps`` writes ``1e-05``: the same float64 when read back), a plain ``Enum``
member and a ``UUID`` as their value (``json.dumps`` needs ``default`` for them).

Importing orjson adds ~0.4 ms to a cold start (its own imports, dataclasses and uuid, are
the handler's already). Without it installed, everything takes the standard library path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the tests switch ``enabled`` off instead
    enabled = False
else:
    enabled = True

# orjson keeps an integer literal in [-2**63, 2**64) exact and reads any other as the
# nearest float, so a parsed value below this magnitude is exactly what json.loads gives.
MAX_EXACT_MAGNITUDE = 2.0**63

# Types orjson would write otherwise than json.dumps are handed to ``_refuse``.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    if enabled
    else 0
)


def _refuse(value: object) -> object:
    # Raised inside orjson.dumps, which reports it as JSONEncodeError: the standard
    # library then encodes the whole value, with the caller's ``default``.
    raise TypeError(type(value).__name__)


def loads(raw: bytes) -> object | None:
    """``raw`` parsed by orjson, or None when orjson refuses it (or is not installed).

    None is not the JSON ``null`` here: ``null`` alone is no request the handler accepts,
    so a caller treats both alike and parses with the standard library.
    """
    if not enabled:
        return None
    try:
        value: object = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value


def encoders() -> tuple[Callable[[object], str], ...]:
    """Each encoder ``dumps`` may end up using, for bounds on its output's size: orjson (when
    installed; it raises TypeError for what it cannot encode) and the standard library.

    Which one ``dumps`` takes depends on the values (a null or non-ASCII text sends it to
    the standard library), and they write some floats at different lengths (``1e-05``
    here, ``0.00001`` there), so a bound takes the longer of the two.
    """
    standard = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))
    if not enabled:
        return (standard,)
    return (lambda value: orjson.dumps(value, option=_OPTIONS).decode(), standard)


def dumps(
    value: object,
    *,
    allow_nan: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """``json.dumps(value, separators=(",", ":"), ...)``: the same JSON value, faster.

    Floats are written in their shortest round-trip form, as ``json.dumps`` does (only the
    exponent's spelling differs: ``1e-05`` there, ``1e-5`` here); text is UTF-8 rather
    than ``\\u`` escapes. Anything orjson writes differently goes to the standard library.
    """
    if enabled:
        try:
            out = orjson.dumps(value, default=_refuse, option=_OPTIONS)
        except orjson.JSONEncodeError:
            pass
        else:
            # A null may stand for a NaN or an infinity (see the module's docstring).
            if b"null" not in out and out.isascii():
                return out.decode("ascii")
    return json.dumps(value, allow_nan=allow_nan, default=default, separators=(",", ":"))

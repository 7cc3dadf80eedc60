"""CloudWatch Logs JSON filter patterns of one shape, ``{ $.a.b <op> <number> }``, evaluated.

No library evaluates CloudWatch filter patterns (moto treats JSON patterns as "match
everything"), so the capture tests evaluate the one shape the capture subscription uses by
the documented rules: the log event must be a JSON object; the selector walks object keys
from ``$``; a numeric comparison matches only a field that holds a JSON number (a string
"1", a boolean or a missing field does not match), compared as a number, so 1 and 1.0 agree.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_PATTERN = re.compile(
    r"^\{\s*\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*(!=|<=|>=|=|<|>)\s*(-?\d+(?:\.\d+)?)\s*\}$"
)


@dataclass(frozen=True)
class NumericJsonFilter:
    path: tuple[str, ...]
    compare: Callable[[float, float], bool]
    value: float

    def matches(self, message: str) -> bool:
        try:
            event = json.loads(message)
        except ValueError:
            return False
        node: object = event
        for key in self.path:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, int | float):
            return False
        return math.isfinite(node) and self.compare(float(node), self.value)


def parse(pattern: str) -> NumericJsonFilter:
    match = _PATTERN.match(pattern.strip())
    if not match:
        raise ValueError(
            f"not a numeric JSON filter pattern of the form {{ $.a = 1 }}: {pattern!r}"
        )
    path, op, value = match.groups()
    return NumericJsonFilter(tuple(path.split(".")[1:]), _OPERATORS[op], float(value))

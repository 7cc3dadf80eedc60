"""Scalar context values: what ``-c key=value`` (always a string) and cdk.json hold.

Each parser returns a typed value or raises ConfigError naming the key, the value and what
is allowed; a ``Block`` reads the keys of one object of settings with them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from stacks.settings import ConfigError

_Choice = TypeVar("_Choice", bound=StrEnum)


def is_unset(value: Any) -> bool:
    # On the command line there is no null; "" or "none" clears a committed value.
    return value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "none", "null")
    )


def only(at: str, raw: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{at}.{k}' for k in unknown)}: allowed under {at} are "
            f"{', '.join(allowed)}"
        )


def mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}={value!r} is not allowed: expected an object of settings")
    return value


def text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}={value!r} is not allowed: expected a non-empty string")
    return value.strip()


def integer(key: str, value: Any, minimum: int, maximum: int | None) -> int:
    allowed = f"an integer from {minimum}" + (f" to {maximum}" if maximum is not None else " up")
    if isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        number = int(value)
    else:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")
    return number


def number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}={value!r} is not allowed: expected a number")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not allowed: expected a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}={value!r} is not allowed: expected a finite number")
    return number


def boolean(key: str, value: Any, *extra: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    allowed = ", ".join(("true", "false", *(repr(e) for e in extra)))
    raise ConfigError(f"{key}={value!r} is not allowed: use {allowed}")


def choice(key: str, value: Any, enum: type[_Choice]) -> _Choice:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {allowed}") from None


def optional_pattern(key: str, value: Any, pattern: re.Pattern[str], what: str) -> str | None:
    if is_unset(value):
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{key}={value!r} is not allowed: expected {what} or null")
    return value


@dataclass(frozen=True)
class Block:
    """One object of settings, ``raw``, found at ``at`` (e.g. ``environments.dev.alarms``).

    Reads each key with the parsers above, so that an error names the key's full path.
    """

    at: str
    raw: Mapping[str, Any]

    def sub(self, name: str) -> Block:
        """The block ``name`` inside this one (an empty one when unset)."""
        return Block(self.key(name), mapping(self.key(name), self.raw.get(name, {})))

    def only(self, allowed: tuple[str, ...]) -> None:
        only(self.at, self.raw, allowed)

    def key(self, name: str) -> str:
        return f"{self.at}.{name}"

    def integer(self, name: str, default: Any, minimum: int, maximum: int | None) -> int:
        return integer(self.key(name), self.raw.get(name, default), minimum, maximum)

    def number(self, name: str, default: Any) -> float:
        return number(self.key(name), self.raw.get(name, default))

    def boolean(self, name: str, default: Any, *extra: str) -> bool:
        return boolean(self.key(name), self.raw.get(name, default), *extra)

    def text(self, name: str, default: Any) -> str:
        return text(self.key(name), self.raw.get(name, default))

    def choice(self, name: str, default: Any, enum: type[_Choice]) -> _Choice:
        return choice(self.key(name), self.raw.get(name, default), enum)

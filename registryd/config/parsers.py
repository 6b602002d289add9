"""
Small value parsers shared by every configuration section.

Each takes the value and the key path it was found at, and raises
L{ConfigError} naming that path when the value has the wrong type or shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from registryd.config.errors import ConfigError

KeyPath = Sequence[str]
T = TypeVar("T")

# Go's time.ParseDuration units in seconds: distribution writes durations the Go way ("168h", "2h10m").
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
}
_SIZE = re.compile(r"(\d+)\s*([kmg]?b?)", re.IGNORECASE)


def typeName(value: object) -> str:
    """Name a YAML value's type the way an operator thinks of it, for error messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def mapping(value: object, keyPath: KeyPath, allowNone: bool = True) -> dict[str, Any]:
    """Return a section as a dict (an empty YAML section reads as null, which counts as empty)."""
    if value is None and allowNone:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping, got {typeName(value)}", keyPath)
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got {typeName(key)} (quote it)", [*keyPath, str(key)])
    return dict(value)


def onlyKeys(section: Mapping[str, Any], allowed: Iterable[str], keyPath: KeyPath) -> None:
    """Refuse any key of section not in allowed, naming its full path."""
    allowedSet = set(allowed)
    for key in section:
        if key not in allowedSet:
            known = ", ".join(sorted(allowedSet)) or "none"
            raise ConfigError(f"unknown key (known keys here: {known})", [*keyPath, key])


def optional(
    section: Mapping[str, Any], key: str, parse: Callable[[Any, KeyPath], T], default: T, keyPath: KeyPath
) -> T:
    """section[key] read by parse (errors naming keyPath + key), or default when absent or null."""
    value = section.get(key)
    if value is None:
        return default
    return parse(value, [*keyPath, key])


def string(value: object, keyPath: KeyPath) -> str:
    """Return a string value."""
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {typeName(value)}", keyPath)
    return value


def boolean(value: object, keyPath: KeyPath) -> bool:
    """Return a boolean; the strings 'true'/'false' are accepted as Go's YAML parser does."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"expected true or false, got {typeName(value)}", keyPath)


def integer(value: object, keyPath: KeyPath, minimum: int | None = None) -> int:
    """Return an integer, at least minimum when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"expected an integer, got {typeName(value)}", keyPath)
    if minimum is not None and value < minimum:
        raise ConfigError(f"must be at least {minimum}, got {value}", keyPath)
    return value


def duration(value: object, keyPath: KeyPath, bareUnit: float = 1e-9) -> float:
    """
    Return a Go-style duration ("10s", "2h10m", "1.5h", "300ms") in seconds.

    A bare number is taken in bareUnit seconds: distribution reads it as nanoseconds.
    """
    if isinstance(value, bool):
        raise ConfigError(f"expected a duration such as '10s', got {typeName(value)}", keyPath)
    if isinstance(value, int | float):
        seconds = float(value) * bareUnit
    elif isinstance(value, str):
        text = value.strip()
        if text in ("0", "+0", "-0"):
            return 0.0
        if text.startswith(("-", "+")):
            sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
        else:
            sign = 1.0
        position, seconds = 0, 0.0
        while position < len(text):
            match = _DURATION_PART.match(text, position)
            if match is None:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if not text or position != len(text):
            raise ConfigError(f"invalid duration {value!r} (expected e.g. '10s', '2h10m', '168h')", keyPath)
        seconds *= sign
    else:
        raise ConfigError(f"expected a duration such as '10s', got {typeName(value)}", keyPath)
    if seconds < 0:
        raise ConfigError(f"duration must not be negative, got {value!r}", keyPath)
    return seconds


def size(value: object, keyPath: KeyPath) -> int:
    """Return a byte count from an integer or a string like '5M', '512kb', '1G'."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"size must not be negative, got {value}", keyPath)
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match is not None:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
        raise ConfigError(f"invalid size {value!r} (expected e.g. 5242880, '5M', '512kb')", keyPath)
    raise ConfigError(f"expected a size, got {typeName(value)}", keyPath)


def notSupported(value: object, keyPath: KeyPath, what: str) -> None:
    """Refuse a recognised key whose feature registryd does not have yet; an empty value is fine."""
    if value is None or value == {} or value == []:
        return
    raise ConfigError(f"{what} is not supported yet by registryd; remove this key to start", keyPath)

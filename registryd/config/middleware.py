"""
The C{middleware} section: distribution's hook points, each a list of C{{name, options}}.

Only C{middleware.storage} is implemented (storage driver wrappers, see
L{registryd.storage.middleware}); C{registry} and C{repository} middleware wrap Go
interfaces registryd does not have, so setting them stops start-up. Here only the shape is
checked; each storage middleware reads its own options when the service is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registryd.config import parsers
from registryd.config.errors import ConfigError

KEY = ("middleware",)
HOOKS = ("registry", "repository", "storage")


@dataclass(frozen=True)
class MiddlewareEntry:
    """
    One C{middleware.<hook>} list entry.

    @ivar options: the entry's C{options} mapping, read by the middleware itself.
    @ivar keyPath: where the entry is, e.g. C{("middleware", "storage", "0")}, for errors.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    keyPath: tuple[str, ...] = ()


@dataclass(frozen=True)
class MiddlewareConfig:
    """C{middleware}: the storage middleware entries in the order they wrap the driver."""

    storage: tuple[MiddlewareEntry, ...] = ()


def _entries(value: object, keyPath: list[str]) -> tuple[MiddlewareEntry, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(
            f"expected a list of {{name, options}} entries, got {parsers.typeName(value)}", keyPath
        )
    entries = []
    for index, item in enumerate(value):
        at = [*keyPath, str(index)]
        entry = parsers.mapping(item, at, allowNone=False)
        parsers.onlyKeys(entry, ("name", "options"), at)
        if entry.get("name") is None:
            raise ConfigError("required", [*at, "name"])
        name = parsers.string(entry["name"], [*at, "name"])
        options = parsers.mapping(entry.get("options"), [*at, "options"])
        entries.append(MiddlewareEntry(name, options, tuple(at)))
    return tuple(entries)


def parseMiddleware(value: object) -> MiddlewareConfig:
    """Validate the C{middleware} section; registry and repository middleware are refused."""
    section = parsers.mapping(value, KEY)
    parsers.onlyKeys(section, HOOKS, KEY)
    for hook in ("registry", "repository"):
        entries = _entries(section.get(hook), [*KEY, hook])
        if entries:
            parsers.notSupported(
                True, [*entries[0].keyPath, "name"], f"{hook} middleware ({entries[0].name})"
            )
    return MiddlewareConfig(storage=_entries(section.get("storage"), [*KEY, "storage"]))

"""The C{health} section: the periodic storage driver check (file/http/tcp checks come later)."""

from __future__ import annotations

from dataclasses import dataclass, field

from registryd.config import parsers
from registryd.config.errors import ConfigError


@dataclass(frozen=True)
class StorageDriverHealthConfig:
    """Stat the storage root every interval; unhealthy after threshold failures in a row."""

    enabled: bool = False
    interval: float = 10.0
    threshold: int = 1


@dataclass(frozen=True)
class HealthConfig:
    """Every health check registryd runs."""

    storageDriver: StorageDriverHealthConfig = field(default_factory=StorageDriverHealthConfig)


def parseHealth(section: object) -> HealthConfig:
    """Read the health section."""
    values = parsers.mapping(section, ["health"])
    parsers.onlyKeys(values, ("storagedriver", "file", "http", "tcp"), ["health"])
    for key in ("file", "http", "tcp"):
        parsers.notSupported(values.get(key), ["health", key], f"the {key} health check")

    path = ["health", "storagedriver"]
    check = parsers.mapping(values.get("storagedriver"), path)
    parsers.onlyKeys(check, ("enabled", "interval", "threshold"), path)
    defaults = StorageDriverHealthConfig()
    enabled = parsers.optional(check, "enabled", parsers.boolean, defaults.enabled, path)
    # distribution reads a bare number as nanoseconds; so do we.
    interval = parsers.optional(check, "interval", parsers.duration, defaults.interval, path)
    if interval <= 0:
        raise ConfigError("must be a positive duration", [*path, "interval"])
    # 0 means what leaving it out means: one failure is enough, as in distribution.
    threshold = max(
        1,
        parsers.optional(
            check, "threshold", lambda v, p: parsers.integer(v, p, minimum=0), defaults.threshold, path
        ),
    )
    return HealthConfig(StorageDriverHealthConfig(enabled=enabled, interval=interval, threshold=threshold))

"""The C{health} section: the storage driver check and distribution's file, http and tcp checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registryd.config import parsers
from registryd.config.errors import ConfigError

DEFAULT_INTERVAL = 10.0


@dataclass(frozen=True)
class StorageDriverHealthConfig:
    """Stat the storage root every interval; unhealthy after threshold failures in a row."""

    enabled: bool = False
    interval: float = DEFAULT_INTERVAL
    threshold: int = 1


@dataclass(frozen=True)
class FileHealthConfig:
    """C{health.file[]}: unhealthy while a file exists at C{path} (takes a registry out of rotation)."""

    path: str
    interval: float = DEFAULT_INTERVAL
    threshold: int = 1


@dataclass(frozen=True)
class HTTPHealthConfig:
    """C{health.http[]}: a C{HEAD} of C{uri} must answer C{statusCode} within C{timeout}."""

    uri: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    statusCode: int = 200
    # None: the interval (a check that outlasts its interval has failed).
    timeout: float | None = None
    interval: float = DEFAULT_INTERVAL
    threshold: int = 1


@dataclass(frozen=True)
class TCPHealthConfig:
    """C{health.tcp[]}: a TCP connection to C{addr} (HOST:PORT) must open within C{timeout}."""

    addr: str
    host: str
    port: int
    timeout: float | None = None
    interval: float = DEFAULT_INTERVAL
    threshold: int = 1


@dataclass(frozen=True)
class HealthConfig:
    """Every health check registryd runs."""

    storageDriver: StorageDriverHealthConfig = field(default_factory=StorageDriverHealthConfig)
    files: tuple[FileHealthConfig, ...] = ()
    http: tuple[HTTPHealthConfig, ...] = ()
    tcp: tuple[TCPHealthConfig, ...] = ()


def _positiveDuration(section: dict[str, Any], key: str, default: Any, path: list[str]) -> Any:
    # distribution reads a bare number as nanoseconds; so do we.
    value = parsers.optional(section, key, parsers.duration, default, path)
    if value is not None and value <= 0:
        raise ConfigError("must be a positive duration", [*path, key])
    return value


def _threshold(section: dict[str, Any], path: list[str]) -> int:
    # 0 means what leaving it out means: one failure is enough, as in distribution.
    return max(
        1, parsers.optional(section, "threshold", lambda v, p: parsers.integer(v, p, minimum=0), 1, path)
    )


def _entries(value: object, path: list[str]) -> list[tuple[dict[str, Any], list[str]]]:
    """The mappings of a list-valued check section, each with its key path (C{health.http[0]})."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of checks, got {parsers.typeName(value)}", path)
    entries = []
    for index, entry in enumerate(value):
        entryPath = [*path[:-1], f"{path[-1]}[{index}]"]
        entries.append((parsers.mapping(entry, entryPath, allowNone=False), entryPath))
    return entries


def _required(section: dict[str, Any], key: str, path: list[str]) -> str:
    value = section.get(key)
    if value is None or value == "":
        raise ConfigError("is required", [*path, key])
    return parsers.string(value, [*path, key])


def _storageDriver(value: object) -> StorageDriverHealthConfig:
    path = ["health", "storagedriver"]
    check = parsers.mapping(value, path)
    parsers.onlyKeys(check, ("enabled", "interval", "threshold"), path)
    return StorageDriverHealthConfig(
        enabled=parsers.optional(check, "enabled", parsers.boolean, False, path),
        interval=_positiveDuration(check, "interval", DEFAULT_INTERVAL, path),
        threshold=_threshold(check, path),
    )


def _file(check: dict[str, Any], path: list[str]) -> FileHealthConfig:
    parsers.onlyKeys(check, ("file", "interval", "threshold"), path)
    return FileHealthConfig(
        path=_required(check, "file", path),
        interval=_positiveDuration(check, "interval", DEFAULT_INTERVAL, path),
        threshold=_threshold(check, path),
    )


def _httpHeaders(value: object, path: list[str]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, values in parsers.mapping(value, path).items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError("expected a list of strings", [*path, name])
        if any("\r" in v or "\n" in v for v in values):
            raise ConfigError("header values must not contain line breaks", [*path, name])
        headers[name] = values
    return headers


def _http(check: dict[str, Any], path: list[str]) -> HTTPHealthConfig:
    parsers.onlyKeys(check, ("uri", "headers", "statuscode", "timeout", "interval", "threshold"), path)
    uri = _required(check, "uri", path)
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(f"must be an http:// or https:// URL, got {uri!r}", [*path, "uri"])
    statusCode = parsers.optional(check, "statuscode", parsers.integer, 200, path)
    if statusCode == 0:
        statusCode = 200
    if not 100 <= statusCode <= 599:
        raise ConfigError(f"not an HTTP status code: {statusCode}", [*path, "statuscode"])
    return HTTPHealthConfig(
        uri=uri,
        headers=_httpHeaders(check.get("headers"), [*path, "headers"]),
        statusCode=statusCode,
        timeout=_positiveDuration(check, "timeout", None, path),
        interval=_positiveDuration(check, "interval", DEFAULT_INTERVAL, path),
        threshold=_threshold(check, path),
    )


def _tcp(check: dict[str, Any], path: list[str]) -> TCPHealthConfig:
    from registryd.config.http import splitHostPort

    parsers.onlyKeys(check, ("addr", "timeout", "interval", "threshold"), path)
    addr = _required(check, "addr", path)
    host, port = splitHostPort(addr, [*path, "addr"])
    if not host or port == 0:
        raise ConfigError(f"needs a host and a port, got {addr!r}", [*path, "addr"])
    return TCPHealthConfig(
        addr=addr,
        host=host,
        port=port,
        timeout=_positiveDuration(check, "timeout", None, path),
        interval=_positiveDuration(check, "interval", DEFAULT_INTERVAL, path),
        threshold=_threshold(check, path),
    )


def parseHealth(section: object) -> HealthConfig:
    """Read the health section."""
    values = parsers.mapping(section, ["health"])
    parsers.onlyKeys(values, ("storagedriver", "file", "http", "tcp"), ["health"])
    return HealthConfig(
        storageDriver=_storageDriver(values.get("storagedriver")),
        files=tuple(_file(c, p) for c, p in _entries(values.get("file"), ["health", "file"])),
        http=tuple(_http(c, p) for c, p in _entries(values.get("http"), ["health", "http"])),
        tcp=tuple(_tcp(c, p) for c, p in _entries(values.get("tcp"), ["health", "tcp"])),
    )

"""
The C{redis} section: the server the blob descriptor cache (C{storage.cache.blobdescriptor:
redis}) keeps its entries in, with distribution's keys (and distribution 3's C{addrs},
C{username}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registryd.config import parsers
from registryd.config.errors import ConfigError

REDIS_KEYS = (
    "addr",
    "addrs",
    "username",
    "password",
    "db",
    "dialtimeout",
    "readtimeout",
    "writetimeout",
    "tls",
    "pool",
)
DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisConfig:
    """Where Redis is and how to talk to it; timeouts in seconds (0: none)."""

    addresses: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    db: int = 0
    dialTimeout: float = 0.0
    readTimeout: float = 0.0
    writeTimeout: float = 0.0
    tls: bool = False
    # distribution's documented example values; 0 maxActive means no limit.
    maxIdle: int = 16
    maxActive: int = 64
    idleTimeout: float = 300.0


def parseAddress(value: object, keyPath: list[str]) -> tuple[str, int]:
    """C{host:port} (or C{[v6]:port}, or a bare host on 6379) as (host, port)."""
    text = parsers.string(value, keyPath).strip()
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"invalid address {text!r} (expected host:port)", keyPath)
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"invalid address {text!r} (expected host:port)", keyPath)
            port = rest[1:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid address {text!r} (expected host:port)", keyPath)
    return host, int(port)


def _timeout(section: dict[str, Any], key: str) -> float:
    return parsers.optional(section, key, parsers.duration, 0.0, ["redis"])


def parseRedis(value: object) -> RedisConfig | None:
    """Validate the redis section; None when it is absent or empty."""
    section = parsers.mapping(value, ["redis"])
    if not section:
        return None
    parsers.onlyKeys(section, REDIS_KEYS, ["redis"])
    addresses: list[tuple[str, int]] = []
    if section.get("addr") is not None:
        addresses.append(parseAddress(section["addr"], ["redis", "addr"]))
    if section.get("addrs") is not None:
        addrs = section["addrs"]
        if not isinstance(addrs, list):
            raise ConfigError(
                f"expected a list of host:port, got {parsers.typeName(addrs)}", ["redis", "addrs"]
            )
        addresses += [parseAddress(each, ["redis", "addrs", str(i)]) for i, each in enumerate(addrs)]
    if not addresses:
        raise ConfigError("required: the redis server's host:port", ["redis", "addr"])

    def optionalText(key: str) -> str | None:
        text = parsers.optional(section, key, parsers.string, "", ["redis"])
        return text or None

    db = parsers.optional(section, "db", lambda v, k: parsers.integer(v, k, minimum=0), 0, ["redis"])
    tls = parsers.mapping(section.get("tls"), ["redis", "tls"])
    parsers.onlyKeys(tls, ("enabled", "certificate", "key", "clientcas"), ["redis", "tls"])
    for key in ("certificate", "key", "clientcas"):
        parsers.notSupported(tls.get(key), ["redis", "tls", key], "client certificates for redis")
    pool = parsers.mapping(section.get("pool"), ["redis", "pool"])
    parsers.onlyKeys(pool, ("maxidle", "maxactive", "idletimeout"), ["redis", "pool"])

    def count(key: str, default: int) -> int:
        return parsers.optional(
            pool, key, lambda v, k: parsers.integer(v, k, minimum=0), default, ["redis", "pool"]
        )

    return RedisConfig(
        addresses=tuple(addresses),
        username=optionalText("username"),
        password=optionalText("password"),
        db=db,
        dialTimeout=_timeout(section, "dialtimeout"),
        readTimeout=_timeout(section, "readtimeout"),
        writeTimeout=_timeout(section, "writetimeout"),
        tls=parsers.optional(tls, "enabled", parsers.boolean, False, ["redis", "tls"]),
        maxIdle=count("maxidle", RedisConfig.maxIdle),
        maxActive=count("maxactive", RedisConfig.maxActive),
        idleTimeout=parsers.optional(
            pool, "idletimeout", parsers.duration, RedisConfig.idleTimeout, ["redis", "pool"]
        ),
    )

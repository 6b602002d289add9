"""The whole configuration: the top-level keys, each section read by its own module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registryd.config import parsers
from registryd.config.auth import AuthConfig, parseAuth
from registryd.config.errors import ConfigError
from registryd.config.health import HealthConfig, parseHealth
from registryd.config.http import HTTPConfig, parseHTTP
from registryd.config.log import LogConfig, parseLog
from registryd.config.middleware import MiddlewareConfig, parseMiddleware
from registryd.config.notifications import NotificationsConfig, parseNotifications
from registryd.config.proxy import ProxyConfig, describeProxy, parseProxy
from registryd.config.redis import RedisConfig, parseRedis
from registryd.config.storage import StorageConfig, parseStorage
from registryd.config.unsupported import UNSUPPORTED_SECTIONS, checkUnsupported

VERSION = "0.1"
SECTIONS = (
    "version",
    "log",
    "loglevel",
    "storage",
    "http",
    "health",
    "auth",
    "notifications",
    "redis",
    "middleware",
    "proxy",
    *UNSUPPORTED_SECTIONS,
)


@dataclass(frozen=True)
class Configuration:
    """A validated registryd configuration; C{path} is the file it came from, if any."""

    storage: StorageConfig
    version: str = VERSION
    log: LogConfig = field(default_factory=LogConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    redis: RedisConfig | None = None
    middleware: MiddlewareConfig = field(default_factory=MiddlewareConfig)
    proxy: ProxyConfig | None = None
    path: str | None = None


def _version(value: object) -> str:
    if value is None:
        raise ConfigError(f"required (write version: {VERSION})", ["version"])
    # YAML reads 0.1 as a number; distribution reads it as the string "0.1".
    text = str(value) if isinstance(value, str | float | int) and not isinstance(value, bool) else None
    if text != VERSION:
        raise ConfigError(f"unsupported version {value!r} (registryd reads version {VERSION})", ["version"])
    return text


def parseDocument(document: object, path: str | None = None) -> Configuration:
    """Validate a configuration document (the parsed YAML with overrides applied)."""
    values = parsers.mapping(document, [], allowNone=False)
    parsers.onlyKeys(values, SECTIONS, [])
    version = _version(values.get("version"))
    checkUnsupported(values)
    storage = parseStorage(values.get("storage"))
    redis = parseRedis(values.get("redis"))
    if storage.blobDescriptorCache == "redis" and redis is None:
        raise ConfigError(
            "the redis blob descriptor cache needs the redis section (redis.addr)",
            ["storage", "cache", storage.blobDescriptorCacheKey],
        )
    return Configuration(
        version=version,
        log=parseLog(values.get("log"), values.get("loglevel")),
        storage=storage,
        redis=redis,
        http=parseHTTP(values.get("http")),
        health=parseHealth(values.get("health")),
        auth=parseAuth(values.get("auth")),
        notifications=parseNotifications(values.get("notifications")),
        middleware=parseMiddleware(values.get("middleware")),
        proxy=parseProxy(values.get("proxy")),
        path=path,
    )


def asDocument(configuration: Configuration) -> Mapping[str, Any]:
    """Summarise the effective settings as distribution-shaped keys, for start-up logs (no secrets)."""
    return {
        "storage": configuration.storage.driver,
        "http.addr": configuration.http.addr,
        "http.net": configuration.http.net,
        "http.prefix": configuration.http.prefix or "/",
        "storage.delete.enabled": configuration.storage.deleteEnabled,
        "storage.maintenance.readonly.enabled": configuration.storage.readOnly,
        "auth": configuration.auth.method or "none",
        "notifications.endpoints": [e.name for e in configuration.notifications.endpoints if not e.disabled],
        "proxy": describeProxy(configuration.proxy) if configuration.proxy is not None else None,
    }

"""
The C{redirect} storage middleware: blob downloads are sent to C{baseurl} plus the storage
path, a server in front of the same storage (a CDN, a web server over the filesystem root).
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from twisted.internet.defer import Deferred, fail, succeed

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.storage.interfaces import IStorageDriver, StorageDriverError
from registryd.storage.middleware.base import DriverMiddleware
from registryd.storage.paths import checkPath

NAME = "redirect"


def parseBaseURL(options: dict[str, Any], keyPath: parsers.KeyPath) -> tuple[str, str, str]:
    """C{options.baseurl} as (scheme, host[:port], path); ConfigError naming the key when absent or bad."""
    at = [*keyPath, "baseurl"]
    if options.get("baseurl") is None:
        raise ConfigError("required (the SCHEME://HOST[/PATH] that serves the blobs)", at)
    text = parsers.string(options["baseurl"], at)
    parts = urlsplit(text)
    if not parts.scheme:
        raise ConfigError(f"no scheme in {text!r} (expected e.g. https://example.com)", at)
    if not parts.netloc:
        raise ConfigError(f"no host in {text!r} (expected e.g. https://example.com)", at)
    return parts.scheme, parts.netloc, parts.path


class RedirectMiddleware(DriverMiddleware):
    """Answers every redirect with C{scheme://host} and C{basePath} joined to the storage path."""

    def __init__(self, driver: IStorageDriver, scheme: str, host: str, basePath: str = "") -> None:
        super().__init__(driver)
        self.scheme = scheme
        self.host = host
        self.basePath = basePath

    def redirectURL(self, method: str, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
        except StorageDriverError:
            return fail()
        # As distribution's path.Join(basePath, path): one slash between, none doubled.
        joined = posixpath.join("/", self.basePath.lstrip("/"), path.lstrip("/"))
        return succeed(urlunsplit((self.scheme, self.host, quote(joined, safe="/-_.~"), "", "")))


def create(
    driver: IStorageDriver, options: dict[str, Any], keyPath: parsers.KeyPath, clock: Any
) -> RedirectMiddleware:
    """The middleware from its C{options}; ConfigError naming C{<keyPath>.baseurl}."""
    parsers.onlyKeys(options, ("baseurl",), keyPath)
    scheme, host, basePath = parseBaseURL(options, keyPath)
    return RedirectMiddleware(driver, scheme, host, basePath)


__all__ = ["NAME", "RedirectMiddleware", "create", "parseBaseURL"]

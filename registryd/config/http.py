"""The C{http} section, and how its C{addr}/C{net} become a Twisted endpoint string."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.config.tls import TLSConfig, parseTLS

NETWORKS = ("tcp", "tcp4", "tcp6", "unix")

_UNSUPPORTED = {
    "http2": "HTTP/2",
    "h2c": "HTTP/2 cleartext (h2c)",
}


@dataclass(frozen=True)
class DebugConfig:
    """C{http.debug}: the debug listener (C{/debug/health}, and Prometheus metrics when enabled)."""

    addr: str
    prometheusEnabled: bool = False
    prometheusPath: str = "/metrics"

    def endpoint(self) -> str:
        """The server endpoint description of C{addr} (always TCP, as distribution)."""
        return endpointDescription(self.addr, "tcp")


def parseDebug(section: object) -> DebugConfig | None:
    """Read http.debug; None when it names no address (distribution then starts no debug server)."""
    path = ["http", "debug"]
    values = parsers.mapping(section, path)
    parsers.onlyKeys(values, ("addr", "prometheus"), path)
    addr = parsers.optional(values, "addr", parsers.string, "", path)
    prometheusPath = [*path, "prometheus"]
    prometheus = parsers.mapping(values.get("prometheus"), prometheusPath)
    parsers.onlyKeys(prometheus, ("enabled", "path"), prometheusPath)
    enabled = parsers.optional(prometheus, "enabled", parsers.boolean, False, prometheusPath)
    metricsPath = parsers.optional(prometheus, "path", parsers.string, "/metrics", prometheusPath)
    if not metricsPath.startswith("/") or metricsPath.rstrip("/") in ("", "/debug/health"):
        raise ConfigError(
            f"must be an absolute path other than / and /debug/health, got {metricsPath!r}",
            [*prometheusPath, "path"],
        )
    if not addr:
        if enabled:
            raise ConfigError("is required to serve prometheus metrics", [*path, "addr"])
        return None
    splitHostPort(addr, [*path, "addr"])  # validates now, naming http.debug.addr
    return DebugConfig(addr=addr, prometheusEnabled=enabled, prometheusPath=metricsPath)


@dataclass(frozen=True)
class HTTPConfig:
    """Where to listen and how the API builds URLs and headers."""

    addr: str = ":5000"
    net: str = "tcp"
    prefix: str = ""
    host: str | None = None
    relativeURLs: bool = False
    secret: str | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)
    drainTimeout: float = 0.0
    tls: TLSConfig | None = None
    debug: DebugConfig | None = None
    workers: int = 1
    """C{workers}: processes serving the listening socket (the main one and C{workers - 1} children)."""

    def endpoint(self) -> str:
        """The server endpoint description for L{serverFromString}, e.g. C{tcp:5000:interface=127.0.0.1}."""
        return endpointDescription(self.addr, self.net)


def _escape(value: str) -> str:
    """Escape the characters strports treats specially."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def splitHostPort(addr: str, keyPath: list[str]) -> tuple[str, int]:
    """Split Go's HOST:PORT (':5000', 'localhost:5000', '[::1]:5000') into host and port."""
    if addr.startswith("["):
        close = addr.find("]")
        if close < 0 or not addr[close + 1 :].startswith(":"):
            raise ConfigError(f"invalid address {addr!r} (expected [HOST]:PORT)", keyPath)
        host, portText = addr[1:close], addr[close + 2 :]
    else:
        host, sep, portText = addr.rpartition(":")
        if not sep:
            raise ConfigError(f"invalid address {addr!r} (expected HOST:PORT or :PORT)", keyPath)
        if ":" in host:
            raise ConfigError(f"invalid address {addr!r} (write IPv6 hosts as [HOST]:PORT)", keyPath)
    if not portText.isdigit() or not 0 <= int(portText) <= 65535:
        raise ConfigError(f"invalid port {portText!r} in address {addr!r}", keyPath)
    return host, int(portText)


def endpointDescription(addr: str, net: str = "tcp") -> str:
    """Turn distribution's http.addr and http.net into a Twisted server endpoint string."""
    if net == "unix":
        if not addr:
            raise ConfigError("a unix socket needs a path", ["http", "addr"])
        return f"unix:{_escape(addr)}"
    host, port = splitHostPort(addr, ["http", "addr"])
    ipv6 = net == "tcp6" or ":" in host
    if net == "tcp4" and ":" in host:
        raise ConfigError(f"an IPv6 host does not fit http.net tcp4: {addr!r}", ["http", "addr"])
    if ipv6:
        return f"tcp6:{port}:interface={_escape(host or '::')}"
    if net == "tcp4" and not host:
        host = "0.0.0.0"
    if host:
        return f"tcp:{port}:interface={_escape(host)}"
    return f"tcp:{port}"


def _headers(value: object) -> dict[str, list[str]]:
    values = parsers.mapping(value, ["http", "headers"])
    headers: dict[str, list[str]] = {}
    for name, headerValues in values.items():
        path = ["http", "headers", name]
        if isinstance(headerValues, str):
            headerValues = [headerValues]
        if not isinstance(headerValues, list):
            raise ConfigError(f"expected a list of values, got {parsers.typeName(headerValues)}", path)
        for item in headerValues:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise ConfigError(f"header values must be strings, got {parsers.typeName(item)}", path)
            if "\r" in str(item) or "\n" in str(item):
                raise ConfigError("header values must not contain line breaks", path)
        headers[name] = [str(item) for item in headerValues]
    return headers


def parseHTTP(section: object) -> HTTPConfig:
    """Read the http section."""
    values = parsers.mapping(section, ["http"])
    parsers.onlyKeys(
        values,
        (
            "addr",
            "net",
            "prefix",
            "host",
            "secret",
            "relativeurls",
            "draintimeout",
            "headers",
            "tls",
            "debug",
            "workers",
            *_UNSUPPORTED,
        ),
        ["http"],
    )
    for key, what in _UNSUPPORTED.items():
        parsers.notSupported(values.get(key), ["http", key], what)

    def optional(key: str, parse: Any, default: Any) -> Any:
        return parsers.optional(values, key, parse, default, ["http"])

    net = optional("net", parsers.string, "tcp")
    if net not in NETWORKS:
        raise ConfigError(f"unknown network {net!r} (one of {', '.join(NETWORKS)})", ["http", "net"])
    addr = optional("addr", parsers.string, ":5000")
    endpointDescription(addr, net)  # validates the address now, naming http.addr

    prefix = optional("prefix", parsers.string, "")
    if prefix:
        # distribution wants "/path/"; be lenient about the slashes but store one canonical form.
        prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else ""

    host = optional("host", parsers.string, None)
    if host is not None:
        if not host.startswith(("http://", "https://")) or len(host.split("://", 1)[1]) == 0:
            example = "https://registry.example.com"
            raise ConfigError(f"must be an absolute URL such as {example}, got {host!r}", ["http", "host"])
        host = host.rstrip("/")

    secret = optional("secret", parsers.string, None)
    if secret == "":
        secret = None

    return HTTPConfig(
        addr=addr,
        net=net,
        prefix=prefix,
        host=host,
        relativeURLs=optional("relativeurls", parsers.boolean, False),
        secret=secret,
        headers=_headers(values.get("headers")),
        drainTimeout=optional("draintimeout", lambda v, p: parsers.duration(v, p, bareUnit=1e-9), 0.0),
        tls=parseTLS(values.get("tls")),
        debug=parseDebug(values.get("debug")),
        workers=optional("workers", lambda v, p: parsers.integer(v, p, minimum=1), 1),
    )

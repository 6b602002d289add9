"""
The C{proxy} section: registryd as a pull-through cache of upstream registries.

distribution's keys: C{remoteurl}, C{username}, C{password}, C{ttl} (a Go duration, 168h by
default, C{0}: cached tags never need re-validation); C{exec} (credential helpers) is not
supported. Ours: C{upstreams}, a list of C{{prefix, remoteurl, username, password, ttl,
cacertificates}} choosing the upstream by repository-name prefix (the longest prefix wins,
and is stripped from the name asked upstream), instead of a top-level C{remoteurl}; and
C{localrepositories}, glob patterns of repository names that are not proxied but pushed to
locally (C{*} matches across C{/}).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.registry.errors import NameInvalid
from registryd.registry.names import checkName


class _Prefixed(Protocol):
    prefix: str


P = TypeVar("P", bound=_Prefixed)

KEY = ["proxy"]
DEFAULT_TTL = 168 * 3600.0
_KEYS = ("remoteurl", "username", "password", "ttl", "exec", "upstreams", "localrepositories")
_UPSTREAM_KEYS = ("prefix", "remoteurl", "username", "password", "ttl", "cacertificates")


def longestPrefix(candidates: Sequence[P], name: str) -> P | None:
    """The candidate with the longest C{prefix} of name that still leaves a name, or None."""
    best = None
    for candidate in candidates:
        if name.startswith(candidate.prefix) and len(name) > len(candidate.prefix):
            if best is None or len(candidate.prefix) > len(best.prefix):
                best = candidate
    return best


def matchesAny(patterns: Iterable[str], name: str) -> bool:
    """True when name matches one of the glob patterns (C{*} matching across C{/})."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class UpstreamConfig:
    """
    One upstream registry.

    @ivar prefix: the repository-name prefix it serves, ending in C{/}; C{""} for every name
        (distribution's single C{proxy.remoteurl}).
    @ivar ttl: seconds a cached tag is served before it is re-validated upstream; 0 for never.
    @ivar caCertificates: PEM files trusted for its TLS instead of the system's, or ().
    """

    remoteURL: str
    prefix: str = ""
    username: str | None = None
    password: str | None = None
    ttl: float = DEFAULT_TTL
    caCertificates: tuple[str, ...] = ()

    def upstreamName(self, name: str) -> str:
        """The repository name asked upstream: name without the prefix."""
        return name[len(self.prefix) :]


@dataclass(frozen=True)
class ProxyConfig:
    """The upstreams (in the file's order) and the repositories kept local."""

    upstreams: tuple[UpstreamConfig, ...]
    localRepositories: tuple[str, ...] = ()

    def isLocal(self, name: str) -> bool:
        """True when pushes to name are allowed and it is never proxied."""
        return matchesAny(self.localRepositories, name)

    def upstreamFor(self, name: str) -> UpstreamConfig | None:
        """The upstream serving name (the longest prefix that leaves a name), or None."""
        return longestPrefix(self.upstreams, name)


def _url(value: object, keyPath: parsers.KeyPath) -> str:
    url = parsers.string(value, keyPath).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"expected an http:// or https:// URL, got {url!r}", keyPath)
    if parts.query or parts.fragment:
        raise ConfigError(f"the URL must not have a query or fragment, got {url!r}", keyPath)
    try:
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError:
        raise ConfigError(f"invalid port in {url!r}", keyPath) from None
    return url.rstrip("/")


def _prefix(value: object, keyPath: parsers.KeyPath) -> str:
    prefix = parsers.string(value, keyPath).strip().rstrip("/")
    try:
        checkName(prefix)
    except NameInvalid:
        raise ConfigError(
            f"expected a repository-name prefix such as 'docker.io/', got {value!r}", keyPath
        ) from None
    return prefix + "/"


def _paths(value: object, keyPath: parsers.KeyPath) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"expected a file path or a list of them, got {parsers.typeName(value)}", keyPath)
    return tuple(parsers.string(item, [*keyPath, str(i)]) for i, item in enumerate(items))


def _patterns(value: object, keyPath: parsers.KeyPath) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(
            f"expected a list of repository name patterns, got {parsers.typeName(value)}", keyPath
        )
    patterns = []
    for i, item in enumerate(items):
        pattern = parsers.string(item, [*keyPath, str(i)]).strip()
        if not pattern:
            raise ConfigError("empty pattern", [*keyPath, str(i)])
        patterns.append(pattern)
    return tuple(patterns)


def _text(section: dict[str, Any], key: str, keyPath: parsers.KeyPath) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    # A numeric password reads as a number in YAML; it is still the text the operator wrote.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return parsers.string(value, [*keyPath, key]) or None


def _upstream(section: dict[str, Any], keyPath: parsers.KeyPath, prefix: str, ttl: float) -> UpstreamConfig:
    if section.get("remoteurl") is None:
        raise ConfigError("required: the upstream registry's URL", [*keyPath, "remoteurl"])
    username = _text(section, "username", keyPath)
    password = _text(section, "password", keyPath)
    if password is not None and username is None:
        raise ConfigError("a password needs a username", [*keyPath, "username"])
    return UpstreamConfig(
        remoteURL=_url(section["remoteurl"], [*keyPath, "remoteurl"]),
        prefix=prefix,
        username=username,
        password=password,
        ttl=parsers.optional(section, "ttl", parsers.duration, ttl, keyPath),
        caCertificates=parsers.optional(section, "cacertificates", _paths, (), keyPath),
    )


def parseProxy(value: object) -> ProxyConfig | None:
    """Validate the proxy section; None when it is absent or empty (no pull-through cache)."""
    section = parsers.mapping(value, KEY)
    if not section:
        return None
    parsers.onlyKeys(section, _KEYS, KEY)
    parsers.notSupported(section.get("exec"), [*KEY, "exec"], "credential helpers (proxy.exec)")
    ttl = parsers.optional(section, "ttl", parsers.duration, DEFAULT_TTL, KEY)
    local = parsers.optional(section, "localrepositories", _patterns, (), KEY)
    entries = section.get("upstreams")
    if isinstance(entries, dict) and entries and all(str(key).isdigit() for key in entries):
        # REGISTRY_PROXY_UPSTREAMS_0_REMOTEURL without a list in the file builds {"0": {...}}.
        entries = [entries[key] for key in sorted(entries, key=int)]
    if entries is None:
        if section.get("remoteurl") is None:
            raise ConfigError(
                "required: the upstream registry's URL (or proxy.upstreams)", [*KEY, "remoteurl"]
            )
        return ProxyConfig((_upstream(section, KEY, "", ttl),), local)

    for key in ("remoteurl", "username", "password"):
        if section.get(key) is not None:
            raise ConfigError(
                "give either proxy.remoteurl or proxy.upstreams, not both (credentials go in each upstream)",
                [*KEY, key],
            )
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"expected a non-empty list of upstreams, got {parsers.typeName(entries)}", [*KEY, "upstreams"]
        )
    upstreams: list[UpstreamConfig] = []
    for index, entry in enumerate(entries):
        keyPath = [*KEY, "upstreams", str(index)]
        values = parsers.mapping(entry, keyPath, allowNone=False)
        parsers.onlyKeys(values, _UPSTREAM_KEYS, keyPath)
        if values.get("prefix") is None:
            raise ConfigError("required: the repository-name prefix, e.g. 'docker.io/'", [*keyPath, "prefix"])
        prefix = _prefix(values["prefix"], [*keyPath, "prefix"])
        if any(other.prefix == prefix for other in upstreams):
            raise ConfigError(f"prefix {prefix!r} is given twice", [*keyPath, "prefix"])
        upstreams.append(_upstream(values, keyPath, prefix, ttl))
    return ProxyConfig(tuple(upstreams), local)


def describeProxy(config: ProxyConfig) -> dict[str, str]:
    """Prefix -> remote URL, for start-up logs (no credentials)."""
    return {upstream.prefix or "*": upstream.remoteURL for upstream in config.upstreams}

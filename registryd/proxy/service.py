"""Building the pull-through cache from the C{proxy} section: one L{HTTPUpstream} per upstream."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from registryd.config.errors import ConfigError
from registryd.config.proxy import ProxyConfig
from registryd.proxy.store import ProxyRegistry, Route
from registryd.registry.core import Registry

log = Logger()


def pullThroughCache(config: ProxyConfig, core: Registry, reactor: Any) -> ProxyRegistry:
    """
    The cache over core (its C{close()} lets go of the upstreams' connections).
    @raise ConfigError: an upstream's CA certificates cannot be read (naming the key).
    """
    from registryd.proxy.upstream import HTTPUpstream

    routes = []
    for index, upstream in enumerate(config.upstreams):
        try:
            client = HTTPUpstream(
                reactor,
                upstream.remoteURL,
                upstream.username,
                upstream.password,
                caCertificates=upstream.caCertificates or None,
            )
        except ValueError as e:
            where = ["proxy", "upstreams", str(index)] if upstream.prefix else ["proxy"]
            raise ConfigError(str(e), [*where, "cacertificates"]) from None
        routes.append(Route(client, upstream.prefix, upstream.ttl))
        log.info(
            "pull-through cache: {names} from {url} (ttl {ttl:.0f}s{credentials})",
            names=f"{upstream.prefix}*" if upstream.prefix else "every repository",
            url=upstream.remoteURL,
            ttl=upstream.ttl,
            credentials=", with credentials" if upstream.username else "",
        )
    return ProxyRegistry(core, routes, reactor, localRepositories=config.localRepositories)

"""
The debug server (C{http.debug.addr}), on a listener of its own: C{/debug/health} answers
distribution's health report, and with C{http.debug.prometheus.enabled} the metrics path
(C{/metrics} by default) serves L{registryd.metrics} in Prometheus's text format (or
OpenMetrics, when the scraper asks for it). Keep it private: it tells more than the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.web.resource import Resource
from twisted.web.server import Site

from registryd.config.http import DebugConfig

HEALTH_PATH = b"/debug/health"


class DebugResource(Resource):
    """
    The debug server's pages.

    @param failing: returns each failing health check's name and reason (empty when healthy).
    @param metricsPath: where to serve metrics, or None when Prometheus is not enabled.
    """

    isLeaf = True

    def __init__(
        self,
        failing: Callable[[], dict[str, str]],
        metricsPath: str | None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        super().__init__()
        self._failing = failing
        self._metricsPath = None if metricsPath is None else metricsPath.encode("utf-8")
        self._registry = registry

    def render(self, request: Any) -> bytes:
        path = request.path
        if path == HEALTH_PATH and request.method in (b"GET", b"HEAD"):
            return self._health(request)
        if path == self._metricsPath and request.method in (b"GET", b"HEAD"):
            return self._metrics(request)
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"404 page not found\n"

    def _health(self, request: Any) -> bytes:
        # distribution's shape: {} and 200 while healthy, {"<check>": "<error>"} and 503 if not.
        failing = self._failing()
        body = json.dumps(failing, sort_keys=True).encode("utf-8")
        request.setResponseCode(503 if failing else 200)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        return body

    def _metrics(self, request: Any) -> bytes:
        accept = request.getHeader(b"accept")
        encoder, contentType = choose_encoder(accept.decode("latin-1") if accept else "")
        body = encoder(self._registry)
        request.setHeader(b"Content-Type", contentType.encode("latin-1"))
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        return body


class DebugListener(StreamServerEndpointService):
    """The debug server's listener; failing to listen stops start-up naming C{http.debug.addr}."""

    _raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            from registryd.service import ListenFailed

            raise ListenFailed(
                f"http.debug.addr: cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}"
            ) from e


def debugService(config: DebugConfig, failing: Callable[[], dict[str, str]], reactor: Any) -> DebugListener:
    """The debug server of C{http.debug}, not started."""
    metricsPath = config.prometheusPath if config.prometheusEnabled else None
    site = Site(DebugResource(failing, metricsPath), reactor=reactor)
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]  # scrapes are not API traffic
    return DebugListener(serverFromString(reactor, config.endpoint()), site)


__all__ = ["HEALTH_PATH", "DebugListener", "DebugResource", "debugService"]

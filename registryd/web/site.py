"""The twisted.web Site the registry listens with: request-wide concerns live here."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.web.resource import IResource
from twisted.web.server import Site

from registryd import metrics
from registryd.web.accesslog import CLIENT_CLOSED, logAccess, recordOf
from registryd.web.request import RegistryRequest

# The first byte of a TLS record carrying a handshake (a ClientHello, on a new connection).
_TLS_HANDSHAKE = 0x16
_TLS_ON_PLAIN_HTTP = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + (
    b"Client sent a TLS handshake to a plain-HTTP server.\n"
)


class RegistrySite(Site):
    """
    A Site whose requests stream their bodies (see L{RegistryRequest}), each counted in the
    metrics and written to the access log (unless C{accessLog} is false) when it ends.
    """

    requestFactory = RegistryRequest
    displayTracebacks = False

    def __init__(self, resource: IResource, *args: Any, accessLog: bool = True, **kwargs: Any) -> None:
        super().__init__(resource, *args, **kwargs)
        self.accessLog = accessLog

    def getResourceFor(self, request: Any) -> IResource:
        # Called as a request is dispatched (a streaming upload: as soon as its headers are in).
        request._registrydStarted = self.reactor.seconds()
        request.notifyFinish().addErrback(lambda _: self._record(request, CLIENT_CLOSED))
        return super().getResourceFor(request)

    def log(self, request: Any) -> None:
        """Count and log a request as its answer ends (twisted.web calls this from C{finish})."""
        self._record(request, None)

    def _record(self, request: Any, status: int | None) -> None:
        now = self.reactor.seconds()
        record = recordOf(request, getattr(request, "_registrydStarted", None), now, status)
        metrics.countRequest(record)
        if self.accessLog:
            logAccess(record, now)

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        channel = super().buildProtocol(addr)
        if channel is not None:
            _refuseTLSHandshake(channel)
        return channel


def _refuseTLSHandshake(channel: Protocol) -> None:
    """
    Answer a TLS ClientHello on a plain-HTTP connection with 400 at once.

    Clients told a registry is insecure (skopeo, podman, containerd) try TLS first and fall
    back to HTTP on any error; twisted.web alone would wait for a request line that never
    comes, and the client would sit out its handshake timeout before falling back.
    """
    original = channel.dataReceived
    originalMakeConnection = channel.makeConnection
    transports = []

    def makeConnection(transport: Any) -> None:
        transports.append(transport)
        originalMakeConnection(transport)

    def firstData(data: bytes) -> None:
        channel.dataReceived = original
        if data and data[0] == _TLS_HANDSHAKE and transports:
            transports[0].write(_TLS_ON_PLAIN_HTTP)
            transports[0].loseConnection()
            return
        original(data)

    channel.makeConnection = makeConnection
    channel.dataReceived = firstData

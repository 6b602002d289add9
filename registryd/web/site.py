"""The twisted.web Site the registry listens with: request-wide concerns live here."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.web.resource import IResource
from twisted.web.server import Site

from registryd.web.request import RegistryRequest

# The first byte of a TLS record carrying a handshake (a ClientHello, on a new connection).
_TLS_HANDSHAKE = 0x16
_TLS_ON_PLAIN_HTTP = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + (
    b"Client sent a TLS handshake to a plain-HTTP server.\n"
)


class RegistrySite(Site):
    """A Site whose requests stream their bodies (see L{RegistryRequest})."""

    requestFactory = RegistryRequest
    displayTracebacks = False

    def __init__(self, resource: IResource, *args: Any, **kwargs: Any) -> None:
        super().__init__(resource, *args, **kwargs)

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

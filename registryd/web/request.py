"""
A twisted.web Request that streams request bodies instead of spooling them.

twisted.web reads a whole body (into memory, or a temporary file past 100 kB) before it
even looks up the resource. For a registry that is the wrong way round: a layer can be
many GiB. L{RegistryRequest} therefore dispatches a request with a body to its route as
soon as the headers are in, with C{request.content} an L{IBodyStream} that the route pulls
chunks from while the socket is still delivering them. The socket is paused while more
than a few MiB wait to be read, so memory stays flat whatever the body size.

A route that answers before it read the whole body (an error, say) is allowed: the rest of
the body is read and dropped before the request is finished, so the connection stays in
step for the next request.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from twisted.internet import reactor as globalReactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import _ChunkedTransferDecoder
from twisted.web.server import Request
from zope.interface import implementer

from registryd.registry.interfaces import IBodyStream
from registryd.web.chunked import ChunkedBodyDecoder

# Above this much unread body the socket is paused; it resumes below the low mark. Two reads
# ahead keep the upload busy: more only holds memory (4 MiB cost 5 MiB of peak RSS, no speed).
HIGH_WATER = 2 << 20
LOW_WATER = 1 << 20
# How much the socket may hand over per recv on a streaming request (twisted's default is 64 KiB):
# fewer, larger reads mean fewer Python calls per GiB.
RECEIVE_BUFFER = 1 << 20
# One read() returns at most this much, joined from what arrived. No more than a receive: a
# full read is then handed on as it came, and joining (copying) only happens for short reads.
READ_CHUNK = 1 << 20


@implementer(IBodyStream)
class StreamingBody:
    """
    The body of one request as it arrives: the channel writes, the route reads.

    Also answers the few file-like calls twisted.web makes on C{request.content}
    (C{seek}, C{tell}, C{close}).
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = 0
        self._paused = False
        self._waiting: Deferred | None = None
        self._failure: Failure | None = None
        self._discarding = False
        self.finished = False

    @property
    def received(self) -> int:
        """Bytes of body that arrived so far."""
        return self._received

    # The channel's side.

    def write(self, data: bytes) -> None:
        """Take a chunk from the network."""
        self._received += len(data)
        if self._discarding or not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._waiting is not None:
            self._deliver()
        # Always re-pause while over the mark: the channel resumes the transport on its own
        # when its send buffer drains, so our own flag alone cannot be trusted.
        if self._buffered > HIGH_WATER:
            self._pause()

    def end(self) -> None:
        """The whole body arrived."""
        self.finished = True
        self._resume()
        if self._waiting is not None:
            self._deliver()

    def lose(self, reason: Failure) -> None:
        """The connection went away before the body ended."""
        if self.finished:
            return
        self._failure = reason
        self._chunks.clear()
        self._buffered = 0
        if self._waiting is not None:
            d, self._waiting = self._waiting, None
            d.errback(reason)

    def discard(self) -> None:
        """The route is done with the body: drop what is buffered and what is still to come."""
        self._discarding = True
        self._chunks.clear()
        self._buffered = 0
        self._resume()

    # The route's side.

    def read(self) -> Deferred:
        """@return: Deferred firing with the next chunk, or b"" at the end."""
        if self._failure is not None:
            return fail(self._failure)
        if self._waiting is not None:
            return fail(RuntimeError("read() called while a read is outstanding"))
        if self._chunks or self.finished:
            return succeed(self._take())
        self._waiting = Deferred()
        return self._waiting

    def _deliver(self) -> None:
        d, self._waiting = self._waiting, None
        d.callback(self._take())

    def _take(self) -> bytes:
        if not self._chunks:
            return b""
        if len(self._chunks) == 1 or len(self._chunks[0]) >= READ_CHUNK:
            data = bytes(self._chunks.popleft())  # a slice of a receive (chunked bodies) becomes bytes
        else:
            parts = []
            size = 0
            while self._chunks and size + len(self._chunks[0]) <= READ_CHUNK:
                part = self._chunks.popleft()
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        self._buffered -= len(data)
        if self._buffered < LOW_WATER:
            self._resume()
        return data

    def _pause(self) -> None:
        if self._transport is not None:
            self._transport.pauseProducing()
            self._paused = True

    def _resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resumeProducing()

    # What twisted.web's Request does with content.

    def seek(self, offset: int, whence: int = 0) -> None:
        """twisted.web rewinds content before processing; a stream has nothing to rewind."""

    def tell(self) -> int:
        return self._received

    def close(self) -> None:
        """Called when the request is cleaned up, or the connection is lost."""
        if not self.finished:
            self.lose(Failure(ConnectionLost("request body closed before it ended")))
        self._transport = None


class RegistryRequest(Request):
    """
    A Request that hands a body to its route while it is still arriving.

    Every request with a body is dispatched early; body-less requests go the usual way.
    """

    log = Logger()
    reactor = globalReactor

    _earlyDispatch = False
    _finishWhenBodyEnds = False

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        _rememberHost(channel)
        super().__init__(channel, *args, **kwargs)
        # Names the request in logs and in notification events (distribution's request.id).
        self.requestID = str(uuid.uuid4())

    def gotLength(self, length: int | None) -> None:
        channel = self.channel
        if length == 0 or not hasattr(channel, "_command"):
            super().gotLength(length)
            return
        transport = getattr(channel, "transport", None)
        if transport is not None and hasattr(transport, "bufferSize"):
            transport.bufferSize = max(transport.bufferSize, RECEIVE_BUFFER)
        decoder = getattr(channel, "_transferDecoder", None)
        if type(decoder) is _ChunkedTransferDecoder:
            # Chunk data handed on as slices of what arrived, not copied twice (registryd.web.chunked).
            channel._transferDecoder = ChunkedBodyDecoder(decoder.dataCallback, decoder.finishCallback)
        self.content = StreamingBody(transport)
        self._earlyDispatch = True
        command, path, version = channel._command, channel._path, channel._version
        # Dispatch on the next turn: twisted.web sends "100 Continue" right after gotLength,
        # and it must go out before any answer the route might give at once.
        self.reactor.callLater(0, self._dispatch, command, path, version)

    def _dispatch(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._disconnected:
            return
        # A form body is never parsed: that would read the stream whole.
        self._parsePOSTFormSubmission = False
        Request.requestReceived(self, command, path, version)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._earlyDispatch:
            super().requestReceived(command, path, version)
            return
        # The channel tells us the body ended; the route is (or will be) running already.
        body = self.content
        body.end()
        if self._finishWhenBodyEnds:
            self._finishWhenBodyEnds = False
            super().finish()

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            # twisted.web names itself and its version in every answer; distribution names nothing.
            self.responseHeaders.removeHeader(b"Server")
        super().write(data)

    def finish(self) -> None:
        body = self.content
        if self._earlyDispatch and isinstance(body, StreamingBody) and not body.finished:
            if self._disconnected:
                return
            # Answer now, but let the channel read the rest of the body before it moves on.
            if not self.startedWriting:
                self.write(b"")
            body.discard()
            self._finishWhenBodyEnds = True
            return
        super().finish()

    def connectionLost(self, reason: Failure) -> None:
        body = self.content
        if isinstance(body, StreamingBody):
            body.lose(reason)
        super().connectionLost(reason)


def _rememberHost(channel: Any) -> None:
    """
    Have the channel give its local address from memory after the first request: twisted.web
    asks for it for every request, a getsockname system call each time (4% of a blob HEAD's
    time in the reactor), and it does not change while a connection lasts.
    """
    if getattr(channel, "_registrydHost", None) is not None or not hasattr(channel, "getHost"):
        return
    channel._registrydHost = host = channel.getHost()
    channel.getHost = lambda: host


def requestIDOf(request: Any) -> str:
    """The id of a request (made here for requests a L{RegistryRequest} did not carry, e.g. in tests)."""
    requestID = getattr(request, "requestID", None)
    if requestID is None:
        requestID = str(uuid.uuid4())
        request.requestID = requestID
    return requestID

"""
Streaming stored bytes to a client: a push producer over an L{IFileReader} that stops
reading while the transport is paused and closes the reader once done, failed or
abandoned (client gone, route cancelled).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from zope.interface import implementer

from registryd import memory

log = Logger(namespace="registryd.api")

SEND_LIMIT = 1 << 20
"""How much a download hands the socket per send (twisted.internet.tcp's default is 128 KiB)."""


class ShortContent(Exception):
    """The stored content ended before the length the response promised."""


class ClientGone(Exception):
    """The connection closed before the content was sent: nobody is left to answer."""


@implementer(IPushProducer)
class ReaderProducer:
    """
    Copy C{length} bytes from an L{IFileReader} to a request, one chunk in flight at a time.

    C{done} fires None once all bytes are written, or fails (L{ShortContent}, a read
    error); cancelling it stops the copy and closes the reader.
    """

    def __init__(self, request: IRequest, reader: object, length: int) -> None:
        self._request = request
        self._reader = reader
        self._length = self._remaining = length
        self._paused = False
        self._reading = False
        self._inPump = False
        self._stopped = False
        self.done: Deferred[None] = Deferred(lambda _: self._stop())

    def start(self) -> Deferred[None]:
        """Register with the request and start copying. @return: C{done}."""
        transport = getattr(getattr(self._request, "channel", None), "transport", None)
        if transport is not None and getattr(transport, "SEND_LIMIT", SEND_LIMIT) < SEND_LIMIT:
            # A TCP transport sends at most SEND_LIMIT (128 KiB) per turn of the reactor: a GiB
            # would take 8,192 turns.
            transport.SEND_LIMIT = SEND_LIMIT
        self._request.registerProducer(self, True)
        self._pump()
        return self.done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The connection went away: stop, and let whoever waits know."""
        if not self._stopped:
            self._end(Failure(ClientGone()))

    def _pump(self) -> None:
        # A loop rather than recursion: readers whose Deferreds have already fired would
        # otherwise nest one call per chunk.
        if self._inPump:
            return
        self._inPump = True
        try:
            while not (self._reading or self._paused or self._stopped):
                if self._remaining <= 0:
                    self._end(None)
                    return
                self._reading = True
                maybeDeferred(self._reader.read).addCallbacks(self._gotChunk, self._failed)
        finally:
            self._inPump = False

    def _gotChunk(self, chunk: bytes) -> None:
        self._reading = False
        if self._stopped:
            return
        if not chunk:
            self._end(Failure(ShortContent(f"{self._remaining} bytes missing")))
            return
        if len(chunk) > self._remaining:
            chunk = chunk[: self._remaining]
        self._remaining -= len(chunk)
        # May call pauseProducing synchronously when the transport's buffer fills.
        self._request.write(chunk)
        self._pump()

    def _failed(self, failure: Failure) -> None:
        self._reading = False
        if not self._stopped:
            self._end(failure)

    def _stop(self) -> None:
        """done was cancelled."""
        if not self._stopped:
            self._stopped = True
            self._release()

    def _end(self, result: Failure | None) -> None:
        self._stopped = True
        self._release()
        memory.transferEnded(self._length - self._remaining)
        if not self.done.called:
            if result is None:
                self.done.callback(None)
            else:
                self.done.errback(result)

    def _release(self) -> None:
        try:
            self._request.unregisterProducer()
        except Exception:
            # The request may already be finished or the channel gone.
            pass
        closing = maybeDeferred(self._reader.close)
        closing.addErrback(lambda f: log.failure("closing a blob reader", f))


def sendContent(request: IRequest, reader: object, length: int) -> Deferred[None]:
    """Stream C{length} bytes of reader to request. @return: Deferred firing once sent."""
    return ReaderProducer(request, reader, length).start()

"""
An upstream response body read chunk by chunk with back-pressure: the connection is paused
while the reader has not asked for more, so at most a couple of chunks wait in memory however
fast the upstream sends and however slowly the cache writes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from registryd.proxy.interfaces import UpstreamUnavailable

#: The transport is paused once this many chunks wait unread.
HIGH_WATER_CHUNKS = 2


class BodyStream(Protocol):
    """
    Receives one response body for a single reader calling L{read} in turn.

    @ivar received: bytes received so far.
    @ivar mostQueued: the most chunks that ever waited unread (what back-pressure bounds).
    """

    def __init__(
        self, reactor: IReactorTime, expectedLength: int | None, idleTimeout: float, description: str
    ) -> None:
        self._reactor = reactor
        self._expectedLength = expectedLength
        self._idleTimeout = idleTimeout
        self._description = description
        self._queue: deque[bytes] = deque()
        self._waiting: Deferred | None = None
        self._ended: Failure | None = None
        self._paused = False
        self._timer: IDelayedCall | None = None
        self.received = 0
        self.mostQueued = 0

    # -- the producer side ---------------------------------------------------------------

    def connectionMade(self) -> None:
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        if self._ended is not None:
            return
        self.received += len(data)
        if self._expectedLength is not None and self.received > self._expectedLength:
            self._abort(f"sent more than its Content-Length of {self._expectedLength} bytes")
            return
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._arm()
            waiting.callback(data)
            return
        self._queue.append(data)
        self.mostQueued = max(self.mostQueued, len(self._queue))
        if len(self._queue) >= HIGH_WATER_CHUNKS and not self._paused:
            # The reader is behind: stop reading the socket, so TCP slows the upstream down.
            self._paused = True
            self._disarm()
            self.transport.pauseProducing()
        else:
            self._arm()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self._disarm()
        if self._ended is None:
            self._ended = self._outcome(reason)
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._deliver(waiting)

    def _outcome(self, reason: Failure) -> Failure:
        """What the end of the body means: ResponseDone when it is whole, else the failure to report."""
        if reason.check(ResponseDone, PotentialDataLoss):
            if self._expectedLength is None or self.received == self._expectedLength:
                return Failure(ResponseDone())
            return self._failure(f"ended after {self.received} of {self._expectedLength} bytes")
        if reason.check(UpstreamUnavailable):
            return reason
        detail = reason.getErrorMessage()
        reasons = getattr(reason.value, "reasons", None)
        if reasons:
            detail = "; ".join(r.getErrorMessage() for r in reasons)
        return self._failure(f"broke after {self.received} bytes: {detail}")

    def _failure(self, message: str) -> Failure:
        return Failure(UpstreamUnavailable(f"{self._description}: {message}"))

    # -- the idle timeout ----------------------------------------------------------------

    def _arm(self) -> None:
        """(Re)start the idle timer: the upstream owes us data while we are not paused."""
        if self._ended is not None or self._paused:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._idleTimeout)
        else:
            self._timer = self._reactor.callLater(self._idleTimeout, self._idle)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _idle(self) -> None:
        self._timer = None
        self._abort(f"sent nothing for {self._idleTimeout:g} s")

    def _abort(self, message: str) -> None:
        self._ended = self._failure(message)
        self._queue.clear()
        self._stop()

    def _stop(self) -> None:
        self._disarm()
        if self.transport is not None:
            if self._paused:
                self._paused = False
                self.transport.resumeProducing()
            self.transport.stopProducing()

    # -- the reader side -----------------------------------------------------------------

    def _deliver(self, waiting: Deferred) -> None:
        assert self._ended is not None
        if self._ended.check(ResponseDone):
            waiting.callback(b"")
        else:
            waiting.errback(self._ended)

    def read(self) -> Deferred:
        """The next chunk, b"" at the end; fails with L{UpstreamUnavailable} if the body broke."""
        if self._waiting is not None:
            return fail(RuntimeError("read() while a read is pending"))
        if self._ended is not None and not self._ended.check(ResponseDone):
            return fail(self._ended)
        if self._queue:
            chunk = self._queue.popleft()
            if not self._queue and self._paused and self._ended is None:
                self._paused = False
                self.transport.resumeProducing()
                self._arm()
            return succeed(chunk)
        if self._ended is not None:
            return succeed(b"")
        self._waiting = Deferred()
        return self._waiting

    def cancel(self) -> None:
        """Abandon the body and close the connection; later reads fail."""
        if self._ended is None:
            self._ended = self._failure("transfer cancelled")
            self._queue.clear()
            self._stop()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._deliver(waiting)

    async def readAll(self, limit: int) -> bytes:
        """A whole small body (a manifest, an error); L{UpstreamUnavailable} past C{limit} bytes."""
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read():
            size += len(chunk)
            if size > limit:
                self.cancel()
                raise UpstreamUnavailable(f"{self._description}: body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


def streamBody(reactor: IReactorTime, response: Any, idleTimeout: float, description: str) -> BodyStream:
    """A L{BodyStream} receiving C{response}'s body, checked against its Content-Length."""
    length = response.length if isinstance(response.length, int) else None
    stream = BodyStream(reactor, length, idleTimeout, description)
    response.deliverBody(stream)
    return stream

"""
The retrying sink: keeps writing a batch to its sink until the sink accepts it, with a
breaker that backs off after C{threshold} consecutive failures.

Policy (distribution's, kept on purpose): after a failure the batch is retried at once
while fewer than C{threshold} failures happened in a row; from the C{threshold}-th on, each
further attempt waits C{backoff}. The back-off is fixed, not growing: a receiver that
comes back is noticed within one C{backoff}, and a dead one still gets at most one attempt
per C{backoff}. One success closes the breaker. A batch is never given up on: only
cancelling the write (the queue dropped the batch at its bound, or the service stops)
ends the retries, so no event is lost while the queue's bound holds.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from registryd.notifications.interfaces import INotificationSink, SinkClosed


@implementer(INotificationSink)
class RetryingSink:
    """
    Wraps a sink: C{write} fires once the wrapped sink accepted the batch, however many tries it took.

    @ivar failures: consecutive failed attempts now (the breaker is open from C{threshold} on).
    @ivar failedAttempts: failed attempts since start-up.
    @ivar failedEvents: events in failed attempts since start-up (a batch of 3 failing twice counts 6).
    """

    log = Logger()

    def __init__(
        self, sink: INotificationSink, threshold: int, backoff: float, clock: IReactorTime, name: str = ""
    ) -> None:
        self._sink = sink
        self.threshold = threshold
        self.backoff = backoff
        self._clock = clock
        self.name = name or repr(sink)
        self.failures = 0
        self.failedAttempts = 0
        self.failedEvents = 0
        self._closed = False
        self._current: Deferred | None = None

    @property
    def backingOff(self) -> bool:
        """Whether the next attempt waits C{backoff} first (the breaker is open)."""
        return self.failures > 0 and self.failures >= self.threshold

    def write(self, events: list[dict[str, Any]]) -> Deferred:
        """Deliver events, retrying; @return: Deferred firing once delivered (cancel to give up)."""
        if self._closed:
            return fail(SinkClosed(self.name))
        d = Deferred.fromCoroutine(self._deliver(events))
        self._current = d

        def done(result: object) -> object:
            if self._current is d:
                self._current = None
            return result

        d.addBoth(done)
        return d

    async def _deliver(self, events: list[dict[str, Any]]) -> None:
        while True:
            if self.backingOff:
                await deferLater(self._clock, self.backoff, lambda: None)
            try:
                await self._sink.write(events)
            except CancelledError:
                raise
            except Exception as e:
                if self._closed:
                    raise SinkClosed(self.name) from e
                self._failed(events, e)
                continue
            if self.failures >= max(self.threshold, 1):
                self.log.info(
                    "{sink}: delivering again after {count} failures", sink=self.name, count=self.failures
                )
            self.failures = 0
            return

    def _failed(self, events: list[dict[str, Any]], error: Exception) -> None:
        self.failures += 1
        self.failedAttempts += 1
        self.failedEvents += len(events)
        if self.failures == self.threshold or (self.threshold == 0 and self.failures == 1):
            self.log.error(
                "{sink}: {count} failures in a row, backing off {backoff}s between attempts: {error}",
                sink=self.name,
                count=self.failures,
                backoff=self.backoff,
                error=error,
            )
        elif self.backingOff:
            self.log.debug(
                "{sink}: still failing ({count} in a row): {error}",
                sink=self.name,
                count=self.failures,
                error=error,
            )
        else:
            self.log.warn(
                "{sink}: error writing {n} events, retrying: {error}",
                sink=self.name,
                n=len(events),
                error=error,
            )

    def close(self) -> Deferred:
        """Abandon the write in flight (its events stay queued) and close the wrapped sink."""
        self._closed = True
        if self._current is not None:
            self._current.cancel()
        return self._sink.close()

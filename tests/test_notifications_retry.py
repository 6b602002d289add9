"""The retrying sink: retries at once below the threshold, then one attempt per backoff; never gives up."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from registryd.notifications.interfaces import DeliveryFailed, INotificationSink, SinkClosed
from registryd.notifications.retry import RetryingSink


@implementer(INotificationSink)
class ScriptedSink:
    """Fails the first C{failing} writes, then accepts; or hangs when told to."""

    def __init__(self, failing: int = 0, hang: bool = False) -> None:
        self.failing = failing
        self.hang = hang
        self.attempts: list[list[dict[str, Any]]] = []
        self.accepted: list[list[dict[str, Any]]] = []
        self.pending: list[Deferred] = []
        self.cancelled: list[Deferred] = []
        self.closed = False

    def write(self, events: list[dict[str, Any]]) -> Deferred:
        self.attempts.append(events)
        if self.hang:
            d: Deferred = Deferred(self.cancelled.append)
            self.pending.append(d)
            return d
        if len(self.attempts) <= self.failing:
            return fail(DeliveryFailed("scripted", "refused"))
        self.accepted.append(events)
        return succeed(None)

    def close(self) -> Deferred:
        self.closed = True
        return succeed(None)


class RetryingSinkTests(TestCase):
    def make(self, sink: ScriptedSink, threshold: int = 3, backoff: float = 5.0) -> RetryingSink:
        self.clock = Clock()
        return RetryingSink(sink, threshold, backoff, self.clock, name="test")

    def test_provides_the_interface(self) -> None:
        verifyObject(INotificationSink, self.make(ScriptedSink()))

    def test_retries_at_once_below_the_threshold(self) -> None:
        sink = ScriptedSink(failing=2)
        retrying = self.make(sink, threshold=3)
        d = retrying.write([{"id": "1"}])
        self.assertEqual(len(sink.attempts), 3)
        self.successResultOf(d)
        self.assertEqual(sink.accepted, [[{"id": "1"}]])
        self.assertEqual((retrying.failures, retrying.failedAttempts, retrying.failedEvents), (0, 2, 2))

    def test_backs_off_after_threshold_failures_in_a_row(self) -> None:
        sink = ScriptedSink(failing=5)
        retrying = self.make(sink, threshold=3, backoff=5.0)
        d = retrying.write([{"id": "1"}, {"id": "2"}])
        self.assertEqual(len(sink.attempts), 3)
        self.assertTrue(retrying.backingOff)
        self.clock.advance(4.9)
        self.assertEqual(len(sink.attempts), 3, "no attempt before the backoff passed")
        self.clock.advance(0.1)
        self.assertEqual(len(sink.attempts), 4)
        self.clock.advance(5.0)
        self.assertEqual(len(sink.attempts), 5, "the backoff stays fixed")
        self.assertNoResult(d)
        self.clock.advance(5.0)
        self.successResultOf(d)
        self.assertEqual(len(sink.accepted), 1)
        self.assertFalse(retrying.backingOff, "one success closes the breaker")
        self.assertEqual(retrying.failedEvents, 10)

    def test_open_breaker_delays_the_next_batch_too(self) -> None:
        sink = ScriptedSink(failing=3, hang=False)
        retrying = self.make(sink, threshold=1, backoff=2.0)
        first = retrying.write([{"id": "1"}])
        self.assertEqual(len(sink.attempts), 1)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        second = retrying.write([{"id": "2"}])
        self.assertEqual(len(sink.attempts), 1, "the breaker is still open")
        self.clock.advance(2.0)
        self.clock.advance(2.0)
        self.clock.advance(2.0)
        self.successResultOf(second)
        self.assertEqual(sink.accepted, [[{"id": "2"}]])

    def test_threshold_zero_backs_off_after_every_failure(self) -> None:
        sink = ScriptedSink(failing=1)
        retrying = self.make(sink, threshold=0, backoff=1.0)
        d = retrying.write([{"id": "1"}])
        self.assertEqual(len(sink.attempts), 1)
        self.clock.advance(1.0)
        self.successResultOf(d)

    def test_cancel_stops_retrying(self) -> None:
        sink = ScriptedSink(failing=100)
        retrying = self.make(sink, threshold=1, backoff=1.0)
        d = retrying.write([{"id": "1"}])
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.clock.advance(10)
        self.assertEqual(len(sink.attempts), 1)

    def test_cancel_reaches_the_attempt_in_flight(self) -> None:
        sink = ScriptedSink(hang=True)
        retrying = self.make(sink)
        d = retrying.write([{"id": "1"}])
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(sink.cancelled, sink.pending)

    def test_close_abandons_the_write_and_closes_the_sink(self) -> None:
        sink = ScriptedSink(hang=True)
        retrying = self.make(sink)
        d = retrying.write([{"id": "1"}])
        self.successResultOf(retrying.close())
        self.assertTrue(sink.closed)
        self.failureResultOf(d, CancelledError)
        self.assertEqual(sink.cancelled, sink.pending)
        self.failureResultOf(retrying.write([{"id": "2"}]), SinkClosed)

"""
The notification service: ignore rules, durable queues, ordered delivery with retries,
restart with a backlog, the bound, and a broadcast that never waits for a receiver.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from registryd.config.errors import ConfigError
from registryd.config.notifications import (
    EndpointConfig,
    NotificationsConfig,
    QueueConfig,
    parseNotifications,
)
from registryd.notifications.endpoints import (
    QUEUE_FILE,
    Endpoint,
    NotificationService,
    isIgnored,
    notificationServiceFor,
    queuePathFor,
)
from registryd.notifications.interfaces import DeliveryFailed, INotificationSink
from registryd.notifications.queue import QueueStore
from registryd.notifications.retry import RetryingSink
from tests.test_notifications_webhook import Receiver

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def event(n: int, action: str = "push", mediaType: str = MANIFEST) -> dict[str, Any]:
    return {"id": f"e{n}", "action": action, "target": {"mediaType": mediaType, "repository": "r"}}


def ids(batches: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[e["id"] for e in batch] for batch in batches]


@implementer(INotificationSink)
class FakeSink:
    """Accepts while up, refuses while down, or leaves writes hanging."""

    def __init__(self, up: bool = True, hang: bool = False) -> None:
        self.up = up
        self.hang = hang
        self.attempts: list[list[dict[str, Any]]] = []
        self.accepted: list[list[dict[str, Any]]] = []
        self.hanging: list[Deferred] = []
        self.cancelled = 0

    def write(self, events: list[dict[str, Any]]) -> Deferred:
        self.attempts.append(events)
        if self.hang:
            d: Deferred = Deferred(lambda _: self._cancelled())
            self.hanging.append(d)
            return d
        if not self.up:
            return fail(DeliveryFailed("fake", "down"))
        self.accepted.append(events)
        return succeed(None)

    def _cancelled(self) -> None:
        self.cancelled += 1

    def close(self) -> Deferred:
        return succeed(None)


class ServiceTests(TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "queue.sqlite")
        self.clock = Clock()

    def service(self, sink: FakeSink, start: bool = True, **settings: Any) -> NotificationService:
        settings.setdefault("threshold", 2)
        settings.setdefault("backoff", 5.0)
        config = EndpointConfig(name="hook", url="http://127.0.0.1:9/", **settings)
        store = QueueStore(self.path)
        self.addCleanup(store.close)
        retrying = RetryingSink(sink, config.threshold, config.backoff, self.clock)
        endpoint = Endpoint(config, store.queue(config.name, config.maxPending), retrying, self.clock)
        service = NotificationService(store, [endpoint])
        if start:
            service.startService()
            self.addCleanup(lambda: service.running and service.stopService())
        return service

    def test_batches_delivered_in_order_one_write_each(self) -> None:
        sink = FakeSink()
        service = self.service(sink)
        service.broadcast([event(1), event(2)])
        service.broadcast([event(3)])
        service.broadcast([])
        self.assertEqual(ids(sink.accepted), [["e1", "e2"], ["e3"]])
        self.assertEqual(
            service.figures(), {"hook": {"pending": 0, "delivered": 3, "failed": 0, "dropped": 0}}
        )

    def test_ignore_rules(self) -> None:
        sink = FakeSink()
        service = self.service(
            sink,
            ignoredMediaTypes=("application/octet-stream",),
            ignoreMediaTypes=(LAYER,),
            ignoreActions=("pull",),
        )
        service.broadcast(
            [
                event(1),
                event(2, mediaType=LAYER),
                event(3, action="pull"),
                event(4, mediaType="application/octet-stream"),
                event(5, action="delete"),
            ]
        )
        service.broadcast([event(6, action="pull")])
        self.assertEqual(ids(sink.accepted), [["e1", "e5"]])
        self.assertEqual(sink.attempts, sink.accepted, "an all-ignored batch sends nothing")

    def test_ignore_rule_without_media_type(self) -> None:
        endpoint = EndpointConfig(name="a", ignoreMediaTypes=(MANIFEST,))
        self.assertFalse(isIgnored(endpoint, {"action": "delete", "target": {"digest": "sha256:x"}}))
        self.assertTrue(isIgnored(endpoint, event(1)))

    def test_receiver_down_then_up_gets_everything_once_in_order(self) -> None:
        sink = FakeSink(up=False)
        service = self.service(sink, threshold=2, backoff=5.0)
        service.broadcast([event(1)])
        service.broadcast([event(2), event(3)])
        service.broadcast([event(4)])
        self.assertEqual(len(sink.attempts), 2, "retried at once up to the threshold, then backing off")
        self.clock.advance(5.0)
        self.clock.advance(5.0)
        self.assertEqual(ids(sink.attempts), [["e1"]] * 4, "the oldest batch first, nothing skipped")
        sink.up = True
        self.clock.advance(5.0)
        self.assertEqual(ids(sink.accepted), [["e1"], ["e2", "e3"], ["e4"]])
        self.assertEqual(service.figures()["hook"], {"pending": 0, "delivered": 4, "failed": 4, "dropped": 0})

    def test_backlog_is_delivered_after_a_restart_in_order(self) -> None:
        down = FakeSink(up=False)
        first = self.service(down)
        for n in range(1, 6):
            first.broadcast([event(n)])
        self.successResultOf(first.stopService())
        self.assertEqual(down.accepted, [])
        # Broadcast after the restart, before the deliverer starts: queued behind the backlog.
        up = FakeSink()
        second = self.service(up, start=False)
        self.assertEqual(second.figures()["hook"]["pending"], 5)
        second.broadcast([event(6)])
        second.startService()
        self.addCleanup(second.stopService)
        self.assertEqual(ids(up.accepted), [["e1"], ["e2"], ["e3"], ["e4"], ["e5"], ["e6"]])
        self.assertEqual(second.figures()["hook"]["pending"], 0)

    def test_stop_leaves_the_batch_in_flight_queued(self) -> None:
        sink = FakeSink(hang=True)
        service = self.service(sink)
        service.broadcast([event(1)])
        self.successResultOf(service.stopService())
        self.assertEqual(sink.cancelled, 1)
        again = FakeSink()
        self.service(again)
        self.assertEqual(ids(again.accepted), [["e1"]])

    def test_bound_drops_oldest_including_the_batch_in_flight(self) -> None:
        sink = FakeSink(hang=True)
        service = self.service(sink, maxPending=2)
        service.broadcast([event(1)])
        service.broadcast([event(2)])
        self.assertEqual(sink.cancelled, 0)
        service.broadcast([event(3)])
        self.assertEqual(sink.cancelled, 1, "e1 was dropped: its retries stop")
        self.assertEqual(ids(sink.attempts), [["e1"], ["e2"]])
        self.assertEqual(service.figures()["hook"], {"pending": 2, "delivered": 0, "failed": 0, "dropped": 1})
        sink.hanging[-1].callback(None)
        self.assertEqual(ids(sink.attempts), [["e1"], ["e2"], ["e3"]])
        sink.hanging[-1].callback(None)
        self.assertEqual(service.figures()["hook"], {"pending": 0, "delivered": 2, "failed": 0, "dropped": 1})

    def test_slow_receiver_does_not_block_broadcast(self) -> None:
        sink = FakeSink(hang=True)
        service = self.service(sink)
        for n in range(100):
            self.assertIsNone(service.broadcast([event(n)]))
        self.assertEqual(len(sink.attempts), 1, "one write in flight; the rest wait in the queue")
        self.assertEqual(service.figures()["hook"]["pending"], 100)

    def test_broadcast_never_raises(self) -> None:
        sink = FakeSink(hang=True)
        service = self.service(sink)
        service.broadcast([{"id": "bad", "action": "push", "target": {"size": object()}}, event(2)])
        self.assertEqual(ids(sink.attempts), [["e2"]])
        self.flushLoggedErrors(TypeError)
        service._store.close()
        service.broadcast([event(3)])
        self.assertTrue(self.flushLoggedErrors())


class ServiceForTests(TestCase):
    def config(self, text: str) -> NotificationsConfig:
        import yaml

        return parseNotifications(yaml.safe_load(text))

    def test_none_without_enabled_endpoints(self) -> None:
        self.assertIsNone(notificationServiceFor(NotificationsConfig(), reactor))
        config = self.config("endpoints: [{name: a, url: 'http://x/', disabled: true}]")
        self.assertIsNone(notificationServiceFor(config, reactor))

    def test_missing_sink_plugin_lists_installed(self) -> None:
        config = self.config("endpoints: [{name: a, url: 'http://x/'}, {name: b, type: carrierpigeon}]")
        with self.assertRaises(ConfigError) as caught:
            notificationServiceFor(config, reactor)
        self.assertEqual(caught.exception.keyPath, ("notifications", "endpoints", "1", "type"))
        self.assertIn("installed: http", str(caught.exception))

    def test_queue_path_directory_and_file(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.assertEqual(queuePathFor(QueueConfig(directory)), os.path.join(directory, QUEUE_FILE))
        self.assertEqual(queuePathFor(QueueConfig("/srv/q.db")), "/srv/q.db")
        self.assertTrue(queuePathFor(QueueConfig(None)).endswith(os.path.join("registryd", QUEUE_FILE)))

    def test_queue_in_use_names_the_key(self) -> None:
        path = os.path.join(self.mktemp(), "q.sqlite")
        held = QueueStore(path)
        self.addCleanup(held.close)
        config = self.config(f"queue: {{path: '{path}'}}\nendpoints: [{{name: a, url: 'http://x/'}}]")
        with self.assertRaises(ConfigError) as caught:
            notificationServiceFor(config, reactor)
        self.assertEqual(caught.exception.keyPath, ("notifications", "queue", "path"))

    async def test_webhook_end_to_end_with_retries(self) -> None:
        receiver = Receiver([503, 500])
        url = receiver.start(self)
        path = os.path.join(self.mktemp(), "q.sqlite")
        config = self.config(
            f"queue: {{path: '{path}'}}\nendpoints: [{{name: hook, url: '{url}', threshold: 5, backoff: 1s}}]"
        )
        service = notificationServiceFor(config, reactor)
        assert service is not None
        service.startService()
        service.broadcast([event(1), event(2)])
        service.broadcast([event(3)])
        await receiver.received(4)
        while service.figures()["hook"]["pending"]:
            await deferLater(reactor, 0.01, lambda: None)
        await service.stopService()
        self.assertEqual(receiver.codes, [503, 500, 200, 200])
        self.assertEqual([e["id"] for e in receiver.events()], ["e1", "e2", "e3"])
        self.assertEqual(service.figures()["hook"], {"pending": 0, "delivered": 3, "failed": 4, "dropped": 0})

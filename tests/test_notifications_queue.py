"""The durable queue: ordered batches per endpoint, surviving a reopen, bounded with drop-oldest."""

from __future__ import annotations

import json
import os

from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from registryd.notifications.interfaces import QueueUnavailable
from registryd.notifications.queue import DROP_LOG_INTERVAL, QueueStore


def texts(*numbers: int) -> list[str]:
    return [json.dumps({"id": str(n)}) for n in numbers]


def ids(batch: object) -> list[str]:
    return [event["id"] for event in batch.events]  # type: ignore[attr-defined]


class QueueTests(TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "queue.sqlite")
        self.store = self.open()

    def open(self) -> QueueStore:
        store = QueueStore(self.path)
        self.addCleanup(store.close)
        return store

    def test_batches_come_out_oldest_first_whole(self) -> None:
        queue = self.store.queue("a", None)
        self.assertIsNone(queue.head())
        queue.append(texts(1, 2))
        queue.append(texts(3))
        self.assertEqual(queue.pending, 3)
        first = queue.head()
        self.assertEqual(ids(first), ["1", "2"])
        self.assertEqual(queue.head(), first, "head does not consume")
        self.assertEqual(queue.remove(first.seqs), 2)
        self.assertEqual(ids(queue.head()), ["3"])
        self.assertEqual(queue.pending, 1)

    def test_endpoints_have_their_own_queues(self) -> None:
        a, b = self.store.queue("a", None), self.store.queue("b", None)
        a.append(texts(1))
        b.append(texts(2))
        a.append(texts(3))
        self.assertEqual(ids(b.head()), ["2"])
        b.remove(b.head().seqs)
        self.assertEqual((a.pending, b.pending), (2, 0))
        self.assertEqual(ids(a.head()), ["1"])

    def test_survives_reopening_in_order(self) -> None:
        queue = self.store.queue("a", None)
        for n in range(5):
            queue.append(texts(n))
        queue.remove(queue.head().seqs)
        self.store.close()
        reopened = self.open().queue("a", None)
        self.assertEqual(reopened.pending, 4)
        seen = []
        while (batch := reopened.head()) is not None:
            seen += ids(batch)
            reopened.remove(batch.seqs)
        self.assertEqual(seen, ["1", "2", "3", "4"])
        reopened.append(texts(9))
        self.assertEqual(ids(reopened.head()), ["9"])

    def test_bound_drops_the_oldest_counts_and_logs(self) -> None:
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        now = [0.0]
        queue = self.store.queue("a", 3, now=lambda: now[0])
        self.assertEqual(queue.append(texts(1, 2, 3)), 0)
        self.assertEqual(queue.dropped, 0)
        self.assertEqual(queue.append(texts(4, 5)), 2)
        self.assertEqual((queue.pending, queue.dropped), (3, 2))
        self.assertEqual(ids(queue.head()), ["3"], "what is left of the first batch")
        warnings = [e for e in logged if e.get("log_level") == LogLevel.warn and e.get("endpoint") == "a"]
        self.assertEqual(len(warnings), 1)
        self.assertEqual((warnings[0]["count"], warnings[0]["total"]), (2, 2))
        # Further drops within the interval are counted, logged together later.
        queue.append(texts(6))
        self.assertEqual(len([e for e in logged if e.get("endpoint") == "a" and "count" in e]), 1)
        now[0] += DROP_LOG_INTERVAL
        queue.append(texts(7))
        last = [e for e in logged if e.get("endpoint") == "a" and "count" in e][-1]
        self.assertEqual((last["count"], last["total"]), (2, 4))
        remaining = []
        while (batch := queue.head()) is not None:
            remaining += ids(batch)
            queue.remove(batch.seqs)
        self.assertEqual(remaining, ["5", "6", "7"])

    def test_a_batch_larger_than_the_bound_keeps_its_newest(self) -> None:
        queue = self.store.queue("a", 2)
        self.assertEqual(queue.append(texts(1, 2, 3)), 1)
        self.assertEqual(ids(queue.head()), ["2", "3"])

    def test_second_opener_is_refused(self) -> None:
        with self.assertRaises(QueueUnavailable) as caught:
            QueueStore(self.path)
        self.assertIn("in use by another process", str(caught.exception))
        self.store.close()
        self.open()

    def test_unwritable_path_is_refused(self) -> None:
        blocker = self.mktemp()
        with open(blocker, "w"):
            pass
        with self.assertRaises(QueueUnavailable):
            QueueStore(os.path.join(blocker, "queue.sqlite"))

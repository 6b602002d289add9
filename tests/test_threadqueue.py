"""registryd.threadqueue: items worked through in order by one thread, results back in the reactor."""

from __future__ import annotations

import threading

from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from registryd.threadqueue import ThreadQueue


class CountingPool:
    """A real thread pool that counts the hand-overs it is given."""

    def __init__(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=4, name="test-threadqueue")
        self.pool.start()
        self.handOvers = 0

    def callInThread(self, function: object, *args: object) -> None:
        self.handOvers += 1
        self.pool.callInThread(function, *args)


class ThreadQueueTests(TestCase):
    def setUp(self) -> None:
        self.pool = CountingPool()
        self.addCleanup(self.pool.pool.stop)
        self.release = threading.Event()
        self.started = threading.Event()
        self.seen: list[tuple[int, str]] = []

    def work(self, item: int) -> int:
        self.started.set()
        self.release.wait(10)
        if item < 0:
            raise ValueError(item)
        self.seen.append((item, threading.current_thread().name))
        return item * 2

    async def test_items_run_in_order_in_one_hand_over(self) -> None:
        queue = ThreadQueue(reactor, self.pool, self.work)
        results = [queue.submit(n) for n in range(20)]
        self.assertFalse(any(d.called for d in results))
        self.release.set()
        answered = await DeferredList(results, fireOnOneErrback=True)
        self.assertEqual([value for _, value in answered], [n * 2 for n in range(20)])
        self.assertEqual([item for item, _ in self.seen], list(range(20)))
        self.assertEqual(len({name for _, name in self.seen}), 1)
        # The thread went on to the next item without the reactor handing it over.
        self.assertEqual(self.pool.handOvers, 1)

    async def test_the_thread_is_asked_again_once_the_queue_ran_dry(self) -> None:
        self.release.set()
        queue = ThreadQueue(reactor, self.pool, self.work)
        self.assertEqual(await queue.submit(1), 2)
        self.assertEqual(await queue.submit(2), 4)
        self.assertEqual(self.pool.handOvers, 2)

    async def test_a_failure_is_that_items_and_the_rest_go_on(self) -> None:
        queue = ThreadQueue(reactor, self.pool, self.work)
        first, broken, last = queue.submit(1), queue.submit(-1), queue.submit(3)
        self.release.set()
        self.assertEqual(await first, 2)
        with self.assertRaises(ValueError):
            await broken
        self.assertEqual(await last, 6)

    async def test_cleared_items_are_not_worked_on(self) -> None:
        queue = ThreadQueue(reactor, self.pool, self.work)
        first = queue.submit(1)
        self.assertTrue(self.started.wait(10))  # the thread holds the first item
        dropped = [queue.submit(n) for n in (2, 3)]
        self.assertEqual(queue.clear(), dropped)
        self.release.set()
        self.assertEqual(await first, 2)
        self.assertEqual(await queue.submit(4), 8)
        self.assertEqual([item for item, _ in self.seen], [1, 4])
        self.assertFalse(any(d.called for d in dropped))

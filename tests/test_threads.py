"""registryd.threads: ThreadQueue (items in order by one thread) and QuickThreads (quick calls)."""

from __future__ import annotations

import threading

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from registryd.threads import Backlog, QuickThreads, ThreadQueue


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


class QuickThreadsTests(TestCase):
    def setUp(self) -> None:
        self.threads = QuickThreads(reactor, 3, "test-quick")
        self.threads.start()
        self.addCleanup(self.threads.stop)

    async def test_calls_answer_in_the_reactor_thread(self) -> None:
        where: list[str] = []

        def work(n: int) -> int:
            where.append(threading.current_thread().name)
            return n + 1

        answers = await DeferredList([self.threads.run(work, n) for n in range(50)], fireOnOneErrback=True)
        self.assertEqual([value for _, value in answers], list(range(1, 51)))
        self.assertTrue(all(name.startswith("test-quick-") for name in where))
        self.assertEqual(self.threads.size, 3)

    async def test_a_failing_call_fails_its_deferred_only(self) -> None:
        def work(n: int) -> int:
            if n == 1:
                raise ValueError("no")
            return n

        results = [self.threads.run(work, n) for n in range(3)]
        self.assertEqual(await results[0], 0)
        with self.assertRaises(ValueError):
            await results[1]
        self.assertEqual(await results[2], 2)

    async def test_calls_run_side_by_side(self) -> None:
        barrier = threading.Barrier(3, timeout=10)
        # Each call waits for the other two: only threads running at the same time get through.
        waits = [self.threads.run(barrier.wait) for _ in range(3)]
        answers = await DeferredList(waits, fireOnOneErrback=True)
        self.assertEqual(sorted(value for _, value in answers), [0, 1, 2])

    def test_stop_finishes_what_was_queued(self) -> None:
        release = threading.Event()
        ran: list[int] = []

        def work(n: int) -> None:
            release.wait(10)
            ran.append(n)

        for n in range(5):
            self.threads.run(work, n)
        release.set()
        self.threads.stop()
        self.assertEqual(sorted(ran), list(range(5)))
        self.assertEqual(self.threads._threads, [])


class BacklogTests(TestCase):
    def test_waits_until_at_most_that_many_are_outstanding(self) -> None:
        backlog = Backlog()
        items = [Deferred() for _ in range(3)]
        for item in items:
            backlog.track(item)
        atMostTwo, atMostNone = backlog.whenAtMost(2), backlog.whenAtMost(0)
        self.assertTrue(backlog.whenAtMost(3).called)
        self.assertFalse(atMostTwo.called)
        items[0].callback("done")
        self.assertTrue(atMostTwo.called)
        self.assertFalse(atMostNone.called)
        items[1].callback("done")
        backlog.forget(1)  # the third was dropped from its queue
        self.assertTrue(atMostNone.called)
        self.assertEqual(backlog.outstanding, 0)

    def test_the_first_failure_fails_every_wait_from_then_on(self) -> None:
        backlog = Backlog()
        first, second = Deferred(), Deferred()
        backlog.track(first)
        backlog.track(second)
        waiting = backlog.whenAtMost(0)
        first.errback(ValueError("first"))
        second.errback(KeyError("second"))
        self.failureResultOf(waiting, ValueError)
        self.failureResultOf(backlog.whenAtMost(5), ValueError)
        # The items' own failures were consumed: none is left unhandled.
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))

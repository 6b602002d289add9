"""
Blocking work in threads, handed over and answered with less overhead than deferToThread.

Two shapes of work reach threads many times a second. Chunks of a stream (an upload's hashing,
a file's write batches) are handed to L{ThreadQueue}: with deferToThread, after each 1 MiB the
thread reported back, the reactor woke and handed over the next one, a round trip that took
about as long as hashing the chunk, so the hashing thread sat idle half the time and a 1 GiB
upload waited on it (0.86 s of its 0.95 s). A ThreadQueue keeps one pool thread working
through everything queued. Quick calls (a stat, an open, a small file) go to L{QuickThreads}:
a few fixed threads on one queue, without twisted ThreadPool's per-call bookkeeping (context
capture, its worker coordinator). Both report results through L{_Results}, which wakes the
reactor once per burst of results instead of once per result.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure


class _Results:
    """Results finished in threads, handed to the reactor in bursts: one wake-up until it has run."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._lock = threading.Lock()
        self._finished: deque[tuple[Deferred, Any]] = deque()
        self._scheduled = False

    def call(self, done: Deferred, function: Callable[..., Any], *args: Any) -> None:
        """Run function(*args) here (in a thread); done fires with its result in the reactor."""
        try:
            outcome: Any = function(*args)
        except BaseException:
            outcome = Failure()
        with self._lock:
            self._finished.append((done, outcome))
            wake, self._scheduled = not self._scheduled, True
        if wake:
            self._reactor.callFromThread(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, deque()
            self._scheduled = False
        for done, outcome in finished:
            if isinstance(outcome, Failure):
                done.errback(outcome)
            else:
                done.callback(outcome)


class ThreadQueue:
    """
    Items given to L{submit} are passed to C{function} one at a time, in order, in a thread of
    C{pool}; each submit's Deferred fires in the reactor thread with that item's result.
    """

    def __init__(self, reactor: Any, pool: Any, function: Callable[[Any], Any]) -> None:
        self._pool = pool
        self._function = function
        self._results = _Results(reactor)
        self._lock = threading.Lock()
        self._items: deque[tuple[Any, Deferred]] = deque()
        self._working = False

    def submit(self, item: Any) -> Deferred:
        """Queue an item (call in the reactor thread). @return: Deferred firing with function(item)."""
        done: Deferred = Deferred()
        with self._lock:
            self._items.append((item, done))
            start, self._working = not self._working, True
        if start:
            self._pool.callInThread(self._work)
        return done

    def clear(self) -> list[Deferred]:
        """Drop the items not started yet. @return: their Deferreds, which will never fire on their own."""
        with self._lock:
            dropped, self._items = self._items, deque()
        return [done for _, done in dropped]

    def _work(self) -> None:
        """The thread's loop: until nothing is queued, take the next item and report its result."""
        while True:
            with self._lock:
                if not self._items:
                    self._working = False
                    return
                item, done = self._items.popleft()
            self._results.call(done, self._function, item)


class Backlog:
    """
    What a caller handed to a thread and goes on without waiting for, item by item: it waits
    only when more than it allows are outstanding (L{whenAtMost}). The first item to fail
    fails every wait from then on (L{failure}); the items' own Deferreds are consumed here.
    """

    def __init__(self) -> None:
        self.outstanding = 0
        self.failure: Failure | None = None
        self._waiters: list[tuple[int, Deferred]] = []

    def track(self, done: Deferred) -> None:
        """Count an item until done fires."""
        self.outstanding += 1
        done.addBoth(self._settled)

    def forget(self, count: int) -> None:
        """count tracked items will never be done (they were dropped from the queue)."""
        self.outstanding -= count
        self._wake()

    def whenAtMost(self, outstanding: int) -> Deferred:
        """@return: Deferred firing once at most that many items are outstanding, or failing as one did."""
        if self.failure is not None:
            return fail(self.failure)
        if self.outstanding <= outstanding:
            return succeed(None)
        waiting: Deferred = Deferred()
        self._waiters.append((outstanding, waiting))
        return waiting

    def _settled(self, result: object) -> None:
        self.outstanding -= 1
        if isinstance(result, Failure) and self.failure is None:
            self.failure = result
        self._wake()

    def _wake(self) -> None:
        ready = [(n, d) for n, d in self._waiters if self.failure is not None or self.outstanding <= n]
        self._waiters = [(n, d) for n, d in self._waiters if (n, d) not in ready]
        for _, waiting in ready:
            if self.failure is not None:
                waiting.errback(self.failure)
            else:
                waiting.callback(None)


class QuickThreads:
    """
    C{size} threads taking quick blocking calls from one queue, started by L{start} and ended
    by L{stop}. Calls wait in the queue while every thread is busy.
    """

    def __init__(self, reactor: Any, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._results = _Results(reactor)
        self._calls: queue.SimpleQueue[tuple[Deferred, Callable[..., Any], tuple] | None]
        self._calls = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    @property
    def size(self) -> int:
        """How many threads there are."""
        return self._size

    def start(self) -> None:
        """Start the threads."""
        for number in range(self._size):
            thread = threading.Thread(target=self._serve, name=f"{self._name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let the threads finish the calls queued so far, then end them (blocks until they did)."""
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def run(self, function: Callable[..., Any], *args: Any) -> Deferred:
        """Queue function(*args). @return: Deferred firing with its result in the reactor thread."""
        done: Deferred = Deferred()
        self._calls.put((done, function, args))
        return done

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            done, function, args = call
            self._results.call(done, function, *args)

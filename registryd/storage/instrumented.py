"""
A storage driver that measures another: every operation's latency and failures go to
L{registryd.metrics} by driver name and operation, and the call is otherwise passed through.
The service wraps whatever driver the configuration names in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from zope.interface import implementer

from registryd import metrics
from registryd.storage.interfaces import IStorageDriver, StorageDriverError


@implementer(IStorageDriver)
class InstrumentedDriver:
    """
    L{IStorageDriver} by delegation to C{driver}, timing each operation from the call to
    its Deferred firing. For C{reader} and C{writer} that is the time to open the stream.

    @ivar driver: the driver measured.
    """

    def __init__(self, driver: IStorageDriver, clock: Callable[[], float] = time.perf_counter) -> None:
        self.driver = driver
        self.name = driver.name
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        # What a driver offers beyond the interface (e.g. the filesystem driver's stop()).
        if name == "driver":
            raise AttributeError(name)
        return getattr(self.driver, name)

    def _measure(self, operation: str, call: Callable[..., Any], *args: Any) -> Deferred:
        started = self._clock()
        d = maybeDeferred(call, *args)

        def succeeded(result: object) -> object:
            metrics.labelled(metrics.STORAGE_DURATION, self.name, operation).observe(self._clock() - started)
            return result

        def failed(failure: Failure) -> Failure:
            metrics.labelled(metrics.STORAGE_DURATION, self.name, operation).observe(self._clock() - started)
            error = failure.value
            # The typed errors of the interface are a bounded set; anything else is a driver bug.
            kind = type(error).__name__ if isinstance(error, StorageDriverError) else "unexpected"
            metrics.STORAGE_ERRORS.labels(self.name, operation, kind).inc()
            return failure

        d.addCallbacks(succeeded, failed)
        return d

    def getContent(self, path: str) -> Deferred:
        return self._measure("getContent", self.driver.getContent, path)

    def putContent(self, path: str, data: bytes) -> Deferred:
        return self._measure("putContent", self.driver.putContent, path, data)

    def reader(self, path: str, offset: int = 0) -> Deferred:
        return self._measure("reader", self.driver.reader, path, offset)

    def writer(self, path: str, append: bool = False) -> Deferred:
        return self._measure("writer", self.driver.writer, path, append)

    def stat(self, path: str) -> Deferred:
        return self._measure("stat", self.driver.stat, path)

    def list(self, path: str) -> Deferred:
        return self._measure("list", self.driver.list, path)

    def move(self, sourcePath: str, destPath: str) -> Deferred:
        return self._measure("move", self.driver.move, sourcePath, destPath)

    def delete(self, path: str) -> Deferred:
        return self._measure("delete", self.driver.delete, path)

    def redirectURL(self, method: str, path: str) -> Deferred:
        return self._measure("redirectURL", self.driver.redirectURL, method, path)

    def walk(self, path: str, visit: object) -> Deferred:
        return self._measure("walk", self.driver.walk, path, visit)


__all__ = ["InstrumentedDriver"]

"""C{storage.maintenance.gc}: garbage collection on a schedule inside the daemon."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from registryd.config.storage import GarbageCollectionConfig
from registryd.gc.collector import GarbageCollectionStopped, GarbageCollector


class ScheduledGarbageCollection(Service):
    """
    Collect every C{interval}, the first time C{firstDelay} after start-up (so a registry
    restarted more often than the interval still collects). Each line of the run goes to
    the log. Stopping the service stops a run in progress, which moves back what it held.
    """

    log = Logger()

    def __init__(
        self, registry: Any, config: GarbageCollectionConfig, clock: IReactorTime, firstDelay: float = 300.0
    ) -> None:
        self._config = config
        self._clock = clock
        self._firstDelay = firstDelay
        self.collector = GarbageCollector(
            registry,
            dryRun=config.dryRun,
            deleteUntagged=config.deleteUntagged,
            gracePeriod=config.gracePeriod,
            clock=clock,
            report=lambda line: self.log.info("garbage collection: {line}", line=line),
        )
        self._loop: LoopingCall | None = None
        self._delayed: Any = None

    def collect(self) -> Deferred:
        """Run one collection now. @return: Deferred firing with the result, or None if it failed."""
        d = self.collector.run()

        def failed(failure: Any) -> None:
            if not failure.check(GarbageCollectionStopped):
                self.log.failure("garbage collection failed", failure)

        d.addErrback(failed)
        return d

    def _startLoop(self) -> None:
        self._delayed = None
        self._loop = LoopingCall(self.collect)
        self._loop.clock = self._clock
        self._loop.start(self._config.interval, now=True)

    def startService(self) -> None:
        super().startService()
        self._delayed = self._clock.callLater(self._firstDelay, self._startLoop)

    def stopService(self) -> Deferred:
        super().stopService()
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._delayed = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.collector.stop()

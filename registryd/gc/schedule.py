"""C{storage.maintenance.gc}: garbage collection on a schedule inside the daemon."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from registryd.config.storage import GarbageCollectionConfig
from registryd.gc.collector import GarbageCollectionStopped, GarbageCollector
from registryd.periodic import PeriodicService


class ScheduledGarbageCollection(PeriodicService):
    """
    Collect every C{interval}, the first time C{firstDelay} after start-up (so a registry
    restarted more often than the interval still collects). Each line of the run goes to
    the log. Stopping the service stops a run in progress, which moves back what it held.
    """

    log = Logger()

    def __init__(
        self, registry: Any, config: GarbageCollectionConfig, clock: IReactorTime, firstDelay: float = 300.0
    ) -> None:
        super().__init__(clock, config.interval, firstDelay)
        self._config = config
        self.collector = GarbageCollector(
            registry,
            dryRun=config.dryRun,
            deleteUntagged=config.deleteUntagged,
            gracePeriod=config.gracePeriod,
            clock=clock,
            report=lambda line: self.log.info("garbage collection: {line}", line=line),
        )

    def collect(self) -> Deferred:
        """Run one collection now. @return: Deferred firing with the result, or None if it failed."""
        d = self.collector.run()

        def failed(failure: Any) -> None:
            if not failure.check(GarbageCollectionStopped):
                self.log.failure("garbage collection failed", failure)

        d.addErrback(failed)
        return d

    def _run(self) -> Deferred:
        return self.collect()

    def stopService(self) -> Deferred:
        super().stopService()
        return self.collector.stop()

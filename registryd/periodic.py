"""Services that run a task on a schedule: every C{interval}, the first time C{firstDelay} after start-up."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall


class PeriodicService(Service):
    """Calls L{_run} every C{interval} seconds on C{clock}, the first time C{firstDelay} after start-up."""

    def __init__(self, clock: IReactorTime, interval: float, firstDelay: float) -> None:
        self._clock = clock
        self._interval = interval
        self._firstDelay = firstDelay
        self._loop: LoopingCall | None = None
        self._delayed: Any = None

    def _run(self) -> Any:
        """One run of the task; a Deferred the loop waits for before scheduling the next."""
        raise NotImplementedError

    def _startLoop(self) -> None:
        self._delayed = None
        self._loop = LoopingCall(self._run)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True)

    def startService(self) -> None:
        super().startService()
        self._delayed = self._clock.callLater(self._firstDelay, self._startLoop)

    def stopService(self) -> Any:
        super().stopService()
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._delayed = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

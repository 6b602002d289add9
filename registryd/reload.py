"""
Reloading on SIGHUP: components register a callback with L{onReload}; while a
L{SIGHUPService} runs, SIGHUP runs every registered callback, one after another, on the
reactor thread. (twistd does not use SIGHUP itself; systemd units send it on reload.)

Callbacks are things like re-reading TLS certificates or an htpasswd file. A callback may
return a Deferred; a failing one is logged and does not stop the others.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

ReloadCallback = Callable[[], Any]


class Reloader:
    """An ordered set of reload callbacks, run in registration order by L{reload}."""

    log = Logger()

    def __init__(self) -> None:
        self._callbacks: list[ReloadCallback] = []

    def onReload(self, callback: ReloadCallback) -> Callable[[], None]:
        """Run callback on every reload until the returned function is called to remove it."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def reload(self) -> Deferred:
        """Run every callback, each after the previous one's Deferred fired. @return: Deferred firing None."""
        return ensureDeferred(self._runAll())

    async def _runAll(self) -> None:
        self.log.info("reloading ({count} components)", count=len(self._callbacks))
        for callback in list(self._callbacks):
            try:
                await maybeDeferred(callback)
            except Exception:
                self.log.failure("reload callback {callback!r} failed", callback=callback)


#: The process's reloader: what L{onReload} registers with and SIGHUP runs by default.
reloader = Reloader()


def onReload(callback: ReloadCallback) -> Callable[[], None]:
    """Run callback on SIGHUP (see L{Reloader.onReload}); returns a function that unregisters it."""
    return reloader.onReload(callback)


class ReloadHook(Service):
    """Registers a callback with a reloader while this service runs, so it lives as long as its owner."""

    def __init__(self, callback: ReloadCallback, target: Reloader | None = None) -> None:
        self._callback = callback
        self._target = reloader if target is None else target
        self._remove: Callable[[], None] | None = None

    def startService(self) -> None:
        super().startService()
        self._remove = self._target.onReload(self._callback)

    def stopService(self) -> None:
        super().stopService()
        if self._remove is not None:
            self._remove()
            self._remove = None


class SIGHUPService(Service):
    """
    Installs a SIGHUP handler while running (restoring the previous one on stop) that
    schedules a reload on the reactor thread.
    """

    log = Logger()

    def __init__(self, reactor: Any, target: Reloader | None = None) -> None:
        self._reactor = reactor
        self._target = reloader if target is None else target
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        # A signal handler may interrupt the reactor anywhere: callFromThread only queues
        # the call and wakes the reactor, which is safe from here.
        self._reactor.callFromThread(self._target.reload)

    def startService(self) -> None:
        super().startService()
        if not hasattr(signal, "SIGHUP"):
            return
        try:
            self._previous = signal.signal(signal.SIGHUP, self._handle)
        except ValueError:
            # Not the main thread (an embedding program): it can call reloader.reload itself.
            self.log.warn("not on the main thread: SIGHUP will not reload")
            return
        self._installed = True

    def stopService(self) -> None:
        super().stopService()
        if self._installed:
            signal.signal(signal.SIGHUP, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False


__all__ = ["ReloadHook", "Reloader", "SIGHUPService", "onReload", "reloader"]

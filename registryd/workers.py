"""
Worker processes sharing the listening socket (C{http.workers}): the main twistd process
listens, then starts C{workers - 1} children that adopt the same socket and serve the same
API, so the kernel spreads connections over several Python processes (several cores).

Registry state is in storage, so workers need nothing from each other. Only the main
process runs what must happen once per deployment: scheduled garbage collection, upload
purging, the debug server and notification delivery. The main process restarts a child
that exits unexpectedly, forwards SIGHUP to the children (TLS certificate reload), and on
shutdown sends them SIGTERM and waits for them to drain. A child dies with its parent.

Run by the main process as C{python -m registryd.workers --fd 3 --worker N --parent PID
[--config PATH]}, with the listening socket as file descriptor 3.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, execute
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from zope.interface import implementer

from registryd.config import Configuration
from registryd.config.errors import ConfigError

#: The file descriptor a child finds the listening socket on.
LISTENING_FD = 3

_PR_SET_PDEATHSIG = 1


def checkWorkers(config: Configuration) -> None:
    """Refuse settings that do not work with several processes. @raise ConfigError: naming http.workers."""
    if config.http.workers > 1 and any(not e.disabled for e in config.notifications.endpoints):
        raise ConfigError(
            f"{config.http.workers} workers cannot be used with notifications.endpoints: "
            "events of requests served by the worker processes would be lost (set 1)",
            ["http", "workers"],
        )


def sharedSecret(config: Configuration) -> str | None:
    """A secret for upload URLs that every worker shares when C{http.secret} is unset (else None)."""
    if config.http.workers > 1 and config.http.secret is None:
        return secrets.token_urlsafe(32)
    return None


@implementer(IStreamServerEndpoint)
class AdoptedEndpoint:
    """A server endpoint that listens by adopting an inherited listening socket (a worker's)."""

    def __init__(self, reactor: Any, fileno: int) -> None:
        self._reactor = reactor
        self._fileno = fileno

    def listen(self, factory: Any) -> Deferred:
        """@return: Deferred firing with the adopted port (IListeningPort)."""
        return execute(self._adopt, factory)

    def _adopt(self, factory: Any) -> Any:
        probe = socket.socket(fileno=self._fileno)  # learns the family; detach keeps the fd open
        family = probe.family
        probe.detach()
        port = self._reactor.adoptStreamPort(self._fileno, family, factory)
        os.close(self._fileno)  # the port holds a duplicate of it
        return port


class _WorkerProtocol(ProcessProtocol):
    """One child: tells the pool when it ended."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.index = index
        self.started = pool._reactor.seconds()
        self.pid: int | None = None
        self.ended: Deferred = Deferred()
        self._pool = pool

    def processEnded(self, reason: Any) -> None:
        self._pool._ended(self, reason)
        self.ended.callback(None)


class WorkerPool(Service):
    """
    The children of the main process: started once the listener listens, each restarted
    after a back-off when it exits while the pool runs, all stopped (SIGTERM, then SIGKILL
    after C{stopTimeout}) when the pool stops.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        listener: Any,
        count: int,
        configPath: str | None,
        secret: str | None = None,
        stopTimeout: float = 30.0,
        restartDelay: float = 0.5,
        maxRestartDelay: float = 30.0,
    ) -> None:
        self._reactor = reactor
        self._listener = listener
        self._count = count
        self._configPath = None if configPath is None else str(Path(configPath).resolve())
        self._secret = secret
        self._stopTimeout = stopTimeout
        self._restartDelay = restartDelay
        self._maxRestartDelay = maxRestartDelay
        self._fileno: int | None = None
        self._failures: dict[int, int] = {}
        self._restarts: dict[int, Any] = {}
        #: The running children's protocols by worker number (1 .. count - 1).
        self.workers: dict[int, _WorkerProtocol] = {}

    def startService(self) -> None:
        super().startService()
        self._listener.listening().addCallback(self._listening)

    def _listening(self, port: Any) -> None:
        if not self.running:
            return
        self._fileno = port.fileno()
        for index in range(1, self._count):
            self._spawn(index)

    def _command(self, index: int) -> list[str]:
        command = [sys.executable, "-m", "registryd.workers", "--fd", str(LISTENING_FD)]
        command += ["--worker", str(index), "--parent", str(os.getpid())]
        if self._configPath is not None:
            command += ["--config", self._configPath]
        return command

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The child imports registryd from where this process did, whatever its sys.path was.
        source = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = source + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if self._secret is not None:
            env["REGISTRY_HTTP_SECRET"] = self._secret  # the loader's override: all share it
        return env

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        protocol = _WorkerProtocol(self, index)
        process = self._reactor.spawnProcess(
            protocol,
            sys.executable,
            self._command(index),
            env=self._environment(),
            childFDs={0: "w", 1: 1, 2: 2, LISTENING_FD: self._fileno},
        )
        self.workers[index] = protocol
        protocol.pid = process.pid
        self.log.info("worker {index} started (pid {pid})", index=index, pid=process.pid)

    def _ended(self, protocol: _WorkerProtocol, reason: Any) -> None:
        index = protocol.index
        self.workers.pop(index, None)
        if not self.running:
            return
        lived = self._reactor.seconds() - protocol.started
        # A child that ran a while is restarted at once; one that keeps failing, ever later.
        failures = 0 if lived >= 10.0 else self._failures.get(index, 0) + 1
        self._failures[index] = failures
        delay = min(self._maxRestartDelay, self._restartDelay * 2 ** max(0, failures - 1))
        how = "exited" if reason.check(ProcessDone) else f"ended: {reason.value}"
        self.log.warn(
            "worker {index} (pid {pid}) {how}; restarting in {delay:.1f}s",
            index=index,
            pid=protocol.pid,
            how=how,
            delay=delay,
        )
        self._restarts[index] = self._reactor.callLater(delay, self._spawn, index)

    def _signal(self, name: str) -> None:
        for protocol in list(self.workers.values()):
            try:
                protocol.transport.signalProcess(name)
            except Exception:  # ended meanwhile
                pass

    def reload(self) -> None:
        """Forward a reload (SIGHUP) to every child."""
        self._signal("HUP")

    def stopService(self) -> Deferred:
        """SIGTERM every child. @return: Deferred firing once all ended (SIGKILL after the timeout)."""
        super().stopService()
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        ended = [protocol.ended for protocol in self.workers.values()]
        self._signal("TERM")
        kill = self._reactor.callLater(self._stopTimeout, self._signal, "KILL")
        done = DeferredList(ended)

        def finished(result: object) -> None:
            if kill.active():
                kill.cancel()

        return done.addCallback(finished)


def dieWithParent(parent: int) -> None:
    """Have the kernel send SIGTERM when the parent dies (Linux); exit now if it died already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        raise SystemExit(f"registryd worker: parent {parent} is gone")


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m registryd.workers", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--worker", type=int, required=True, help="this worker's number (log field)")
    parser.add_argument("--parent", type=int, required=True, help="the main process's pid")
    parser.add_argument("--config", help="the configuration file (else the defaults / environment)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run one worker until SIGTERM: the registry's service tree on the inherited socket."""
    options = _options(argv)
    dieWithParent(options.parent)
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    from registryd import memory
    from registryd.config import load
    from registryd.config.log import makeObserver
    from registryd.service import makeService

    try:
        config = load(options.config, os.environ)
    except ConfigError as e:
        raise SystemExit(f"registryd worker {options.worker}: {e}") from None
    fields = {**config.log.fields, "worker": options.worker}
    globalLogBeginner.beginLoggingTo(
        [makeObserver(replace(config.log, fields=fields), sys.stdout)], redirectStandardIO=False
    )
    memory.keepFreedMemory()
    top = makeService(config, reactor, inheritedSocket=options.fd)
    top.privilegedStartService()
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()


if __name__ == "__main__":
    main()


__all__ = ["AdoptedEndpoint", "WorkerPool", "checkWorkers", "dieWithParent", "main", "sharedSecret"]

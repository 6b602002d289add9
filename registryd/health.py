"""
Health checks (the C{health} section): the storage driver, files, HTTP URIs and TCP
servers, each probed every interval as distribution does. A check fails after
C{threshold} failed probes in a row and passes again after one good probe.

L{HealthChecks} combines them: its C{problem()} feeds C{APISettings.health}, so API
requests get 503 UNAVAILABLE while any check fails, and its C{failing()} is what the
debug server's C{/debug/health} reports (distribution's shape: check name -> error).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, RedirectAgent
from twisted.web.http_headers import Headers

from registryd.config.health import (
    FileHealthConfig,
    HealthConfig,
    HTTPHealthConfig,
    StorageDriverHealthConfig,
    TCPHealthConfig,
)
from registryd.storage.interfaces import IStorageDriver, PathNotFound


class CheckFailed(Exception):
    """A probe found the checked thing unhealthy; the message says why."""


class PeriodicCheck(Service):
    """
    Run C{probe()} every C{interval}; after C{threshold} failures in a row the check fails.

    @ivar checkName: how C{/debug/health} names the check (distribution's names: the file
        path, the URI, the address, C{storagedriver_<driver>}).
    """

    log = Logger()
    checkName = ""

    def __init__(self, interval: float, threshold: int, timeout: float | None, clock: IReactorTime) -> None:
        self._interval = interval
        self._threshold = max(1, threshold)
        self._timeout = timeout if timeout is not None else interval
        self._clock = clock
        self._failures = 0
        self._lastError: str | None = None
        self._loop: LoopingCall | None = None
        self._inFlight: Deferred | None = None

    def probe(self) -> Deferred:
        """Look once. @return: Deferred firing on success, failing (L{CheckFailed} or other) if not."""
        raise NotImplementedError()

    def describe(self, error: str) -> str:
        """The reason given while failing, from the last probe's error."""
        return error

    def problem(self) -> str | None:
        """The reason the check is failing, or None while healthy."""
        if self._failures >= self._threshold and self._lastError is not None:
            return self.describe(self._lastError)
        return None

    def check(self) -> Deferred:
        """Probe once and count the outcome. @return: Deferred firing None (failures are counted)."""
        d = self.probe()
        d.addTimeout(self._timeout, self._clock)
        self._inFlight = d

        def done(result: object) -> object:
            if self._inFlight is d:
                self._inFlight = None
            return result

        d.addBoth(done)
        d.addCallbacks(self._passed, self._failed)
        return d

    def _passed(self, _: object) -> None:
        if self._failures >= self._threshold:
            self.log.info("health check {check} passes again", check=self.checkName)
        self._failures = 0
        self._lastError = None

    def _failed(self, failure: Failure) -> None:
        if failure.check(CancelledError) and not self.running:
            return  # stopped while probing: not a verdict
        self._failures += 1
        error = failure.value
        if isinstance(error, TimeoutError):
            self._lastError = f"timed out after {self._timeout:g}s"
        else:
            self._lastError = str(error) or type(error).__name__
        if self._failures == self._threshold:
            self.log.error(
                "health check {check} failed {count} times in a row: {error}",
                check=self.checkName,
                count=self._failures,
                error=self.describe(self._lastError),
            )

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.check)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._inFlight is not None:
            self._inFlight.cancel()


class StorageHealthCheck(PeriodicCheck):
    """
    C{health.storagedriver}: stat the storage root every interval. A root that does not
    exist yet is healthy: an empty registry is not a broken one.
    """

    def __init__(
        self, driver: IStorageDriver, config: StorageDriverHealthConfig, clock: IReactorTime
    ) -> None:
        super().__init__(config.interval, config.threshold, None, clock)
        self._driver = driver
        self.checkName = f"storagedriver_{driver.name}"

    def describe(self, error: str) -> str:
        return f"storage driver {self._driver.name} is failing: {error}"

    def probe(self) -> Deferred:
        return Deferred.fromCoroutine(self._stat())

    async def _stat(self) -> None:
        try:
            await self._driver.stat("/")
        except PathNotFound:
            pass


class FileHealthCheck(PeriodicCheck):
    """C{health.file}: fails while a file exists at the path (to take a registry out of rotation)."""

    def __init__(self, config: FileHealthConfig, reactor: Any) -> None:
        super().__init__(config.interval, config.threshold, None, reactor)
        self._path = config.path
        self._reactor = reactor
        self.checkName = config.path

    def probe(self) -> Deferred:
        # A stat can hang on a network filesystem: never on the reactor thread.
        d = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), os.path.lexists, self._path)

        def exists(found: bool) -> None:
            if found:
                raise CheckFailed(f"file {self._path} exists")

        return d.addCallback(exists)


class HTTPHealthCheck(PeriodicCheck):
    """C{health.http}: a C{HEAD} of the URI (redirects followed) must answer the expected status."""

    def __init__(self, config: HTTPHealthConfig, reactor: Any) -> None:
        super().__init__(config.interval, config.threshold, config.timeout, reactor)
        self._config = config
        self._agent = RedirectAgent(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        self._headers = {name: list(values) for name, values in config.headers.items()}
        self.checkName = config.uri

    def probe(self) -> Deferred:
        d = self._agent.request(b"HEAD", self._config.uri.encode("utf-8"), Headers(self._headers))

        def answered(response: Any) -> None:
            if response.code != self._config.statusCode:
                raise CheckFailed(
                    f"HEAD {self._config.uri} answered {response.code}, expected {self._config.statusCode}"
                )

        def unreachable(failure: Failure) -> Failure:
            if failure.check(CheckFailed, TimeoutError):
                return failure
            reasons = getattr(failure.value, "reasons", None)
            why = reasons[0].getErrorMessage() if reasons else failure.getErrorMessage()
            raise CheckFailed(f"HEAD {self._config.uri} failed: {why}")

        return d.addCallback(answered).addErrback(unreachable)


class _Hangup(Protocol):
    def connectionMade(self) -> None:
        self.transport.loseConnection()


class TCPHealthCheck(PeriodicCheck):
    """C{health.tcp}: a TCP connection to HOST:PORT must open."""

    def __init__(self, config: TCPHealthConfig, reactor: Any) -> None:
        super().__init__(config.interval, config.threshold, config.timeout, reactor)
        self._config = config
        timeout = config.timeout if config.timeout is not None else config.interval
        self._endpoint = HostnameEndpoint(reactor, config.host, config.port, timeout=timeout)
        self.checkName = config.addr

    def probe(self) -> Deferred:
        d = connectProtocol(self._endpoint, _Hangup())

        def refused(failure: Failure) -> None:
            if failure.check(TimeoutError):
                return failure  # type: ignore[return-value]
            raise CheckFailed(f"connection to {self._config.addr} failed: {failure.getErrorMessage()}")

        return d.addCallbacks(lambda _: None, refused)


class HealthChecks(MultiService):
    """Every configured check, as child services; healthy while none fails."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[PeriodicCheck] = []

    def add(self, check: PeriodicCheck) -> None:
        """Run check as part of this service."""
        self.checks.append(check)
        check.setServiceParent(self)

    def failing(self) -> dict[str, str]:
        """Each failing check's name and reason (what C{/debug/health} answers)."""
        return {check.checkName: reason for check in self.checks if (reason := check.problem()) is not None}

    def statuses(self) -> dict[str, str | None]:
        """Every check's name and its reason, None when it passes (for metrics)."""
        return {check.checkName: check.problem() for check in self.checks}

    def problem(self) -> str | None:
        """Why the registry is unhealthy, or None (C{APISettings.health})."""
        failing = self.failing()
        if not failing:
            return None
        return "; ".join(f"{name}: {reason}" for name, reason in failing.items())


def healthChecksFor(config: HealthConfig, driver: IStorageDriver, reactor: Any) -> HealthChecks:
    """The checks C{health} configures (possibly none), not started."""
    checks = HealthChecks()
    if config.storageDriver.enabled:
        checks.add(StorageHealthCheck(driver, config.storageDriver, reactor))
    for fileConfig in config.files:
        checks.add(FileHealthCheck(fileConfig, reactor))
    for httpConfig in config.http:
        checks.add(HTTPHealthCheck(httpConfig, reactor))
    for tcpConfig in config.tcp:
        checks.add(TCPHealthCheck(tcpConfig, reactor))
    return checks


__all__ = [
    "CheckFailed",
    "FileHealthCheck",
    "HTTPHealthCheck",
    "HealthChecks",
    "PeriodicCheck",
    "StorageHealthCheck",
    "TCPHealthCheck",
    "healthChecksFor",
]

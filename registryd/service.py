"""
Assembling a running registry from its configuration: the storage driver, the core, the
HTTP API under its prefix, the listener, and the background services (storage health
check, upload purging, notifications).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.resource import IResource, NoResource, Resource
from twisted.web.server import Site

from registryd import metrics
from registryd.config import Configuration
from registryd.config.storage import UploadPurgingConfig
from registryd.health import StorageHealthCheck
from registryd.periodic import PeriodicService
from registryd.registry.layout import REPOSITORIES
from registryd.registry.uploads import parseStartedAt as _startedAtTime
from registryd.storage.interfaces import SKIP_DIR, IStorageDriver, PathNotFound

log = Logger()


def parseStartedAt(text: bytes | str) -> float:
    """Read an upload's C{startedat} (RFC 3339) as seconds since the epoch. ValueError if unreadable."""
    return _startedAtTime(text).timestamp()


class UploadPurger(PeriodicService):
    """
    C{storage.maintenance.uploadpurging}: every interval, delete uploads older than age
    under every repository's C{_uploads} (only report them with dry run). The first pass
    runs shortly after start-up, so a registry restarted daily still purges.
    """

    log = Logger()

    def __init__(
        self,
        driver: IStorageDriver,
        config: UploadPurgingConfig,
        clock: IReactorTime,
        firstDelay: float = 60.0,
    ) -> None:
        super().__init__(clock, config.interval, firstDelay)
        self._driver = driver
        self._config = config

    async def purge(self, now: float | None = None) -> list[str]:
        """Purge once. @return: the upload directories deleted (or that would be, in dry run)."""
        now = self._clock.seconds() if now is None else now
        uploadDirectories: list[str] = []

        def visit(info: Any) -> object:
            if not info.isDir:
                return None
            base = info.path.rsplit("/", 1)[-1]
            if base == "_uploads":
                uploadDirectories.append(info.path)
                return SKIP_DIR
            if base.startswith("_"):
                return SKIP_DIR
            return None

        try:
            await self._driver.walk(REPOSITORIES, visit)
        except PathNotFound:
            return []
        purged = []
        for directory in uploadDirectories:
            try:
                uploads = await self._driver.list(directory)
            except PathNotFound:
                continue
            for upload in uploads:
                started = await self._startedAt(upload)
                if started is None or now - started <= self._config.age:
                    continue
                purged.append(upload)
                if self._config.dryRun:
                    self.log.info("upload purging (dry run) would delete {upload}", upload=upload)
                    continue
                try:
                    await self._driver.delete(upload)
                except PathNotFound:
                    continue
                metrics.UPLOADS_PURGED.inc()
                self.log.info(
                    "upload purging deleted {upload} (started {age:.0f}s ago)",
                    upload=upload,
                    age=now - started,
                )
        if purged and not self._config.dryRun:
            self.log.info("upload purging deleted {count} abandoned uploads", count=len(purged))
        return purged

    async def _startedAt(self, upload: str) -> float | None:
        try:
            return parseStartedAt(await self._driver.getContent(f"{upload}/startedat"))
        except PathNotFound:
            pass
        except ValueError:
            self.log.warn("upload {upload} has an unreadable startedat; using its data's age", upload=upload)
        try:
            return float((await self._driver.stat(f"{upload}/data")).modTime)
        except PathNotFound:
            # Neither file: too young to have written anything, or not an upload at all. Leave it.
            return None

    def _run(self) -> Deferred:
        d = ensureDeferred(self.purge())

        def failed(failure: Any) -> None:
            metrics.UPLOAD_PURGE_FAILURES.inc()
            self.log.failure("upload purging failed", failure)

        d.addErrback(failed)
        return d


class PrefixResource(Resource):
    """Serves a resource under a path prefix (C{http.prefix}, e.g. C{/my/registry/}) and 404 elsewhere."""

    def __init__(self, prefix: str, resource: IResource) -> None:
        super().__init__()
        self._segments = [segment.encode("utf-8") for segment in prefix.strip("/").split("/")]
        self._resource = resource

    def getChildWithDefault(self, path: bytes, request: Any) -> IResource:
        rest = self._segments[1:]
        if path != self._segments[0] or request.postpath[: len(rest)] != rest:
            return NoResource()
        for _ in rest:
            request.prepath.append(request.postpath.pop(0))
        return self._resource

    def render(self, request: Any) -> bytes:
        return NoResource().render(request)


class ListenFailed(SystemExit):
    """The listener could not be opened; twistd exits with this one-line message."""


class DrainingService(StreamServerEndpointService):
    """
    The HTTP listener. On stop it closes the port, closes idle connections, and gives
    requests in flight up to C{http.draintimeout} to finish before dropping them.
    """

    def __init__(
        self, endpoint: Any, site: Site, drainTimeout: float, clock: IReactorTime, factory: Any = None
    ) -> None:
        # factory: what listens, when it wraps the site (TLS); connections are tracked at the site.
        super().__init__(endpoint, site if factory is None else factory)
        self._drainTimeout = drainTimeout
        self._clock = clock
        self.connections: set[Any] = set()
        build = site.buildProtocol

        # Track live connections by wrapping the site's protocol factory method.
        def buildProtocol(addr: Any) -> Any:
            channel = build(addr)
            if channel is not None:
                self.connections.add(channel)
                lost = channel.connectionLost

                def connectionLost(reason: Any) -> Any:
                    self.connections.discard(channel)
                    return lost(reason)

                channel.connectionLost = connectionLost
            return channel

        site.buildProtocol = buildProtocol  # type: ignore[method-assign]

    # A listen that fails at start-up (port taken, no permission) must stop twistd, not leave
    # a process running that serves nothing: raise out of privilegedStartService.
    _raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise ListenFailed(
                f"http.addr: cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}"
            ) from e

    def listening(self) -> Deferred:
        """@return: Deferred firing with the listening port once it listens (after privilegedStartService)."""
        listening: Deferred = Deferred()

        def listened(port: Any) -> Any:
            listening.callback(port)
            return port

        self._waitingForPort.addCallback(listened)
        return listening

    @staticmethod
    def _busy(channel: Any) -> bool:
        inner = getattr(channel, "_channel", channel)
        return bool(getattr(inner, "requests", None))

    @staticmethod
    def _close(channel: Any) -> None:
        inner = getattr(channel, "_channel", channel)
        if getattr(inner, "transport", None) is not None:
            # HTTPChannel.loseConnection first unregisters the channel as its transport's
            # producer: a TLS transport does not close while a producer is registered.
            inner.loseConnection()

    def stopService(self) -> Deferred:
        stopped = super().stopService()
        return ensureDeferred(self._drain(stopped))

    async def _drain(self, stopped: Deferred | None) -> None:
        if stopped is not None:
            await stopped
        for channel in list(self.connections):
            if not self._busy(channel):
                self._close(channel)
        deadline = self._clock.seconds() + self._drainTimeout
        while any(self._busy(c) for c in self.connections) and self._clock.seconds() < deadline:
            await deferLater(self._clock, 0.05, lambda: None)
        for channel in list(self.connections):
            self._close(channel)


class _CacheCloser(Service):
    """Closes the blob descriptor cache's connections when the service stops."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache

    def stopService(self) -> Deferred:
        """@return: Deferred firing when the cache let go of its connections."""
        Service.stopService(self)
        return self._cache.close()


def _secret(config: Configuration) -> bytes:
    if config.http.secret is not None:
        return config.http.secret.encode("utf-8")
    log.warn(
        "http.secret is not set: generated one for this process. Upload URLs will not survive "
        "a restart and will not work across registry processes sharing this storage; set "
        "http.secret to the same value everywhere for that."
    )
    return os.urandom(32)


def makeService(
    config: Configuration, reactor: Any = None, inheritedSocket: int | None = None
) -> MultiService:
    """
    Build the registry service: driver, core, API, listener, health check and purger.
    With C{inheritedSocket} (in a worker process, see L{registryd.workers}) serve that
    listening socket and leave what runs once per deployment to the main process.

    @raise registryd.config.errors.ConfigError: the driver is not installed or its
        parameters are wrong (the driver plugin names the key).
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    from registryd.api.app import RegistryAPI
    from registryd.api.settings import APISettings
    from registryd.auth.controllers import accessControllerFor
    from registryd.health import healthChecksFor
    from registryd.notifications.bridge import EventBridge, NoEvents
    from registryd.notifications.endpoints import notificationServiceFor
    from registryd.notifications.events import EventBuilder, sourceRecord
    from registryd.plugins import createStorageDriver
    from registryd.registry.core import Registry
    from registryd.registry.descriptorcache import NoDescriptorCache, descriptorCacheFor
    from registryd.storage.instrumented import InstrumentedDriver
    from registryd.storage.middleware import applyStorageMiddleware
    from registryd.web.site import RegistrySite

    storage = config.storage
    # Every operation of the configured driver, as middleware.storage changes its redirects,
    # is timed for the debug server's metrics (redirect signing included).
    driver = InstrumentedDriver(
        applyStorageMiddleware(
            createStorageDriver(reactor, storage.driver, dict(storage.parameters)),
            config.middleware.storage,
            reactor,
        )
    )
    from registryd.workers import checkWorkers, sharedSecret

    checkWorkers(config)
    worker = inheritedSocket is not None
    descriptorCache = descriptorCacheFor(reactor, storage, config.redis)
    if config.http.workers > 1 and storage.blobDescriptorCache == "inmemory":
        # Each process would keep its own: a delete through one would not reach the others.
        if not worker:
            log.warn("storage.cache.blobdescriptor inmemory is not used with http.workers > 1 (use redis)")
        descriptorCache = NoDescriptorCache()
    registry = Registry(
        driver,
        deleteEnabled=storage.deleteEnabled,
        readOnly=storage.readOnly,
        descriptorCache=descriptorCache,
    )

    top = MultiService()
    _CacheCloser(descriptorCache).setServiceParent(top)
    health: Callable[[], str | None] = lambda: None  # noqa: E731
    checks = healthChecksFor(config.health, driver, reactor)
    checks.setName("health")
    checks.setServiceParent(top)
    metrics.FiguresSource(metrics.HEALTH, checks.statuses).setServiceParent(top)
    if checks.checks:
        health = checks.problem

    if storage.uploadPurging.enabled and not worker:
        if storage.readOnly:
            log.info("upload purging is off while storage.maintenance.readonly is enabled")
        else:
            purger = UploadPurger(driver, storage.uploadPurging, reactor)
            purger.setName("storage.maintenance.uploadpurging")
            purger.setServiceParent(top)

    if storage.gc.enabled and not worker:
        if storage.readOnly:
            log.info("scheduled garbage collection is off while storage.maintenance.readonly is enabled")
        else:
            from registryd.gc import ScheduledGarbageCollection

            collection = ScheduledGarbageCollection(
                Registry(driver, descriptorCache=descriptorCache), storage.gc, reactor
            )
            collection.setName("storage.maintenance.gc")
            collection.setServiceParent(top)

    # Before the listener: started before requests come, stopped after they drained, so
    # every event of an answered request reaches the queue.
    events: EventBridge | NoEvents = NoEvents()
    notifications = notificationServiceFor(config.notifications, reactor)
    if notifications is not None:
        notifications.setName("notifications")
        notifications.setServiceParent(top)
        metrics.FiguresSource(metrics.NOTIFICATIONS, notifications.figures).setServiceParent(top)
        builder = EventBuilder(
            source=sourceRecord(config.http.addr), includeReferences=config.notifications.includeReferences
        )
        events = EventBridge(builder, notifications.broadcast)

    shared = sharedSecret(config)  # when unset: generated here, handed to the workers
    secret = _secret(config) if shared is None else shared.encode("utf-8")
    settings = APISettings(
        prefix=config.http.prefix,
        host=config.http.host,
        relativeURLs=config.http.relativeURLs,
        headers=dict(config.http.headers),
        secret=secret,
        redirectDisabled=storage.redirectDisabled,
        health=health,
        accessController=accessControllerFor(config.auth, reactor),
        events=events,
    )
    served: Any = registry
    if config.proxy is not None:
        from registryd.proxy.service import pullThroughCache

        served = pullThroughCache(config.proxy, registry, reactor)
        # Lets go of the upstreams' pooled connections on stop, as of the descriptor cache's.
        _CacheCloser(served).setServiceParent(top)
    api = RegistryAPI(served, settings)
    resource: IResource = api.resource()
    if config.http.prefix:
        resource = PrefixResource(config.http.prefix, resource)
    site = RegistrySite(resource, accessLog=not config.log.accessLogDisabled)

    if worker:
        from registryd.workers import AdoptedEndpoint

        endpoint: Any = AdoptedEndpoint(reactor, inheritedSocket)
    else:
        endpoint = serverFromString(reactor, config.http.endpoint())
    tls: Any = None
    if config.http.tls is not None:
        from registryd.reload import ReloadHook
        from registryd.web.tls import ReloadingContextFactory, tlsFactory

        contextFactory = ReloadingContextFactory(config.http.tls, reactor)  # ConfigError names the file's key
        tls = tlsFactory(contextFactory, site)
        ReloadHook(contextFactory.reload).setServiceParent(top)
    listener = DrainingService(endpoint, site, config.http.drainTimeout, reactor, factory=tls)
    listener.setName("http")
    listener.setServiceParent(top)
    if config.http.workers > 1 and not worker:
        from registryd.reload import ReloadHook
        from registryd.workers import WorkerPool

        pool = WorkerPool(
            reactor, listener, config.http.workers, config.path, shared, config.http.drainTimeout + 10
        )
        pool.setName("http.workers")
        pool.setServiceParent(top)
        ReloadHook(pool.reload).setServiceParent(top)
    if config.http.debug is not None and not worker:
        from registryd.debug import debugService

        debug = debugService(config.http.debug, checks.failing, reactor)
        debug.setName("http.debug")
        debug.setServiceParent(top)
        log.info(
            "debug server on {endpoint}: /debug/health{metrics}",
            endpoint=config.http.debug.endpoint(),
            metrics=f", {config.http.debug.prometheusPath}" if config.http.debug.prometheusEnabled else "",
        )
    from registryd.reload import SIGHUPService

    SIGHUPService(reactor).setServiceParent(top)
    log.info(
        "registryd on {endpoint}{tls} with {driver} storage (delete {delete}, read-only {readonly})",
        endpoint=config.http.endpoint(),
        tls=" (TLS)" if tls is not None else "",
        driver=storage.driver,
        delete="enabled" if storage.deleteEnabled else "disabled",
        readonly="yes" if storage.readOnly else "no",
    )
    return top


__all__ = [
    "DrainingService",
    "PrefixResource",
    "StorageHealthCheck",
    "UploadPurger",
    "makeService",
    "parseStartedAt",
]

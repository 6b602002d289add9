"""
The notification endpoints as a service: one pipeline per configured endpoint.

    broadcast(events) ─► per endpoint: ignore rules ─► durable queue (SQLite) ─► deliverer
                          ─► retrying sink (breaker, back-off) ─► the endpoint's sink plugin

C{broadcast} is called once per API request with that request's events. It only appends
to the queues (a small SQLite transaction, see L{registryd.notifications.queue}) and
wakes the deliverers; it never waits for a receiver and never raises, so a slow or dead
endpoint does not slow the API. Each deliverer sends its queue's batches one at a time,
oldest first (one request per batch, as distribution), and removes a batch once its sink
accepted it; what is still queued at shutdown is delivered after the restart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from registryd.config.errors import ConfigError
from registryd.config.notifications import EndpointConfig, NotificationsConfig, QueueConfig
from registryd.notifications.interfaces import (
    INotificationSink,
    INotificationSinkFactory,
    QueueUnavailable,
)
from registryd.notifications.queue import Batch, EndpointQueue, QueueStore
from registryd.notifications.retry import RetryingSink

#: The queue file's name when C{notifications.queue.path} is a directory or not set.
QUEUE_FILE = "notifications.sqlite"

log = Logger()


def queuePathFor(config: QueueConfig, environ: Mapping[str, str] = os.environ) -> str:
    """
    The SQLite file of the queues: C{queue.path} itself, or C{notifications.sqlite} in it
    when it is a directory, or in registryd's data directory when it is not set
    (C{/var/lib/registryd} when writable, else C{$XDG_DATA_HOME/registryd}).
    """
    if config.path is None:
        from registryd.config.loader import defaultRootDirectory

        return os.path.join(defaultRootDirectory(environ), QUEUE_FILE)
    if os.path.isdir(config.path):
        return os.path.join(config.path, QUEUE_FILE)
    return config.path


def sinkFactories(package: Any = None) -> dict[str, INotificationSinkFactory]:
    """Every installed notification sink plugin, by name."""
    from registryd.plugins import pluginsByName

    return pluginsByName(INotificationSinkFactory, "notification sink", package)


def createSink(reactor: Any, endpoint: EndpointConfig, package: Any = None) -> INotificationSink:
    """
    Make the endpoint's sink with the plugin its C{type} names.

    @raise ConfigError: the plugin is not installed (listing those that are), or it
        refused the endpoint's settings.
    """
    from registryd.plugins import findPlugin

    keyPath = (*endpoint.keyPath, "type")
    factory = findPlugin(INotificationSinkFactory, "notification sink", endpoint.sink, keyPath, package)
    sink = factory.create(reactor, endpoint)
    if not INotificationSink.providedBy(sink):
        raise ConfigError(f"plugin did not make an INotificationSink but {sink!r}", keyPath)
    return sink


def isIgnored(endpoint: EndpointConfig, event: Mapping[str, Any]) -> bool:
    """Whether the endpoint's ignore rules leave event out: its target's media type, or its action."""
    if event.get("action") in endpoint.ignoreActions:
        return True
    target = event.get("target")
    mediaType = target.get("mediaType") if isinstance(target, Mapping) else None
    return mediaType is not None and (
        mediaType in endpoint.ignoredMediaTypes or mediaType in endpoint.ignoreMediaTypes
    )


class Endpoint(Service):
    """
    One endpoint's pipeline: filters and queues batches, and delivers them in order.

    @ivar delivered: events accepted by the sink since start-up.
    """

    log = Logger()

    def __init__(self, config: EndpointConfig, queue: EndpointQueue, sink: RetryingSink, clock: Any) -> None:
        self.config = config
        self.name = config.name
        self._queue = queue
        self._sink = sink
        self._clock = clock
        self.delivered = 0
        self._wake: Deferred | None = None
        self._loop: Deferred | None = None
        self._inFlight: Batch | None = None
        self._write: Deferred | None = None
        self._pause: Deferred | None = None

    def accept(self, events: list[tuple[Mapping[str, Any], str]]) -> None:
        """Queue the events (each with its JSON text) the ignore rules let through, as one batch."""
        texts = [text for event, text in events if not isIgnored(self.config, event)]
        if not texts:
            return
        dropped = self._queue.append(texts)
        if dropped and self._inFlight is not None and self._write is not None:
            oldest = self._queue.oldest()
            if oldest is None or oldest > self._inFlight.seqs[-1]:
                # The batch being retried was dropped at the bound: stop retrying it.
                self._write.cancel()
        self._wakeUp()

    def figures(self) -> dict[str, int]:
        """Events pending (queued now), delivered, failed (in failed attempts) and dropped (at the bound)."""
        return {
            "pending": self._queue.pending,
            "delivered": self.delivered,
            "failed": self._sink.failedEvents,
            "dropped": self._queue.dropped,
        }

    def _wakeUp(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.callback(None)

    def startService(self) -> None:
        super().startService()
        self._loop = Deferred.fromCoroutine(self._deliverAll())

    def stopService(self) -> Deferred:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        # Closing the retrying sink cancels the write in flight; its events stay queued.
        closing = self._sink.close()
        self._wakeUp()
        if self._pause is not None:
            self._pause.cancel()
        if self._loop is not None:
            await self._loop
        try:
            await closing
        except Exception:
            self.log.failure("closing the sink of notification endpoint {endpoint}", endpoint=self.name)

    async def _deliverAll(self) -> None:
        while self.running:
            try:
                batch = self._queue.head()
                if batch is None:
                    self._wake = Deferred()
                    await self._wake
                    continue
                await self._deliver(batch)
            except Exception:
                if not self.running:
                    return
                # The queue itself failed (disk full, file removed): try again later, without spinning.
                self.log.failure("notification endpoint {endpoint}: delivery failed", endpoint=self.name)
                self._pause = deferLater(self._clock, max(self.config.backoff, 1.0), lambda: None)
                try:
                    await self._pause
                except CancelledError:
                    return
                finally:
                    self._pause = None

    async def _deliver(self, batch: Batch) -> None:
        self._inFlight = batch
        self._write = self._sink.write(batch.events)
        try:
            await self._write
        except CancelledError:
            # Dropped at the bound (the next batch is now the oldest) or stopping.
            return
        finally:
            self._inFlight = None
            self._write = None
        self.delivered += self._queue.remove(batch.seqs)


class NotificationService(MultiService):
    """
    The endpoints of C{notifications}, each a child service, over one queue file.

    @ivar includeReferences: C{notifications.events.includereferences}, for whoever builds events.
    """

    log = Logger()

    def __init__(self, store: QueueStore, endpoints: list[Endpoint], includeReferences: bool = False) -> None:
        super().__init__()
        self._store = store
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.includeReferences = includeReferences
        for endpoint in endpoints:
            endpoint.setServiceParent(self)

    def broadcast(self, events: list[dict[str, Any]]) -> None:
        """Queue one request's events for every endpoint; never blocks on a receiver, never raises."""
        if not events:
            return
        try:
            encoded = []
            for event in events:
                try:
                    encoded.append((event, json.dumps(event, separators=(",", ":"), ensure_ascii=False)))
                except (TypeError, ValueError):
                    self.log.failure(
                        "notification event cannot be written as JSON; left out: {event!r}", event=event
                    )
            if not encoded:
                return
            for endpoint in self.endpoints.values():
                try:
                    endpoint.accept(encoded)
                except Exception:
                    self.log.failure(
                        "notification endpoint {endpoint}: cannot queue events", endpoint=endpoint.name
                    )
        except Exception:
            self.log.failure("notification broadcast failed")

    def figures(self) -> dict[str, dict[str, int]]:
        """Per endpoint: events pending, delivered, failed and dropped (see L{Endpoint.figures})."""
        return {name: endpoint.figures() for name, endpoint in self.endpoints.items()}

    def stopService(self) -> Deferred:
        d = super().stopService()
        d.addBoth(self._closeStore)
        return d

    def _closeStore(self, result: object) -> object:
        self._store.close()
        return result


def notificationServiceFor(
    config: NotificationsConfig,
    reactor: Any,
    package: Any = None,
    environ: Mapping[str, str] = os.environ,
) -> NotificationService | None:
    """
    Build the service of the configured endpoints, or None when none is enabled.

    @param package: the plugin package to find sinks in (C{twisted.plugins} by default).
    @raise ConfigError: a sink plugin is missing or refuses its settings, or the queue
        file cannot be opened (naming C{notifications.queue.path}).
    """
    enabled = [endpoint for endpoint in config.endpoints if not endpoint.disabled]
    for endpoint in config.endpoints:
        if endpoint.disabled:
            log.info("notification endpoint {endpoint} is disabled", endpoint=endpoint.name)
    if not enabled:
        return None
    sinks = [(endpoint, createSink(reactor, endpoint, package)) for endpoint in enabled]
    path = queuePathFor(config.queue, environ)
    try:
        store = QueueStore(path)
    except QueueUnavailable as e:
        for _, sink in sinks:
            sink.close()
        raise ConfigError(str(e), ("notifications", "queue", "path")) from e
    names = {endpoint.name for endpoint in enabled}
    for orphan in store.endpoints():
        if orphan not in names:
            log.warn(
                "notification queue {path} holds events of endpoint {endpoint}, which is not enabled; "
                "they stay queued until it is",
                path=path,
                endpoint=orphan,
            )
    endpoints = []
    for endpoint, sink in sinks:
        log.info(
            "configuring notification endpoint {endpoint} ({sink}): timeout={timeout}s, "
            "threshold={threshold}, backoff={backoff}s, maxpending={maxPending}, headers={headers}",
            endpoint=endpoint.name,
            sink=sink,
            timeout=endpoint.timeout,
            threshold=endpoint.threshold,
            backoff=endpoint.backoff,
            maxPending=endpoint.maxPending,
            headers=sorted(endpoint.headers),
        )
        retrying = RetryingSink(sink, endpoint.threshold, endpoint.backoff, reactor, name=repr(sink))
        endpoints.append(
            Endpoint(endpoint, store.queue(endpoint.name, endpoint.maxPending), retrying, reactor)
        )
    log.info("notification queues in {path}", path=path)
    return NotificationService(store, endpoints, includeReferences=config.includeReferences)

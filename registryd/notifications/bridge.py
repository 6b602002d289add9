"""
The bridge from the API to the notification service: the handlers of one request record
what they did (L{RequestEvents}); once the request has answered successfully (a status
below 400, the whole response written), its events go to the broadcaster in one batch,
as distribution sends the events of one request together. A request that failed, or
whose client went away, broadcasts nothing.

The broadcaster (L{registryd.notifications.endpoints.NotificationService.broadcast})
queues and returns; anything it raises is logged here, never seen by the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from registryd.notifications import events as ev
from registryd.notifications.events import EventBuilder

log = Logger(namespace="registryd.notifications")

Broadcast = Callable[[list[dict[str, Any]]], None]
URLFor = Callable[[str], str]

# Where a request keeps its RequestEvents, so every handler step adds to the one batch.
_REQUEST_EVENTS = "registryEvents"


class RequestEvents:
    """
    The events of one API request, sent together when it has answered successfully.

    Handlers call one method per thing done; URLs of the content are built with the
    request's own URL builder (so they match its Location headers).

    @ivar enabled: False for the silent recorder (no notifications configured), so a
        handler can skip work done only for events.
    """

    enabled = True

    def __init__(self, builder: EventBuilder, request: Any, urlFor: URLFor, broadcast: Broadcast) -> None:
        self._builder = builder
        self._request = request
        self._urlFor = urlFor
        self._broadcast = broadcast
        self._record: dict[str, str] | None = None
        self.events: list[dict[str, Any]] = []
        request.notifyFinish().addCallbacks(self._answered, lambda _: None)

    def _add(self, action: str, target: dict[str, Any]) -> None:
        if self._record is None:
            self._record = ev.requestRecord(self._request)
        self.events.append(self._builder.event(action, target, self._record, ev.actorRecord(self._request)))

    def _answered(self, _: object) -> None:
        code = getattr(self._request, "code", 200)
        if not self.events or code >= 400:
            return
        batch, self.events = self.events, []
        try:
            self._broadcast(batch)
        except Exception:
            log.failure(
                "broadcasting {count} events of request {id}", count=len(batch), id=batch[0]["request"]["id"]
            )

    def _manifest(self, action: str, repository: str, manifest: Any, tag: str | None) -> None:
        url = self._urlFor(f"/v2/{repository}/manifests/{manifest.digest}")
        target = self._builder.manifestTarget(
            repository, manifest.mediaType, manifest.digest, manifest.size, url, manifest.content, tag
        )
        self._add(action, target)

    def _blob(self, action: str, repository: str, descriptor: Any, fromRepository: str | None = None) -> None:
        url = self._urlFor(f"/v2/{repository}/blobs/{descriptor.digest}")
        self._add(
            action,
            self._builder.blobTarget(repository, descriptor.digest, descriptor.size, url, fromRepository),
        )

    def manifestPushed(self, repository: str, manifest: Any, tag: str | None = None) -> None:
        """A manifest was stored (an L{IManifest}), by tag when C{tag} is given."""
        self._manifest(ev.PUSH, repository, manifest, tag)

    def manifestPulled(self, repository: str, manifest: Any, tag: str | None = None) -> None:
        """A manifest was fetched (C{GET} or C{HEAD}), by tag when C{tag} is given."""
        self._manifest(ev.PULL, repository, manifest, tag)

    def manifestDeleted(self, repository: str, digest: str) -> None:
        """A manifest revision was deleted."""
        self._add(ev.DELETE, self._builder.deleteTarget(repository, digest=digest))

    def tagDeleted(self, repository: str, tag: str) -> None:
        """A tag was deleted (by itself, or with the manifest it pointed at)."""
        self._add(ev.DELETE, self._builder.deleteTarget(repository, tag=tag))

    def blobPushed(self, repository: str, descriptor: Any) -> None:
        """An upload completed: the blob (an L{IDescriptor}) is in the repository."""
        self._blob(ev.PUSH, repository, descriptor)

    def blobPulled(self, repository: str, descriptor: Any) -> None:
        """A blob was served (C{GET}, C{HEAD}, a range, a 304 or a redirect)."""
        self._blob(ev.PULL, repository, descriptor)

    def blobMounted(self, repository: str, descriptor: Any, fromRepository: str | None) -> None:
        """A blob of another repository was linked into this one."""
        self._blob(ev.MOUNT, repository, descriptor, fromRepository)

    def blobDeleted(self, repository: str, digest: str) -> None:
        """A blob was unlinked from the repository."""
        self._add(ev.DELETE, self._builder.deleteTarget(repository, digest=digest))


class SilentEvents:
    """The recorder when notifications are off: every record is dropped at once."""

    enabled = False

    def _drop(self, *args: Any, **kwargs: Any) -> None:
        pass

    manifestPushed = manifestPulled = manifestDeleted = tagDeleted = _drop
    blobPushed = blobPulled = blobMounted = blobDeleted = _drop


SILENT = SilentEvents()


class NoEvents:
    """The bridge of an API without notifications: requests record nothing."""

    def forRequest(self, request: Any, urlFor: URLFor) -> RequestEvents | SilentEvents:
        """The silent recorder."""
        return SILENT


class EventBridge:
    """
    The bridge of an API with notifications: each request gets one L{RequestEvents},
    which hands its batch to C{broadcast} when the request answered successfully.
    """

    def __init__(self, builder: EventBuilder, broadcast: Broadcast) -> None:
        self.builder = builder
        self._broadcast = broadcast

    def forRequest(self, request: Any, urlFor: URLFor) -> RequestEvents:
        """The request's recorder (made on first use; later calls return the same one)."""
        recorder = getattr(request, _REQUEST_EVENTS, None)
        if recorder is None:
            recorder = RequestEvents(self.builder, request, urlFor, self._broadcast)
            setattr(request, _REQUEST_EVENTS, recorder)
        return recorder


__all__ = ["SILENT", "EventBridge", "NoEvents", "RequestEvents", "SilentEvents"]

"""
registryd's Prometheus metrics: module-level prometheus-client objects with bounded label
sets (a route name, never a raw path; a method from a fixed list), and collectors that read
figures other parts keep (notification endpoints, health checks) at scrape time.

The debug server (L{registryd.debug}) serves them from prometheus-client's default registry,
alongside its process and Python collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.application.service import Service

# HTTP requests, counted once each when the answer is finished (registryd.web.site).

_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "registryd_http_requests",
    "HTTP requests answered, by method, API route name and status code.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "registryd_http_request_duration_seconds",
    "Time from a request's headers to the end of its answer, by method and API route name.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
REQUEST_BYTES = Counter(
    "registryd_http_request_bytes", "Request body bytes received, by API route name.", ["route"]
)
RESPONSE_BYTES = Counter(
    "registryd_http_response_bytes", "Response body bytes sent, by API route name.", ["route"]
)
UPLOADS = Counter(
    "registryd_uploads",
    "Content pushed: blob uploads completed and manifests stored (kind blob or manifest).",
    ["kind"],
)
DOWNLOADS = Counter(
    "registryd_downloads",
    "Content pulled: blob and manifest GETs answered with content or a redirect (kind blob or manifest).",
    ["kind"],
)

# Storage driver operations (registryd.storage.instrumented).

STORAGE_DURATION = Histogram(
    "registryd_storage_operation_duration_seconds",
    "Storage driver operations and their latency (its _count is the number of operations),"
    " by driver and operation.",
    ["driver", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STORAGE_ERRORS = Counter(
    "registryd_storage_errors",
    "Storage driver operations that failed, by driver, operation and error (PathNotFound is"
    " how a driver says something is absent, often an expected answer).",
    ["driver", "operation", "error"],
)

# The blob descriptor cache (registryd.registry.descriptorcache).

DESCRIPTOR_CACHE = Counter(
    "registryd_blob_descriptor_cache_lookups",
    "Blob descriptor cache lookups, by cache (inmemory, redis) and result (hit, miss, error).",
    ["cache", "result"],
)

# The pull-through cache (registryd.proxy).

PROXY_REQUESTS = Counter(
    "registryd_proxy_requests",
    "Pull-through cache lookups, by kind (blob, manifest) and result (hit: from storage; miss: fetched"
    " upstream; revalidated: an expired tag the upstream confirmed; stale: served cached, upstream failing).",
    ["kind", "result"],
)
PROXY_UPSTREAM_BYTES = Counter(
    "registryd_proxy_upstream_bytes",
    "Blob bytes received from an upstream registry, by its URL.",
    ["upstream"],
)
PROXY_UPSTREAM_ERRORS = Counter(
    "registryd_proxy_upstream_errors",
    "Upstream requests and transfers that failed (unreachable, 5xx, broken transfer), by upstream URL.",
    ["upstream"],
)

# Maintenance (registryd.service.UploadPurger).

UPLOADS_PURGED = Counter(
    "registryd_uploads_purged",
    "Abandoned uploads deleted by storage.maintenance.uploadpurging.",
)
UPLOAD_PURGE_FAILURES = Counter(
    "registryd_upload_purge_failures",
    "Upload purging passes that stopped with an error.",
)


def methodLabel(method: bytes | str) -> str:
    """A request method as a label value: one of the methods the API knows, else C{other}."""
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    return method if method in _METHODS else "other"


_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """
    metric.labels(*values), remembered: prometheus-client checks and looks the values up under
    a lock on every call, a few microseconds several times per request. Bounded, as every
    label set here is.
    """
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def countRequest(record: Any) -> None:
    """Count one finished request (a L{registryd.web.accesslog.RequestRecord})."""
    method = methodLabel(record.method)
    route = record.route
    labelled(REQUESTS, method, route, str(record.status)).inc()
    if record.duration is not None:
        labelled(REQUEST_DURATION, method, route).observe(record.duration)
    if record.bytesReceived:
        labelled(REQUEST_BYTES, route).inc(record.bytesReceived)
    if record.bytesSent:
        labelled(RESPONSE_BYTES, route).inc(record.bytesSent)
    transfer = _transfer(method, route, record.status, record.uri)
    if transfer is not None:
        counter, kind = transfer
        counter.labels(kind).inc()


def _transfer(method: str, route: str, status: int, uri: str) -> tuple[Counter, str] | None:
    """Which upload or download a request was, if any, from its route and status."""
    if status == 201 and route == "upload.put":
        return UPLOADS, "blob"
    if status == 201 and route == "uploads.start" and "mount=" not in uri:
        return UPLOADS, "blob"  # a monolithic POST with ?digest= (a mount moves no content)
    if status == 201 and route == "manifest.put":
        return UPLOADS, "manifest"
    if method == "GET" and route == "blob.get" and status in (200, 206, 307):
        return DOWNLOADS, "blob"
    if method == "GET" and route == "manifest.get" and status == 200:
        return DOWNLOADS, "manifest"
    return None


class _Sources:
    """Figure sources that come and go with the services that own them."""

    def __init__(self) -> None:
        self._sources: dict[int, Callable[[], Any]] = {}
        self._next = 0

    def add(self, source: Callable[[], Any]) -> Callable[[], None]:
        """Read C{source()} at every scrape until the returned function is called."""
        key = self._next
        self._next += 1
        self._sources[key] = source

        def remove() -> None:
            self._sources.pop(key, None)

        return remove

    def read(self) -> list[Any]:
        """The figures of every source now."""
        return [source() for source in list(self._sources.values())]


class NotificationCollector(Collector):
    """
    Per notification endpoint, read from C{NotificationService.figures()} at scrape time:
    events pending, delivered, failed (in failed attempts) and dropped at the queue's bound.
    """

    def __init__(self) -> None:
        self.sources = _Sources()

    def collect(self) -> Iterator[Any]:
        pending = GaugeMetricFamily(
            "registryd_notification_events_pending",
            "Notification events queued for an endpoint and not delivered yet.",
            labels=["endpoint"],
        )
        counters = {
            name: CounterMetricFamily(f"registryd_notification_events_{name}", help, labels=["endpoint"])
            for name, help in (
                ("delivered", "Notification events an endpoint accepted."),
                ("failed", "Notification events in delivery attempts that failed (each retry counts)."),
                ("dropped", "Notification events dropped because an endpoint's queue was full."),
            )
        }
        totals: dict[str, dict[str, int]] = {}
        for figures in self.sources.read():
            for endpoint, values in figures.items():
                total = totals.setdefault(endpoint, {})
                for key, value in values.items():
                    total[key] = total.get(key, 0) + value
        for endpoint, values in sorted(totals.items()):
            pending.add_metric([endpoint], values.get("pending", 0))
            for name, family in counters.items():
                family.add_metric([endpoint], values.get(name, 0))
        yield pending
        yield from counters.values()


class HealthCollector(Collector):
    """Per health check, 1 while it passes and 0 while it fails, read at scrape time."""

    def __init__(self) -> None:
        self.sources = _Sources()

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "registryd_health_check_up",
            "1 while a health check passes, 0 while it fails (API requests then get 503).",
            labels=["check"],
        )
        for statuses in self.sources.read():
            for name, problem in sorted(statuses.items()):
                family.add_metric([name], 0 if problem else 1)
        yield family


NOTIFICATIONS = NotificationCollector()
HEALTH = HealthCollector()
REGISTRY.register(NOTIFICATIONS)
REGISTRY.register(HEALTH)


class FiguresSource(Service):
    """
    Feeds a collector (L{NOTIFICATIONS}, L{HEALTH}) from C{read()} while this service runs,
    so a stopped registry's figures leave the scrape with it.
    """

    def __init__(
        self, collector: NotificationCollector | HealthCollector, read: Callable[[], Mapping]
    ) -> None:
        self._collector = collector
        self._read = read
        self._remove: Callable[[], None] | None = None

    def startService(self) -> None:
        super().startService()
        self._remove = self._collector.sources.add(self._read)

    def stopService(self) -> None:
        super().stopService()
        if self._remove is not None:
            self._remove()
            self._remove = None


__all__ = [
    "DOWNLOADS",
    "HEALTH",
    "NOTIFICATIONS",
    "PROXY_REQUESTS",
    "PROXY_UPSTREAM_BYTES",
    "PROXY_UPSTREAM_ERRORS",
    "REQUESTS",
    "REQUEST_BYTES",
    "REQUEST_DURATION",
    "RESPONSE_BYTES",
    "STORAGE_DURATION",
    "STORAGE_ERRORS",
    "UPLOADS",
    "UPLOADS_PURGED",
    "UPLOAD_PURGE_FAILURES",
    "FiguresSource",
    "HealthCollector",
    "countRequest",
    "NotificationCollector",
    "methodLabel",
]

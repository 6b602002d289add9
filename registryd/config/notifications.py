"""
The C{notifications} section: where events go, with distribution's keys and a few of ours.

distribution's keys: C{events.includereferences}, and per endpoint C{name}, C{disabled},
C{url}, C{headers}, C{timeout}, C{threshold}, C{backoff}, C{ignoredmediatypes},
C{ignore.mediatypes} and C{ignore.actions}. Ours, per endpoint: C{type} (the sink plugin,
C{http} by default), C{parameters} (that plugin's own settings), C{secret} (signs each
body with HMAC-SHA256), C{mediatype} (the envelope's media type, v2 by default, v1 for
older receivers) and C{maxpending} (the bound of the endpoint's durable queue); and
C{queue.path}, the SQLite file holding every endpoint's queue.

Absent keys take distribution's documented example values (C{timeout: 1s},
C{threshold: 10}, C{backoff: 1s}); C{maxpending} defaults to L{DEFAULT_MAX_PENDING}
events. Without C{queue.path} the queue file is C{notifications.sqlite} in registryd's
data directory: C{/var/lib/registryd} when writable, else C{$XDG_DATA_HOME/registryd}
(see L{registryd.notifications.endpoints.queuePathFor}).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from registryd.config import parsers
from registryd.config.errors import ConfigError

KEY = ["notifications"]

EVENTS_V2 = "application/vnd.docker.distribution.events.v2+json"
EVENTS_V1 = "application/vnd.docker.distribution.events.v1+json"
MEDIA_TYPES = (EVENTS_V2, EVENTS_V1)

#: Events an endpoint's queue holds at most unless C{maxpending} says otherwise.
DEFAULT_MAX_PENDING = 100_000

_ENDPOINT_KEYS = (
    "name",
    "disabled",
    "url",
    "headers",
    "timeout",
    "threshold",
    "backoff",
    "ignoredmediatypes",
    "ignore",
    "type",
    "parameters",
    "secret",
    "mediatype",
    "maxpending",
)


@dataclass(frozen=True)
class EndpointConfig:
    """
    One entry of C{notifications.endpoints}.

    @ivar sink: C{type}: the name of the sink plugin that delivers (C{http}: the webhook).
    @ivar parameters: C{parameters}: a plugin sink's own settings, handed to it as they are.
    @ivar secret: C{secret}: key of the HMAC-SHA256 signature header, or None for no signature.
    @ivar mediaType: C{mediatype}: the envelope's media type (the request's Content-Type).
    @ivar maxPending: C{maxpending}: events the durable queue holds at most (None: no bound).
    @ivar index: the entry's position in C{notifications.endpoints}, for error key paths.
    """

    name: str
    url: str = ""
    disabled: bool = False
    headers: dict[str, list[str]] = field(default_factory=dict)
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignoredMediaTypes: tuple[str, ...] = ()
    ignoreMediaTypes: tuple[str, ...] = ()
    ignoreActions: tuple[str, ...] = ()
    sink: str = "http"
    parameters: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None
    mediaType: str = EVENTS_V2
    maxPending: int | None = DEFAULT_MAX_PENDING
    index: int = 0

    @property
    def keyPath(self) -> tuple[str, ...]:
        """The key path of this entry, e.g. ('notifications', 'endpoints', '0')."""
        return (*KEY, "endpoints", str(self.index))


@dataclass(frozen=True)
class QueueConfig:
    """C{notifications.queue}: C{path} is the SQLite file (or a directory to hold it); None: the default."""

    path: str | None = None


@dataclass(frozen=True)
class NotificationsConfig:
    """The C{notifications} section: no endpoints means no notifications at all."""

    includeReferences: bool = False
    endpoints: tuple[EndpointConfig, ...] = ()
    queue: QueueConfig = field(default_factory=QueueConfig)


def _stringList(value: object, keyPath: parsers.KeyPath) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of strings, got {parsers.typeName(value)}", keyPath)
    return tuple(parsers.string(item, keyPath) for item in value)


def _headers(value: object, keyPath: parsers.KeyPath) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, values in parsers.mapping(value, keyPath).items():
        path = [*keyPath, name]
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            raise ConfigError(f"expected a list of values, got {parsers.typeName(values)}", path)
        for item in values:
            if not isinstance(item, str):
                raise ConfigError(f"header values must be strings, got {parsers.typeName(item)}", path)
            if "\r" in item or "\n" in item:
                raise ConfigError("header values must not contain line breaks", path)
        headers[name] = list(values)
    return headers


def _url(value: object, keyPath: parsers.KeyPath) -> str:
    url = parsers.string(value, keyPath)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"expected an http:// or https:// URL, got {url!r}", keyPath)
    return url


def _positiveDuration(value: object, keyPath: parsers.KeyPath) -> float:
    seconds = parsers.duration(value, keyPath)
    if seconds <= 0:
        raise ConfigError(f"must be more than zero, got {value!r}", keyPath)
    return seconds


def _mediaType(value: object, keyPath: parsers.KeyPath) -> str:
    mediaType = parsers.string(value, keyPath)
    if mediaType not in MEDIA_TYPES:
        raise ConfigError(f"expected one of {', '.join(MEDIA_TYPES)}, got {mediaType!r}", keyPath)
    return mediaType


def _endpoint(value: object, index: int) -> EndpointConfig:
    keyPath = [*KEY, "endpoints", str(index)]
    values = parsers.mapping(value, keyPath, allowNone=False)
    parsers.onlyKeys(values, _ENDPOINT_KEYS, keyPath)
    name = parsers.optional(values, "name", parsers.string, "", keyPath)
    if not name:
        raise ConfigError("required: a name for the endpoint", [*keyPath, "name"])
    sink = parsers.optional(values, "type", parsers.string, "http", keyPath)
    if not sink:
        raise ConfigError("must name a sink plugin", [*keyPath, "type"])
    url = parsers.optional(values, "url", _url, "", keyPath)
    if sink == "http" and not url:
        raise ConfigError("required: the URL events are posted to", [*keyPath, "url"])
    ignore = parsers.mapping(values.get("ignore"), [*keyPath, "ignore"])
    parsers.onlyKeys(ignore, ("mediatypes", "actions"), [*keyPath, "ignore"])
    secret = parsers.optional(values, "secret", parsers.string, None, keyPath)
    if secret == "":
        raise ConfigError("must not be empty (remove it to send no signature)", [*keyPath, "secret"])
    return EndpointConfig(
        name=name,
        url=url,
        disabled=parsers.optional(values, "disabled", parsers.boolean, False, keyPath),
        headers=parsers.optional(values, "headers", _headers, {}, keyPath),
        timeout=parsers.optional(values, "timeout", _positiveDuration, 1.0, keyPath),
        threshold=parsers.optional(
            values, "threshold", lambda v, p: parsers.integer(v, p, minimum=0), 10, keyPath
        ),
        backoff=parsers.optional(values, "backoff", parsers.duration, 1.0, keyPath),
        ignoredMediaTypes=parsers.optional(values, "ignoredmediatypes", _stringList, (), keyPath),
        ignoreMediaTypes=parsers.optional(ignore, "mediatypes", _stringList, (), [*keyPath, "ignore"]),
        ignoreActions=parsers.optional(ignore, "actions", _stringList, (), [*keyPath, "ignore"]),
        sink=sink,
        parameters=parsers.optional(values, "parameters", parsers.mapping, {}, keyPath),
        secret=secret,
        mediaType=parsers.optional(values, "mediatype", _mediaType, EVENTS_V2, keyPath),
        maxPending=parsers.optional(
            values, "maxpending", lambda v, p: parsers.integer(v, p, minimum=1), DEFAULT_MAX_PENDING, keyPath
        ),
        index=index,
    )


def parseNotifications(section: object) -> NotificationsConfig:
    """Validate the C{notifications} section; endpoint names must be unique (they name the queues)."""
    values = parsers.mapping(section, KEY)
    parsers.onlyKeys(values, ("events", "endpoints", "queue"), KEY)
    events = parsers.mapping(values.get("events"), [*KEY, "events"])
    parsers.onlyKeys(events, ("includereferences",), [*KEY, "events"])
    queue = parsers.mapping(values.get("queue"), [*KEY, "queue"])
    parsers.onlyKeys(queue, ("path",), [*KEY, "queue"])
    queuePath = parsers.optional(queue, "path", parsers.string, None, [*KEY, "queue"])
    if queuePath == "":
        raise ConfigError("must not be empty (remove it for the default)", [*KEY, "queue", "path"])
    listed = values.get("endpoints")
    if listed is None:
        listed = []
    if not isinstance(listed, list):
        raise ConfigError(
            f"expected a list of endpoints, got {parsers.typeName(listed)}", [*KEY, "endpoints"]
        )
    endpoints = tuple(_endpoint(entry, index) for index, entry in enumerate(listed))
    seen: dict[str, int] = {}
    for endpoint in endpoints:
        if endpoint.name in seen:
            raise ConfigError(
                f"endpoint name {endpoint.name!r} is already used by entry {seen[endpoint.name]}",
                [*endpoint.keyPath, "name"],
            )
        seen[endpoint.name] = endpoint.index
    return NotificationsConfig(
        includeReferences=parsers.optional(
            events, "includereferences", parsers.boolean, False, [*KEY, "events"]
        ),
        endpoints=endpoints,
        queue=QueueConfig(path=queuePath),
    )


def describeEndpoint(endpoint: EndpointConfig) -> Mapping[str, Any]:
    """The endpoint's settings for start-up logs: header values and the secret left out."""
    return {
        "name": endpoint.name,
        "type": endpoint.sink,
        "url": endpoint.url,
        "timeout": endpoint.timeout,
        "threshold": endpoint.threshold,
        "backoff": endpoint.backoff,
        "headers": sorted(endpoint.headers),
        "signed": endpoint.secret is not None,
    }

"""
The built-in sink, C{type: http}: POSTs each batch to the endpoint's URL as distribution does.

The request: C{POST <url>} with body C{{"events": [...]}} (compact JSON, UTF-8),
C{Content-Type} the endpoint's C{mediatype} (C{application/vnd.docker.distribution.events.v2+json}
by default), the endpoint's C{headers}, and the whole exchange bounded by C{timeout}.
Any 2xx or 3xx answer means delivered (redirects are not followed: a 3xx already counts,
and re-posting events to wherever it points is not what the operator configured);
anything else, a connection error or the timeout is a failure the retrying sink retries.

Signature (ours, when the endpoint has a C{secret}): the header

    X-Registry-Signature: sha256=<hex of HMAC-SHA256(key=the secret as UTF-8, message=the exact body)>

A receiver recomputes the HMAC over the raw body it read (before parsing the JSON) and
compares in constant time; a retry re-sends the same body, so the same signature. The
events' C{id} and C{timestamp} let a receiver refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import treq
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from zope.interface import implementer

from registryd.config.errors import ConfigError
from registryd.config.notifications import EVENTS_V2, EndpointConfig
from registryd.notifications.interfaces import DeliveryFailed, INotificationSink, SinkClosed

SIGNATURE_HEADER = "X-Registry-Signature"


def envelope(events: list[dict[str, Any]]) -> bytes:
    """The request body of a batch: distribution's envelope C{{"events": [...]}} as UTF-8 JSON."""
    return json.dumps({"events": events}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The C{X-Registry-Signature} value of body: C{sha256=} and the hex HMAC-SHA256 keyed with secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@implementer(INotificationSink)
class HTTPSink:
    """Posts batches to one URL over a pool of persistent connections."""

    def __init__(
        self,
        reactor: Any,
        url: str,
        headers: dict[str, list[str]] | None = None,
        timeout: float = 1.0,
        mediaType: str = EVENTS_V2,
        secret: str | None = None,
        clock: Any = None,
    ) -> None:
        self.url = url
        # clock: what times the timeout (the reactor unless a test gives a Clock).
        self._clock = reactor if clock is None else clock
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._mediaType = mediaType
        self._secret = secret
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._client = treq.client.HTTPClient(Agent(reactor, pool=self._pool))
        self._closed = False
        self._inFlight: set[Deferred] = set()

    def __repr__(self) -> str:
        return f"httpSink{{{self.url}}}"

    def headersFor(self, body: bytes) -> Headers:
        """The request headers of body: the configured ones, Content-Type and the signature."""
        headers = Headers()
        for name, values in self._headers.items():
            headers.setRawHeaders(name, list(values))
        headers.setRawHeaders("Content-Type", [self._mediaType])
        if self._secret is not None:
            headers.setRawHeaders(SIGNATURE_HEADER, [signature(self._secret, body)])
        return headers

    def write(self, events: list[dict[str, Any]]) -> Deferred:
        """POST the batch; @return: Deferred firing with the status code of a 2xx/3xx answer."""
        if self._closed:
            return fail(SinkClosed(repr(self)))
        body = envelope(events)
        d = Deferred.fromCoroutine(self._post(body))
        d.addTimeout(self._timeout, self._clock, onTimeoutCancel=self._timedOut)
        self._inFlight.add(d)
        d.addBoth(self._settled, d)
        return d

    def _timedOut(self, result: object, timeout: float) -> object:
        raise DeliveryFailed(repr(self), f"no answer within {timeout:g}s")

    def _settled(self, result: object, d: Deferred) -> object:
        self._inFlight.discard(d)
        return result

    async def _post(self, body: bytes) -> int:
        try:
            response = await self._client.post(
                self.url, data=body, headers=self.headersFor(body), allow_redirects=False
            )
        except CancelledError:
            raise
        except Exception as e:
            raise DeliveryFailed(repr(self), f"error posting: {e}") from e
        # Read the answer to its end, so the connection can carry the next batch.
        await treq.collect(response, lambda data: None)
        if not 200 <= response.code < 400:
            phrase = response.phrase.decode("latin-1") if response.phrase else ""
            raise DeliveryFailed(repr(self), f"response status {response.code} {phrase}".rstrip())
        return response.code

    def close(self) -> Deferred:
        """Abandon posts in flight and close the pooled connections."""
        self._closed = True
        for d in list(self._inFlight):
            d.cancel()
        return self._pool.closeCachedConnections()


def createSink(reactor: Any, endpoint: EndpointConfig) -> HTTPSink:
    """The webhook sink of an endpoint (it takes its settings from the endpoint's own keys)."""
    for key in endpoint.parameters:
        raise ConfigError(
            "the http sink takes no parameters (url, headers, timeout... are endpoint keys)",
            (*endpoint.keyPath, "parameters", key),
        )
    if not endpoint.url:
        raise ConfigError("required: the URL events are posted to", (*endpoint.keyPath, "url"))
    return HTTPSink(
        reactor,
        endpoint.url,
        headers=endpoint.headers,
        timeout=endpoint.timeout,
        mediaType=endpoint.mediaType,
        secret=endpoint.secret,
    )

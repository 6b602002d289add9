"""The http sink against a real receiver on loopback: body, headers, signature, statuses, timeout."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface.verify import verifyObject

from registryd.config.errors import ConfigError
from registryd.config.notifications import EVENTS_V1, EVENTS_V2, EndpointConfig
from registryd.notifications.interfaces import DeliveryFailed, INotificationSink
from registryd.notifications.webhook import SIGNATURE_HEADER, HTTPSink, createSink, envelope

EVENTS = [
    {"id": "e1", "action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json"}},
    {"id": "e2", "action": "push", "target": {"repository": "café/x"}},
]


class Receiver(Resource):
    """A webhook receiver: records each POST; answers with the next of C{statuses} (then 200), or hangs."""

    isLeaf = True

    def __init__(self, statuses: list[int] | None = None, hang: bool = False) -> None:
        super().__init__()
        self.statuses = list(statuses or [])
        self.hang = hang
        self.requests: list[tuple[Any, bytes]] = []
        self.hanging: list[Any] = []
        self.codes: list[int] = []
        self._waiting: list[tuple[int, Deferred]] = []

    def start(self, case: TestCase) -> str:
        """Listen on loopback for the test's duration; @return: the URL to post to."""
        port = reactor.listenTCP(0, Site(self), interface="127.0.0.1")
        case.addCleanup(port.stopListening)
        case.addCleanup(self.release)
        return f"http://127.0.0.1:{port.getHost().port}/hook"

    def release(self) -> None:
        for request in self.hanging:
            if not request.finished and not request._disconnected:
                request.finish()
        self.hanging = []

    def render_POST(self, request: Any) -> Any:
        self.requests.append((request.requestHeaders, request.content.read()))
        for entry in list(self._waiting):
            if len(self.requests) >= entry[0]:
                self._waiting.remove(entry)
                reactor.callLater(0, entry[1].callback, None)
        if self.hang:
            self.hanging.append(request)
            return NOT_DONE_YET
        code = self.statuses.pop(0) if self.statuses else 200
        self.codes.append(code)
        request.setResponseCode(code)
        return b"thanks"

    def received(self, count: int) -> Deferred:
        """Fires once count requests arrived."""
        d: Deferred = Deferred()
        if len(self.requests) >= count:
            d.callback(None)
        else:
            self._waiting.append((count, d))
        return d

    def events(self) -> list[dict[str, Any]]:
        """Every event received and answered with success, in arrival order."""
        return [
            event
            for (_, body), code in zip(self.requests, self.codes, strict=False)
            if code < 400
            for event in json.loads(body)["events"]
        ]


class HTTPSinkTests(TestCase):
    def sink(self, url: str, **kwargs: Any) -> HTTPSink:
        sink = HTTPSink(reactor, url, **kwargs)
        self.addCleanup(sink.close)
        return sink

    def test_provides_the_interface(self) -> None:
        verifyObject(INotificationSink, self.sink("http://127.0.0.1:9/"))

    async def test_posts_the_envelope_with_media_type_and_headers(self) -> None:
        receiver = Receiver([202])
        sink = self.sink(receiver.start(self), headers={"Authorization": ["Bearer t"], "X-Two": ["a", "b"]})
        self.assertEqual(await sink.write(EVENTS), 202)
        ((headers, body),) = receiver.requests
        self.assertEqual(json.loads(body), {"events": EVENTS})
        self.assertEqual(body, envelope(EVENTS))
        self.assertEqual(headers.getRawHeaders("Content-Type"), [EVENTS_V2])
        self.assertEqual(headers.getRawHeaders("Authorization"), ["Bearer t"])
        self.assertEqual(headers.getRawHeaders("X-Two"), ["a", "b"])
        self.assertIsNone(headers.getRawHeaders(SIGNATURE_HEADER))

    async def test_v1_media_type_for_older_receivers(self) -> None:
        receiver = Receiver()
        await self.sink(receiver.start(self), mediaType=EVENTS_V1).write(EVENTS)
        self.assertEqual(receiver.requests[0][0].getRawHeaders("Content-Type"), [EVENTS_V1])

    async def test_signature_is_hmac_sha256_of_the_exact_body(self) -> None:
        receiver = Receiver()
        await self.sink(receiver.start(self), secret="s3cret").write(EVENTS)
        headers, body = receiver.requests[0]
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        self.assertEqual(headers.getRawHeaders(SIGNATURE_HEADER), [f"sha256={expected}"])

    async def test_redirects_count_as_delivered_and_are_not_followed(self) -> None:
        receiver = Receiver([302, 204])
        sink = self.sink(receiver.start(self))
        self.assertEqual(await sink.write(EVENTS), 302)
        self.assertEqual(await sink.write(EVENTS), 204)
        self.assertEqual(len(receiver.requests), 2)

    async def test_error_status_is_a_failure(self) -> None:
        for status in (400, 404, 500, 503):
            receiver = Receiver([status])
            with self.assertRaises(DeliveryFailed) as caught:
                await self.sink(receiver.start(self)).write(EVENTS)
            self.assertIn(str(status), str(caught.exception))

    async def test_unreachable_receiver_is_a_failure(self) -> None:
        port = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        await port.stopListening()
        with self.assertRaises(DeliveryFailed) as caught:
            await self.sink(url).write(EVENTS)
        self.assertIn("error posting", str(caught.exception))

    async def test_timeout_bounds_a_receiver_that_does_not_answer(self) -> None:
        receiver = Receiver(hang=True)
        clock = Clock()
        sink = self.sink(receiver.start(self), timeout=0.5, clock=clock)
        d = sink.write(EVENTS)
        await receiver.received(1)
        self.assertNoResult(d)
        clock.advance(0.5)
        failure = self.failureResultOf(d, DeliveryFailed)
        self.assertIn("no answer within 0.5s", str(failure.value))

    def test_create_sink_from_endpoint(self) -> None:
        endpoint = EndpointConfig(name="a", url="http://127.0.0.1:9/", secret="k", index=2)
        sink = createSink(reactor, endpoint)
        self.addCleanup(sink.close)
        self.assertEqual(repr(sink), "httpSink{http://127.0.0.1:9/}")
        with self.assertRaises(ConfigError) as caught:
            createSink(reactor, EndpointConfig(name="a", url="http://x/", parameters={"topic": "t"}, index=2))
        self.assertEqual(caught.exception.keyPath, ("notifications", "endpoints", "2", "parameters", "topic"))

"""
Tests for L{registryd.web.request}: request bodies stream to the route over a real socket.

treq's in-memory agent uses twisted.web's default request factory, so these tests speak
HTTP over loopback TCP to a L{RegistrySite}.
"""

from __future__ import annotations

import hashlib

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from registryd.web import request as requestModule
from registryd.web.body import bodyStream
from registryd.web.request import StreamingBody
from registryd.web.site import RegistrySite


class _Sink(Resource):
    """A resource that pulls the body chunk by chunk and answers with its size and sha256."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.firstChunk: defer.Deferred = defer.Deferred()
        self.maxBuffered = 0
        self.readDelay = 0.0
        self.bodyClasses: list[type] = []
        self.failures: list[Exception] = []

    def render_GET(self, request):
        return b"plain get"

    def render_PATCH(self, request):
        """Answer 404 at once, without reading the body."""
        request.setResponseCode(404)
        return b"nope"

    def render_PUT(self, request):
        defer.ensureDeferred(self._consume(request))
        return NOT_DONE_YET

    render_POST = render_PUT

    async def _consume(self, request) -> None:
        stream = bodyStream(request)
        self.bodyClasses.append(type(stream))
        hasher = hashlib.sha256()
        size = 0
        try:
            while True:
                if isinstance(stream, StreamingBody):
                    self.maxBuffered = max(self.maxBuffered, stream._buffered)
                chunk = await stream.read()
                if not chunk:
                    break
                if not self.firstChunk.called:
                    self.firstChunk.callback(stream.received if isinstance(stream, StreamingBody) else None)
                size += len(chunk)
                hasher.update(chunk)
                if self.readDelay:
                    await _sleep(self.readDelay)
        except Exception as e:
            self.failures.append(e)
            return
        request.write(f"{size} {hasher.hexdigest()}".encode())
        request.finish()


def _sleep(seconds: float) -> defer.Deferred:
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class _Client(protocol.Protocol):
    """Collects everything the server sends; can wait for a number of HTTP responses."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: defer.Deferred = defer.Deferred()
        self._waiters: list[tuple[bytes, int, defer.Deferred]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._check()

    def waitFor(self, marker: bytes, count: int = 1) -> defer.Deferred:
        d = defer.Deferred()
        self._waiters.append((marker, count, d))
        self._check()
        return d

    def _check(self) -> None:
        for waiter in list(self._waiters):
            marker, count, d = waiter
            if self.received.count(marker) >= count:
                self._waiters.remove(waiter)
                d.callback(self.received)

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


class StreamingRequestTests(unittest.TestCase):
    """Bodies reach the route while they are still arriving, with back-pressure."""

    timeout = 30

    def setUp(self) -> None:
        self.sink = _Sink()
        self.site = RegistrySite(self.sink)
        d = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.site)
        d.addCallback(self._listening)
        return d

    def _listening(self, port) -> None:
        self.port = port
        self.addCleanup(port.stopListening)

    async def _connect(self) -> _Client:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        client = await connectProtocol(endpoint, _Client())
        self.addCleanup(lambda: client.transport.loseConnection() or client.lost)
        return client

    @defer.inlineCallbacks
    def test_route_reads_before_body_is_complete(self):
        """The route gets the first chunk while the client has sent only half the body."""
        client = yield defer.ensureDeferred(self._connect())
        half = b"a" * (1 << 20)
        client.transport.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (2 * len(half)))
        client.transport.write(half)
        receivedAtFirstChunk = yield self.sink.firstChunk
        self.assertLessEqual(receivedAtFirstChunk, len(half))
        self.assertNotIn(b"HTTP/1.1 200", client.received)
        client.transport.write(half)
        yield client.waitFor(b"2097152 " + hashlib.sha256(half * 2).hexdigest().encode())
        expected = hashlib.sha256(half * 2).hexdigest().encode()
        self.assertIn(b"2097152 " + expected, client.received)
        self.assertEqual(self.sink.bodyClasses, [StreamingBody])

    @defer.inlineCallbacks
    def test_chunked_transfer_encoding(self):
        """A body sent with Transfer-Encoding: chunked (as podman sends a layer) streams whole."""
        client = yield defer.ensureDeferred(self._connect())
        parts = [b"x" * 1000, b"y" * 70000, b"z" * 3]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        client.transport.write(b"PATCH /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        # PATCH answers 404 at once; use PUT for the streamed body check.
        client.transport.write(wire)
        yield client.waitFor(b"nope")
        client.transport.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.transport.write(wire)
        body = b"".join(parts)
        yield client.waitFor(b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode()))

    @defer.inlineCallbacks
    def test_chunked_body_goes_through_our_decoder(self):
        """twisted.web's chunked decoder is swapped for registryd.web.chunked's, which copies nothing."""
        used = []

        class Recording(requestModule.ChunkedBodyDecoder):
            def dataReceived(self, data: bytes) -> None:
                used.append(len(data))
                super().dataReceived(data)

        self.patch(requestModule, "ChunkedBodyDecoder", Recording)
        client = yield defer.ensureDeferred(self._connect())
        body = b"w" * 300000
        client.transport.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        yield client.waitFor(b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode()))
        self.assertGreater(sum(used), len(body))

    @defer.inlineCallbacks
    def test_malformed_chunked_body_answers_400(self):
        client = yield defer.ensureDeferred(self._connect())
        client.transport.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.transport.write(b"5\r\nabcdeXX0\r\n\r\n")
        yield client.lost
        self.assertIn(b"400", client.received.split(b"\r\n", 1)[0])

    @defer.inlineCallbacks
    def test_early_answer_keeps_connection_in_step(self):
        """A route answering before reading the body: the rest is dropped and the next request works."""
        client = yield defer.ensureDeferred(self._connect())
        body = b"q" * (3 << 20)
        client.transport.write(b"PATCH /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        client.transport.write(body)
        client.transport.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        received = yield client.waitFor(b"plain get")
        self.assertTrue(received.startswith(b"HTTP/1.1 404"))
        self.assertEqual(received.count(b"HTTP/1.1 "), 2)

    @defer.inlineCallbacks
    def test_continue_goes_out_before_an_immediate_answer(self):
        """With Expect: 100-continue, the 100 precedes the route's answer even when it answers at once."""
        client = yield defer.ensureDeferred(self._connect())
        client.transport.write(
            b"PATCH /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        yield client.waitFor(b"100 Continue")
        client.transport.write(b"hello")
        received = yield client.waitFor(b"nope")
        self.assertTrue(received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404"))

    @defer.inlineCallbacks
    def test_slow_route_pauses_the_socket(self):
        """A route reading slowly never has more than the high-water mark (plus one receive) waiting."""
        self.patch(requestModule, "HIGH_WATER", 1 << 20)
        self.patch(requestModule, "LOW_WATER", 256 << 10)
        self.sink.readDelay = 0.002
        client = yield defer.ensureDeferred(self._connect())
        size = 24 << 20
        client.transport.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"b" * (1 << 20)
        for _ in range(size // len(block)):
            client.transport.write(block)
        yield client.waitFor(b"%d " % size)
        self.assertLessEqual(self.sink.maxBuffered, (1 << 20) + 2 * requestModule.RECEIVE_BUFFER)

    @defer.inlineCallbacks
    def test_disconnect_fails_the_read(self):
        """A client that goes away mid-body makes the route's read fail, not hang."""
        client = yield defer.ensureDeferred(self._connect())
        client.transport.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        client.transport.write(b"c" * 1000)
        yield self.sink.firstChunk
        client.transport.loseConnection()
        yield client.lost
        for _ in range(50):
            if self.sink.failures:
                break
            yield _sleep(0.01)
        self.assertEqual(len(self.sink.failures), 1)

    @defer.inlineCallbacks
    def test_small_body_arriving_with_headers(self):
        """A body that arrives in the same packet as the headers is still delivered whole."""
        client = yield defer.ensureDeferred(self._connect())
        client.transport.write(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        yield client.waitFor(b"3 " + hashlib.sha256(b"abc").hexdigest().encode())


class TLSOnPlainHTTPTests(unittest.TestCase):
    """A TLS handshake sent to the plain-HTTP listener is refused at once."""

    timeout = 30

    def setUp(self) -> None:
        self.site = RegistrySite(_Sink())
        d = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.site)
        d.addCallback(self._listening)
        return d

    def _listening(self, port) -> None:
        self.port = port
        self.addCleanup(port.stopListening)

    @defer.inlineCallbacks
    def test_client_hello_gets_400_and_close(self):
        """A ClientHello (first byte 0x16) is answered with 400 and closed, no more bytes needed."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        client = yield connectProtocol(endpoint, _Client())
        client.transport.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
        yield client.lost
        self.assertTrue(client.received.startswith(b"HTTP/1.0 400 Bad Request\r\n"))

    @defer.inlineCallbacks
    def test_plain_request_still_served(self):
        """An ordinary request on a fresh connection is untouched by the check."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        client = yield connectProtocol(endpoint, _Client())
        self.addCleanup(lambda: client.transport.loseConnection() or client.lost)
        client.transport.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        yield client.waitFor(b"plain get")


class ResponseHeaderTests(unittest.TestCase):
    """What every answer carries, or does not."""

    timeout = 30

    @defer.inlineCallbacks
    def test_no_server_header(self):
        """Like distribution, the registry does not announce its software and version."""
        site = RegistrySite(_Sink())
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        client = yield connectProtocol(endpoint, _Client())
        self.addCleanup(lambda: client.transport.loseConnection() or client.lost)
        client.transport.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        received = yield client.waitFor(b"plain get")
        self.assertNotIn(b"\r\nserver:", received.lower())


class LocalAddressTests(unittest.TestCase):
    """A connection's local address is asked of the socket once, not once per request."""

    def test_asked_once_per_channel(self) -> None:
        from twisted.internet.address import IPv4Address
        from twisted.web.test.requesthelper import DummyChannel

        channel = DummyChannel()
        asked: list[int] = []
        address = IPv4Address("TCP", "127.0.0.1", 5000)
        channel.transport.getHost = lambda: asked.append(1) or address
        first = requestModule.RegistryRequest(channel)
        second = requestModule.RegistryRequest(channel)
        self.assertEqual((first.getHost(), second.getHost()), (address, address))
        self.assertEqual(len(asked), 1)
        other = DummyChannel()
        other.transport.getHost = lambda: asked.append(1) or address
        requestModule.RegistryRequest(other)
        self.assertEqual(len(asked), 2)  # another connection asks for its own

"""
The API over a real socket with the daemon's L{RegistrySite}: upload bodies stream into
the routes as they arrive, downloads stream out through the producer with the transport's
back-pressure. (The in-memory tests use twisted.web's default request, which buffers.)
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import urlsplit

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from registryd.storage.inmemory import InMemoryDriver
from registryd.web.site import RegistrySite
from tests.test_api_base import APIClient, makeAPI

SIZE = 24 * 1024 * 1024 + 5


@implementer(IBodyProducer)
class _Chunks:
    """A body of SIZE pseudo-random bytes sent with Transfer-Encoding: chunked, 1 MiB at a time."""

    length = UNKNOWN_LENGTH

    def __init__(self, data: bytes) -> None:
        self._data = data

    def startProducing(self, consumer) -> Deferred:
        for i in range(0, len(self._data), 1 << 20):
            consumer.write(self._data[i : i + (1 << 20)])
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class SocketTests(unittest.TestCase):
    def setUp(self) -> None:
        self.api = makeAPI()
        site = RegistrySite(self.api.resource())
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        # Wait for every server connection to close, so the reactor is clean for the next test.
        closed: list[Deferred] = []
        build = site.buildProtocol

        def tracked(address):
            protocol = build(address)
            lost, gone = protocol.connectionLost, Deferred()
            closed.append(gone)

            def connectionLost(reason):
                lost(reason)
                gone.callback(None)

            protocol.connectionLost = connectionLost
            return protocol

        site.buildProtocol = tracked
        self.addCleanup(lambda: gatherResults(closed))
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=self.pool))
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def test_chunked_patch_put_and_download_stream(self) -> None:
        data = os.urandom(SIZE)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = await self.http.post(self.base + "/v2/big/blobs/uploads/")
        self.assertEqual(started.code, 202)
        await started.content()
        location = started.headers.getRawHeaders("Location")[0]
        patched = await self.http.request("PATCH", location, data=_Chunks(data))
        self.assertEqual(patched.code, 202, await patched.content())
        self.assertEqual(patched.headers.getRawHeaders("Range")[0], f"0-{SIZE - 1}")
        await patched.content()
        parts = urlsplit(patched.headers.getRawHeaders("Location")[0])
        done = await self.http.put(f"{self.base}{parts.path}?{parts.query}&digest={digest}")
        self.assertEqual(done.code, 201, await done.content())
        await done.content()

        got = await self.http.get(f"{self.base}/v2/big/blobs/{digest}")
        self.assertEqual(got.code, 200)
        body = await got.content()
        self.assertEqual(len(body), SIZE)
        self.assertEqual(hashlib.sha256(body).hexdigest(), digest.split(":")[1])

        ranged = await self.http.get(
            f"{self.base}/v2/big/blobs/{digest}", headers={"Range": "bytes=1000-2999"}
        )
        self.assertEqual(ranged.code, 206)
        self.assertEqual(await ranged.content(), data[1000:3000])

    async def test_out_of_order_patch_answers_416_before_the_body(self) -> None:
        started = await self.http.post(self.base + "/v2/repo/blobs/uploads/")
        await started.content()
        location = started.headers.getRawHeaders("Location")[0]
        data = os.urandom(3 * 1024 * 1024)
        answer = await self.http.request(
            "PATCH", location, data=data, headers={"Content-Range": f"5-{5 + len(data) - 1}"}
        )
        self.assertEqual(answer.code, 416)
        self.assertEqual(answer.headers.getRawHeaders("Range"), ["0-0"])
        await answer.content()
        status = await self.http.get(location)
        self.assertEqual((status.code, status.headers.getRawHeaders("Range")), (204, ["0-0"]))
        await status.content()


class _Raw(Protocol):
    """A client that sends raw bytes and collects what comes back."""

    def __init__(self) -> None:
        self.received = b""
        self.gotData: Deferred = Deferred()
        self.lost: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.gotData.called:
            self.gotData.callback(None)

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


class _CountingDriver(InMemoryDriver):
    """Counts the readers handed out and closed."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.closed = 0

    def reader(self, path: str, offset: int = 0) -> Deferred:
        def count(reader):
            self.opened += 1
            close = reader.close

            def closing():
                self.closed += 1
                return close()

            reader.close = closing
            return reader

        return super().reader(path, offset).addCallback(count)


class DisconnectTests(unittest.TestCase):
    def setUp(self) -> None:
        self.driver = _CountingDriver()
        self.api = makeAPI(driver=self.driver)
        self.port = reactor.listenTCP(0, RegistrySite(self.api.resource()), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def connect(self) -> _Raw:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        return await connectProtocol(endpoint, _Raw())

    async def settle(self, condition) -> None:
        for _ in range(200):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)

    def uploads(self) -> list[str]:
        return [p for p in list(self.driver._files) + list(self.driver._pending) if "/_uploads/" in p]

    async def test_disconnect_during_monolithic_post_discards_the_upload(self) -> None:
        client = await self.connect()
        digest = "sha256:" + "0" * 64
        client.transport.write(
            f"POST /v2/repo/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: r\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n" % (300_000,)
            + b"x" * 300_000
            + b"\r\n"
        )
        await self.settle(lambda: any(p.endswith("/data") for p in self.uploads()))
        self.assertTrue(self.uploads(), "the upload should have started")
        client.transport.abortConnection()
        await client.lost
        await self.settle(lambda: not self.uploads())
        self.assertEqual(self.uploads(), [])

    async def test_disconnect_during_download_closes_the_reader(self) -> None:
        data = os.urandom(64 * 1024 * 1024)
        digest = await APIClient(self.api).pushBlob("repo", data)
        client = await self.connect()
        client.transport.write(f"GET /v2/repo/blobs/{digest} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
        await client.gotData
        self.assertEqual(self.driver.opened, 1)
        client.transport.abortConnection()
        await client.lost
        await self.settle(lambda: self.driver.closed == 1)
        self.assertEqual(self.driver.closed, 1)
        self.assertLess(len(client.received), len(data))

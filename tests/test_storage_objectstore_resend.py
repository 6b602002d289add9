"""Requests of the object-store drivers sent again when a kept-alive connection closed under them."""

from __future__ import annotations

import treq
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool, ResponseNeverReceived

from registryd.storage.objectstore import STALE_CONNECTION_RETRIES, sendOverPool


class ClosingAfterFirst(Protocol):
    """Answers the first request on a connection (keep-alive), then drops the connection at the next."""

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.answered = 0
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            if self.answered >= self.factory.answersPerConnection:
                # What an idle timeout on the server looks like from the client as it sends.
                self.transport.loseConnection()
                return
            self.answered += 1
            self.factory.bodies.append(rest[:length])
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class ClosingFactory(Factory):
    protocol = ClosingAfterFirst

    def __init__(self, answersPerConnection: int) -> None:
        self.answersPerConnection = answersPerConnection
        self.connections = 0
        self.bodies: list[bytes] = []


class SendOverPoolTests(TestCase):
    def serve(self, answersPerConnection: int = 1) -> tuple[ClosingFactory, str]:
        factory = ClosingFactory(answersPerConnection)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        self.pool = pool
        return factory, f"http://127.0.0.1:{port.getHost().port}/object"

    def put(self, url: str, body: bytes) -> object:
        return treq.put(url, data=body, pool=self.pool, reactor=reactor)

    async def test_put_resent_on_a_fresh_connection(self) -> None:
        factory, url = self.serve()
        first = await sendOverPool(lambda: self.put(url, b"part one"))
        await treq.content(first)
        second = await sendOverPool(lambda: self.put(url, b"part two"))
        self.assertEqual((second.code, await treq.content(second)), (200, b"ok"))
        self.assertEqual(factory.bodies, [b"part one", b"part two"])
        self.assertEqual(factory.connections, 2)

    async def test_without_resending_the_request_fails(self) -> None:
        # What the drivers saw before (radosgw closing idle connections): the put is lost.
        factory, url = self.serve()
        await treq.content(await self.put(url, b"part one"))
        with self.assertRaises(ResponseNeverReceived):
            await self.put(url, b"part two")

    async def test_gives_up_after_the_retries(self) -> None:
        factory, url = self.serve(answersPerConnection=0)
        with self.assertRaises(ResponseNeverReceived):
            await sendOverPool(lambda: self.put(url, b"never answered"))
        self.assertEqual(factory.connections, STALE_CONNECTION_RETRIES + 1)

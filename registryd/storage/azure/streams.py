"""
The azure driver's streams: a writer staging one block per chunk, and a reader pausing the
connection while too much waits unread.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from registryd.storage.interfaces import IFileReader, IFileWriter, StorageDriverError

if TYPE_CHECKING:
    from registryd.storage.azure.driver import AzureDriver

MAX_READ_CHUNK = 1 << 20
READ_HIGH_WATER = 4 << 20


def makeBlockID(index: int) -> str:
    """The block ID of the index-th block of a writer: every ID of a blob has the same length."""
    return base64.b64encode(f"block-{index:010d}".encode()).decode()


def blockIndex(blockID: str) -> int | None:
    """The index a block ID of ours carries, or None for a block someone else staged."""
    try:
        text = base64.b64decode(blockID, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not re.fullmatch(r"block-\d{10}", text):
        return None
    return int(text[6:])


@implementer(IFileReader)
class StreamingReader(Protocol):
    """Receives one response body, pausing the connection while too much waits unread."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiting: Deferred | None = None
        self._finished: Failure | None = None
        self._paused = False
        self._closing = False
        self._closeWaiters: list[Deferred] = []

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= READ_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pauseProducing()
        self._wake()

    def _wake(self) -> None:
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.callback(None)

    async def _read(self) -> bytes:
        while not self._buffer and self._finished is None:
            self._waiting = Deferred()
            await self._waiting
        if self._buffer:
            chunk = bytes(self._buffer[:MAX_READ_CHUNK])
            del self._buffer[:MAX_READ_CHUNK]
            if self._paused and len(self._buffer) < READ_HIGH_WATER // 2 and self._finished is None:
                self._paused = False
                self.transport.resumeProducing()
            return chunk
        assert self._finished is not None
        if not self._finished.check(ResponseDone):
            self._finished.raiseException()
        return b""

    def read(self) -> Deferred:
        return Deferred.fromCoroutine(self._read())

    def makeConnection(self, transport: Any) -> None:
        super().makeConnection(transport)
        if self._closing:
            transport.stopProducing()

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:
        self._finished = reason
        self._wake()
        for waiting in self._closeWaiters:
            waiting.callback(None)
        self._closeWaiters = []

    def close(self) -> Deferred:
        self._buffer = bytearray()
        if self._finished is not None:
            return succeed(None)
        self._closing = True
        waiting: Deferred = Deferred()
        self._closeWaiters.append(waiting)
        if self.transport is not None:
            if self._paused:
                self.transport.resumeProducing()
            self.transport.stopProducing()
        return waiting


@implementer(IFileReader)
class EmptyReader:
    """The stream of nothing, read from the end of a blob."""

    def read(self) -> Deferred:
        return succeed(b"")

    def close(self) -> Deferred:
        return succeed(None)


@implementer(IFileWriter)
class BlockWriter:
    """Stages a block each time a chunk fills; only one chunk is ever held."""

    def __init__(self, driver: AzureDriver, path: str, blocks: list[tuple[str, int]]) -> None:
        self._driver = driver
        self._path = path
        self._blocks = blocks
        self._buffer = bytearray()
        self._state = "open"
        self.size = sum(size for _, size in blocks)

    def _check(self) -> None:
        if self._state != "open":
            raise StorageDriverError(self._driver.name, self._path, f"writer already {self._state}")

    async def _stage(self) -> None:
        """Send what is buffered as the next block."""
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        blockID = makeBlockID(len(self._blocks))
        await self._driver._call(
            "PUT", self._path, query={"comp": "block", "blockid": blockID}, body=data, expect=(201,)
        )
        self._blocks.append((blockID, len(data)))

    async def _write(self, data: bytes) -> None:
        self._check()
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._driver.chunkSize:
            chunk = bytes(self._buffer[: self._driver.chunkSize])
            rest = self._buffer[self._driver.chunkSize :]
            self._buffer = bytearray(chunk)
            await self._stage()
            self._buffer = rest

    async def _close(self) -> None:
        self._check()
        self._state = "closed"
        await self._stage()

    async def _cancel(self) -> None:
        self._check()
        self._state = "cancelled"
        self._buffer = bytearray()
        await self._driver._discardUncommitted(self._path)

    async def _commit(self) -> None:
        self._check()
        self._state = "committed"
        await self._stage()
        body = "".join(f"<Latest>{blockID}</Latest>" for blockID, _ in self._blocks)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
        await self._driver._call("PUT", self._path, query={"comp": "blocklist"}, body=xml, expect=(201,))

    def write(self, data: bytes) -> Deferred:
        return Deferred.fromCoroutine(self._write(bytes(data)))

    def close(self) -> Deferred:
        return Deferred.fromCoroutine(self._close())

    def cancel(self) -> Deferred:
        return Deferred.fromCoroutine(self._cancel())

    def commit(self) -> Deferred:
        return Deferred.fromCoroutine(self._commit())

"""Readers streaming a ranged GET with back-pressure, and writers made of multipart uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from registryd.storage.interfaces import IFileReader, IFileWriter, StorageDriverError
from registryd.storage.s3.config import MAX_PART_SIZE, MAX_PARTS

if TYPE_CHECKING:
    from registryd.storage.s3.driver import S3Driver

#: The most a reader hands out at once, and how much it holds before pausing the socket.
READ_CHUNK = 1 << 20
HIGH_WATER = 4 << 20


def partSize(chunkSize: int, partNumber: int) -> int:
    """
    The size of part partNumber: chunkSize, doubling every thousand parts (capped at S3's 5 GiB),
    so 10,000 parts hold about a thousand times chunkSize however the blob grows.
    """
    return min(chunkSize << ((partNumber - 1) * 10 // MAX_PARTS), MAX_PART_SIZE)


@implementer(IFileReader)
class BodyReader(Protocol):
    """Receives a response body, pausing the connection while too much waits to be read."""

    def __init__(self, driverName: str, path: str) -> None:
        self._driverName = driverName
        self._path = path
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._finished: Failure | None = None
        self._done = False
        self._waiting: Deferred | None = None

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pauseProducing()
        self._wake()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._done = True
        if reason is not None and not reason.check(ResponseDone):
            self._finished = reason
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def _take(self) -> bytes:
        taken: list[bytes] = []
        size = 0
        while self._chunks and size < READ_CHUNK:
            chunk = self._chunks.pop(0)
            room = READ_CHUNK - size
            if len(chunk) > room:
                self._chunks.insert(0, chunk[room:])
                chunk = chunk[:room]
            taken.append(chunk)
            size += len(chunk)
        self._buffered -= size
        if self._paused and self._buffered < HIGH_WATER // 2 and not self._done:
            self._paused = False
            self.transport.resumeProducing()
        return b"".join(taken)

    def read(self) -> Deferred:
        if self._chunks:
            return succeed(self._take())
        if self._done:
            if self._finished is not None:
                error = StorageDriverError(
                    self._driverName, self._path, f"read failed: {self._finished.getErrorMessage()}"
                )
                return fail(error)
            return succeed(b"")
        self._waiting = Deferred()
        return self._waiting.addCallback(lambda _: self.read())

    def close(self) -> Deferred:
        if not self._done and self.transport is not None:
            # Dropping the connection is how an unread body is given up.
            self._done = True
            self.transport.stopProducing()
        self._chunks = []
        return succeed(None)


@implementer(IFileReader)
class EmptyReader:
    """A reader at the end of its content."""

    def read(self) -> Deferred:
        return succeed(b"")

    def close(self) -> Deferred:
        return succeed(None)


class Part:
    """An uploaded part of a multipart upload."""

    def __init__(self, number: int, etag: str, size: int) -> None:
        self.number = number
        self.etag = etag
        self.size = size


@implementer(IFileWriter)
class MultipartWriter:
    """
    A write to one key: bytes fill one part-sized buffer, sent as a part once full. Small content
    is one PutObject at commit; close() sends what is buffered as a (possibly short) last part
    and leaves the multipart upload for a later writer to find.
    """

    def __init__(
        self,
        driver: S3Driver,
        path: str,
        key: str,
        uploadID: str | None = None,
        parts: list[Part] | None = None,
        buffered: bytes = b"",
        staleObject: bool = False,
    ) -> None:
        self._driver = driver
        self._path = path
        self._key = key
        self._uploadID = uploadID
        self._parts = parts or []
        self._buffer = bytearray(buffered)
        self._staleObject = staleObject
        self._state = "open"
        self._busy = False

    @property
    def size(self) -> int:
        return sum(part.size for part in self._parts) + len(self._buffer)

    def _nextPartSize(self) -> int:
        return partSize(self._driver.settings.chunkSize, len(self._parts) + 1)

    def _check(self) -> None:
        if self._state != "open":
            raise StorageDriverError(self._driver.name, self._path, f"writer already {self._state}")
        if self._busy:
            raise StorageDriverError(self._driver.name, self._path, "a write is already in progress")

    async def _uploadPart(self, data: bytes) -> None:
        if self._uploadID is None:
            self._uploadID = await self._driver.createMultipartUpload(self._key, self._path)
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageDriverError(self._driver.name, self._path, "more than 10,000 parts")
        etag = await self._driver.uploadPart(self._key, self._uploadID, number, data, self._path)
        self._parts.append(Part(number, etag, len(data)))

    async def _write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._nextPartSize():
            size = self._nextPartSize()
            part = bytes(self._buffer[:size])
            del self._buffer[:size]
            await self._uploadPart(part)

    async def _guarded(self, coroutine: Any) -> None:
        self._busy = True
        try:
            await coroutine
        finally:
            self._busy = False

    def write(self, data: bytes) -> Deferred:
        try:
            self._check()
        except StorageDriverError as e:
            return fail(e)
        return Deferred.fromCoroutine(self._guarded(self._write(bytes(data))))

    async def _close(self) -> None:
        self._state = "closed"
        if self._buffer or self._uploadID is None:
            # An empty upload still needs to exist, so append finds it.
            if self._uploadID is None:
                self._uploadID = await self._driver.createMultipartUpload(self._key, self._path)
            if self._buffer:
                await self._uploadPart(bytes(self._buffer))
                self._buffer = bytearray()
        if self._staleObject:
            await self._driver.deleteKeys([self._key])

    async def _cancel(self) -> None:
        self._state = "cancelled"
        self._buffer = bytearray()
        if self._uploadID is not None:
            await self._driver.abortMultipartUpload(self._key, self._uploadID, self._path)
        if self._staleObject:
            await self._driver.deleteKeys([self._key])

    async def _commit(self) -> None:
        self._state = "committed"
        if self._uploadID is None:
            await self._driver.putObject(self._key, bytes(self._buffer), self._path)
        else:
            if self._buffer or not self._parts:
                await self._uploadPart(bytes(self._buffer))
            await self._driver.completeMultipartUpload(self._key, self._uploadID, self._parts, self._path)
        self._buffer = bytearray()

    def _finish(self, coroutine: Any) -> Deferred:
        try:
            self._check()
        except StorageDriverError as e:
            coroutine.close()
            return fail(e)
        return Deferred.fromCoroutine(self._guarded(coroutine))

    def close(self) -> Deferred:
        return self._finish(self._close())

    def cancel(self) -> Deferred:
        return self._finish(self._cancel())

    def commit(self) -> Deferred:
        return self._finish(self._commit())

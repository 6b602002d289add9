"""
What the object-store drivers (s3, azure, gcs, swift) share: a resend over a stale pooled
connection, a streaming response reader, the empty reader, a chunk-buffering writer base,
and the driver plumbing around their operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import RequestTransmissionFailed, ResponseDone, ResponseNeverReceived
from zope.interface import implementer

from registryd.storage.inmemory import FileInfo
from registryd.storage.interfaces import (
    SKIP_DIR,
    IFileReader,
    IFileWriter,
    InvalidOffset,
    PathNotFound,
    StorageDriverError,
)
from registryd.storage.paths import checkPath

MAX_READ_CHUNK = 1 << 20
READ_HIGH_WATER = 4 << 20

STALE_CONNECTION_RETRIES = 2
"""Times a request is sent again when a kept-alive connection closed under it."""


def _lostWithConnection(error: Exception) -> bool:
    reasons = getattr(error, "reasons", None) or []
    return any(reason.check(ConnectionDone, ConnectionLost) for reason in reasons)


async def sendOverPool(send: Callable[[], Deferred]) -> Any:
    """
    C{send()} (a request whose body is in memory), sent again on a fresh connection when the
    pooled one it went out on was closed by the server meanwhile (an idle keep-alive timing
    out as the request left): Twisted only retries body-less requests itself. Other failures
    and answers, errors included, are the caller's.
    """
    for attempt in range(STALE_CONNECTION_RETRIES + 1):
        try:
            return await send()
        except (RequestTransmissionFailed, ResponseNeverReceived) as e:
            if attempt == STALE_CONNECTION_RETRIES or not _lostWithConnection(e):
                raise
    raise AssertionError("not reached: the last attempt returns or raises")


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
class ChunkedWriter:
    """Buffers writes and hands each full chunk to C{_sendChunk}; only one chunk is ever held."""

    def __init__(self, driver: Any, path: str, size: int = 0, buffered: bytes = b"") -> None:
        self._driver = driver
        self._path = path
        self._buffer = bytearray(buffered)
        self._state = "open"
        self.size = size

    def _check(self) -> None:
        if self._state != "open":
            raise StorageDriverError(self._driver.name, self._path, f"writer already {self._state}")

    def _finish(self, state: str) -> None:
        """Check the writer is open, then mark it closed, cancelled or committed."""
        self._check()
        self._state = state

    async def _sendChunk(self, data: bytes) -> None:
        """Send one chunk's bytes (a full chunk, or the tail on close or commit)."""
        raise NotImplementedError

    async def _flush(self) -> None:
        """Send what is buffered as one more chunk, if anything is."""
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        await self._sendChunk(data)

    async def _write(self, data: bytes) -> None:
        self._check()
        self._buffer += data
        self.size += len(data)
        chunkSize = self._driver.chunkSize
        while len(self._buffer) >= chunkSize:
            chunk = bytes(self._buffer[:chunkSize])
            del self._buffer[:chunkSize]
            await self._sendChunk(chunk)

    async def _close(self) -> None:
        raise NotImplementedError

    async def _cancel(self) -> None:
        raise NotImplementedError

    async def _commit(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> Deferred:
        return Deferred.fromCoroutine(self._write(bytes(data)))

    def close(self) -> Deferred:
        return Deferred.fromCoroutine(self._close())

    def cancel(self) -> Deferred:
        return Deferred.fromCoroutine(self._cancel())

    def commit(self) -> Deferred:
        return Deferred.fromCoroutine(self._commit())


class RootedNames:
    """Object names of storage paths below an optional root directory (C{self._root}, no slashes at ends)."""

    _root: str

    def _objectName(self, path: str) -> str:
        """The object name of a storage path ("" for the root)."""
        relative = path.strip("/")
        return "/".join(p for p in (self._root, relative) if p)

    def _prefix(self, path: str) -> str:
        """The object name prefix of everything below a directory path."""
        name = self._objectName(path)
        return name + "/" if name else ""

    def _pathOf(self, objectName: str) -> str:
        """The storage path of an object name (or prefix without its trailing slash)."""
        if self._root:
            objectName = objectName[len(self._root) + 1 :]
        return "/" + objectName


def rootedDirectory(rootDirectory: str) -> str:
    """A root directory setting without empty parts or slashes at its ends."""
    return "/".join(p for p in rootDirectory.split("/") if p)


class ObjectStoreDriver:
    """
    The IStorageDriver surface shared by the object-store drivers: each operation runs the
    driver's C{_<operation>} coroutine, unexpected failures turned into StorageDriverError.
    """

    name: str
    _pool: Any

    def stop(self) -> Deferred:
        """Close the pooled connections."""
        return self._pool.closeCachedConnections()

    def _wrap(self, coroutine: Any) -> Deferred:
        """Run a coroutine, turning unexpected service answers into StorageDriverError."""

        def translate(failure: Failure) -> Failure:
            if failure.check(StorageDriverError):
                return failure
            return Failure(StorageDriverError(self.name, None, str(failure.value)))

        return Deferred.fromCoroutine(coroutine).addErrback(translate)

    def _checkObject(self, path: str) -> None:
        """An object's path: valid, and not the root (which is never an object)."""
        checkPath(self.name, path)
        if path == "/":
            raise PathNotFound(self.name, path)

    def _checkRead(self, path: str, offset: int) -> None:
        """The path and offset of a ranged read."""
        self._checkObject(path)
        if offset < 0:
            raise InvalidOffset(self.name, path, f"offset {offset}")

    async def _readPastEnd(self, path: str, offset: int) -> Any:
        """
        What a ranged read answered 416 means: an empty stream at exactly the object's size,
        PathNotFound for a directory, InvalidOffset beyond the end.
        """
        info = await self._stat(path)
        if info.isDir:
            raise PathNotFound(self.name, path)
        if offset == info.size:
            return EmptyReader()
        raise InvalidOffset(self.name, path, f"offset {offset} beyond size {info.size}")

    async def _getContent(self, path: str) -> bytes:
        raise NotImplementedError

    async def _putContent(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    async def _reader(self, path: str, offset: int) -> Any:
        raise NotImplementedError

    async def _writer(self, path: str, append: bool) -> Any:
        raise NotImplementedError

    async def _stat(self, path: str) -> FileInfo:
        raise NotImplementedError

    async def _entries(self, path: str) -> list[FileInfo]:
        raise NotImplementedError

    async def _move(self, sourcePath: str, destPath: str) -> None:
        raise NotImplementedError

    async def _delete(self, path: str) -> None:
        raise NotImplementedError

    def getContent(self, path: str) -> Deferred:
        return self._wrap(self._getContent(path))

    def putContent(self, path: str, data: bytes) -> Deferred:
        return self._wrap(self._putContent(path, data))

    def reader(self, path: str, offset: int = 0) -> Deferred:
        return self._wrap(self._reader(path, offset))

    def writer(self, path: str, append: bool = False) -> Deferred:
        return self._wrap(self._writer(path, append))

    def stat(self, path: str) -> Deferred:
        return self._wrap(self._stat(path))

    async def _list(self, path: str) -> list[str]:
        checkPath(self.name, path)
        children = [info.path for info in await self._entries(path)]
        if not children and path != "/":
            raise PathNotFound(self.name, path)
        return children

    def list(self, path: str) -> Deferred:
        return self._wrap(self._list(path))

    def move(self, sourcePath: str, destPath: str) -> Deferred:
        return self._wrap(self._move(sourcePath, destPath))

    def delete(self, path: str) -> Deferred:
        return self._wrap(self._delete(path))

    async def _walkEntries(self, path: str) -> list[FileInfo]:
        """The entries walk visits directly below a directory path."""
        return await self._entries(path)

    async def _walk(self, path: str, visit: Callable[[FileInfo], object]) -> None:
        for info in await self._walkEntries(path):
            result = visit(info)
            if isinstance(result, Deferred):
                result = await result
            if info.isDir and result is not SKIP_DIR:
                await self._walk(info.path, visit)

    async def _walkFrom(self, path: str, visit: Callable[[FileInfo], object]) -> None:
        await self._wrap(self._stat(path))
        await self._walk(path, visit)

    def walk(self, path: str, visit: Callable[[FileInfo], object]) -> Deferred:
        return Deferred.fromCoroutine(self._walkFrom(path, visit))


def streamBody(response: Any) -> StreamingReader:
    """A reader streaming a response's body."""
    reader = StreamingReader()
    response.deliverBody(reader)
    return reader


async def failWith(error: Exception) -> None:
    """A coroutine that fails with error."""
    raise error

"""
The in-memory storage driver: for tests and throw-away registries. Content is lost when
the process ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from registryd.config.errors import ConfigError
from registryd.storage.interfaces import (
    SKIP_DIR,
    IFileInfo,
    IFileReader,
    IFileWriter,
    InvalidOffset,
    IStorageDriver,
    PathNotFound,
    StorageDriverError,
)
from registryd.storage.paths import checkPath

NAME = "inmemory"
_CHUNK = 1 << 20


@implementer(IFileInfo)
@dataclass(frozen=True)
class FileInfo:
    """A stat result; shared by the drivers that build their own."""

    path: str
    size: int
    modTime: float
    isDir: bool


@dataclass
class _File:
    data: bytearray = field(default_factory=bytearray)
    modTime: float = field(default_factory=time.time)


@implementer(IFileReader)
class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._position = 0

    def read(self) -> Deferred:
        chunk = bytes(self._view[self._position : self._position + _CHUNK])
        self._position += len(chunk)
        return succeed(chunk)

    def close(self) -> Deferred:
        self._view = memoryview(b"")
        return succeed(None)


@implementer(IFileWriter)
class _MemoryWriter:
    """Writes go to a pending buffer, kept across close() so append can resume it."""

    def __init__(self, driver: InMemoryDriver, path: str, pending: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._pending = pending
        self._state = "open"

    @property
    def size(self) -> int:
        return len(self._pending)

    def _closed(self) -> StorageDriverError | None:
        """The error for using a writer that is no longer open, or None while it is."""
        if self._state == "open":
            return None
        return StorageDriverError(self._driver.name, self._path, f"writer already {self._state}")

    def _finish(self, state: str) -> Deferred:
        """Mark the writer finished (a writer is used once), dropping its pending buffer unless closed."""
        error = self._closed()
        if error is not None:
            return fail(error)
        self._state = state
        if state != "closed" and self._driver._pending.get(self._path) is self._pending:
            del self._driver._pending[self._path]
        if state == "committed":
            self._driver._files[self._path] = _File(self._pending)
        return succeed(None)

    def write(self, data: bytes) -> Deferred:
        error = self._closed()
        if error is not None:
            return fail(error)
        self._pending += data
        return succeed(None)

    def close(self) -> Deferred:
        return self._finish("closed")

    def cancel(self) -> Deferred:
        return self._finish("cancelled")

    def commit(self) -> Deferred:
        return self._finish("committed")


@implementer(IStorageDriver)
class InMemoryDriver:
    """Every path's content in a dict; directories are implied by the paths below them."""

    name = NAME

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._pending: dict[str, bytearray] = {}

    def _file(self, path: str) -> _File:
        checkPath(self.name, path)
        try:
            return self._files[path]
        except KeyError:
            raise PathNotFound(self.name, path) from None

    def _childrenOf(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        children = {prefix + p[len(prefix) :].split("/", 1)[0] for p in self._files if p.startswith(prefix)}
        return sorted(children)

    def getContent(self, path: str) -> Deferred:
        try:
            return succeed(bytes(self._file(path).data))
        except Exception as e:
            return fail(e)

    def putContent(self, path: str, data: bytes) -> Deferred:
        try:
            checkPath(self.name, path)
        except Exception as e:
            return fail(e)
        self._files[path] = _File(bytearray(data))
        return succeed(None)

    def reader(self, path: str, offset: int = 0) -> Deferred:
        try:
            data = self._file(path).data
            if offset < 0 or offset > len(data):
                raise InvalidOffset(self.name, path, f"offset {offset}")
        except Exception as e:
            return fail(e)
        return succeed(_BytesReader(bytes(data[offset:])))

    def writer(self, path: str, append: bool = False) -> Deferred:
        try:
            checkPath(self.name, path)
            if append:
                if path not in self._pending:
                    raise PathNotFound(self.name, path)
            else:
                self._pending[path] = bytearray()
        except Exception as e:
            return fail(e)
        return succeed(_MemoryWriter(self, path, self._pending[path]))

    def stat(self, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
            if path in self._files:
                f = self._files[path]
                return succeed(FileInfo(path, len(f.data), f.modTime, False))
            if path == "/" or self._childrenOf(path):
                return succeed(FileInfo(path, 0, time.time(), True))
            raise PathNotFound(self.name, path)
        except Exception as e:
            return fail(e)

    def list(self, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
            children = self._childrenOf(path)
            if not children and path != "/":
                raise PathNotFound(self.name, path)
        except Exception as e:
            return fail(e)
        return succeed(children)

    def move(self, sourcePath: str, destPath: str) -> Deferred:
        try:
            checkPath(self.name, sourcePath)
            checkPath(self.name, destPath)
            if sourcePath in self._files:
                self._files[destPath] = self._files.pop(sourcePath)
                return succeed(None)
            # A directory: move every path below it.
            prefix = sourcePath.rstrip("/") + "/"
            moving = [p for p in self._files if p.startswith(prefix)]
            if not moving or sourcePath == "/":
                raise PathNotFound(self.name, sourcePath)
        except Exception as e:
            return fail(e)
        for p in moving:
            self._files[destPath + p[len(sourcePath) :]] = self._files.pop(p)
        return succeed(None)

    def delete(self, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
            prefix = path.rstrip("/") + "/"
            doomed = [p for p in self._files if p == path or p.startswith(prefix)]
            if not doomed:
                raise PathNotFound(self.name, path)
        except Exception as e:
            return fail(e)
        for p in doomed:
            del self._files[p]
        for p in [p for p in self._pending if p == path or p.startswith(prefix)]:
            del self._pending[p]
        return succeed(None)

    def redirectURL(self, method: str, path: str) -> Deferred:
        return succeed(None)

    async def _walk(self, path: str, visit: Callable[[FileInfo], object]) -> None:
        for child in self._childrenOf(path):
            info = await self.stat(child)
            result = visit(info)
            if isinstance(result, Deferred):
                result = await result
            if info.isDir and result is not SKIP_DIR:
                await self._walk(child, visit)

    def walk(self, path: str, visit: Callable[[FileInfo], object]) -> Deferred:
        d = self.stat(path)
        d.addCallback(lambda _: Deferred.fromCoroutine(self._walk(path, visit)))
        return d


def createDriver(reactor: object, parameters: dict | None) -> InMemoryDriver:
    """Build the driver from its configuration section, which must be empty: it takes no parameters."""
    if parameters is not None and not isinstance(parameters, dict):
        raise ConfigError("takes no parameters", ("storage", NAME))
    for key in parameters or {}:
        raise ConfigError("unknown parameter (the in-memory driver takes none)", ("storage", NAME, str(key)))
    return InMemoryDriver()

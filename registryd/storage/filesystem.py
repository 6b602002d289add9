"""
The filesystem storage driver: storage paths map onto a directory tree, laid out exactly
as distribution's filesystem driver lays it (``/docker/registry/v2/...`` is
``<root>/docker/registry/v2/...``), so either registry can serve the other's directory.

Every blocking call runs in the driver's own thread pool (sized by ``maxthreads``), never
on the reactor thread. Small writes are gathered into batches of about a megabyte, and a
few batches are written while the next is gathered, so a large upload costs one thread hop
per megabyte and disk writes overlap with network reads. Reads are likewise done a megabyte at
a time with one chunk read ahead.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat as statmodule
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from registryd.config.errors import ConfigError
from registryd.storage.inmemory import FileInfo
from registryd.storage.interfaces import (
    SKIP_DIR,
    IFileReader,
    IFileWriter,
    InvalidOffset,
    InvalidPath,
    IStorageDriver,
    PathNotFound,
    StorageDriverError,
)
from registryd.storage.paths import checkPath, join
from registryd.storage.writeback import startWriteback
from registryd.threads import Backlog, QuickThreads, ThreadQueue

NAME = "filesystem"
DEFAULT_ROOT_DIRECTORY = "/var/lib/registry"
DEFAULT_MAX_THREADS = 100
MIN_MAX_THREADS = 25

READ_CHUNK = 1 << 20
"""How many bytes one read of a reader returns at most."""

WRITE_BATCH = 1 << 20
"""Writes are gathered until this many bytes (or _WRITE_BATCH_PIECES pieces) are pending."""

_WRITE_BATCH_PIECES = 256  # well below IOV_MAX, so one writev takes a whole batch
_QUEUED_BATCHES = 2  # batches on their way to disk before write() makes its caller wait

QUICK_THREADS = 4
"""Of maxthreads, the threads for small operations (opens, stats, listings, small files)."""

_WALK_BATCH_DIRECTORIES = 256  # directory listings a walk reads ahead in one thread hop, at most
_WALK_BATCH_ENTRIES = 4096  # ... and no more once their entries add up to this many

_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_PARAMETERS = frozenset({"rootdirectory", "maxthreads"})


def createDriver(reactor: Any, parameters: dict | None) -> FilesystemDriver:
    """Build a driver from its configuration section, raising ConfigError naming a bad parameter."""
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise ConfigError("must be a mapping of parameters", ("storage", NAME))
    for key in parameters:
        if key not in _PARAMETERS:
            known = ", ".join(sorted(_PARAMETERS))
            raise ConfigError(f"unknown parameter (known: {known})", ("storage", NAME, str(key)))
    root = parameters.get("rootdirectory", DEFAULT_ROOT_DIRECTORY)
    if root is None:
        root = DEFAULT_ROOT_DIRECTORY
    if not isinstance(root, str) or not root or "\0" in root:
        raise ConfigError("must be a non-empty directory path", ("storage", NAME, "rootdirectory"))
    maxThreads = _parseMaxThreads(parameters.get("maxthreads", DEFAULT_MAX_THREADS))
    return FilesystemDriver(root, reactor, maxThreads=maxThreads)


def _parseMaxThreads(value: object) -> int:
    keyPath = ("storage", NAME, "maxthreads")
    if value is None:
        return DEFAULT_MAX_THREADS
    if isinstance(value, bool):
        raise ConfigError("must be an integer", keyPath)
    if isinstance(value, str):
        # Environment overrides arrive as text.
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise ConfigError(f"must be an integer, not {value!r}", keyPath) from None
    if not isinstance(value, int):
        raise ConfigError(f"must be an integer, not {type(value).__name__}", keyPath)
    if value < MIN_MAX_THREADS:
        raise ConfigError(f"must be at least {MIN_MAX_THREADS}, not {value}", keyPath)
    return value


def _translated(driverName: str, path: str, error: OSError) -> StorageDriverError:
    """The typed error for an OSError met while working on path."""
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return PathNotFound(driverName, path)
    return StorageDriverError(driverName, path, error.strerror or str(error))


@implementer(IStorageDriver)
class FilesystemDriver:
    """Content in files under a root directory; directories are real directories."""

    name = NAME

    def __init__(
        self, rootDirectory: str, reactor: Any = None, maxThreads: int = DEFAULT_MAX_THREADS
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self.rootDirectory = os.path.abspath(rootDirectory)
        self.maxThreads = maxThreads
        self._reactor = reactor
        self._realRoot = os.path.realpath(self.rootDirectory)
        self._pool: ThreadPool | None = None
        self._quick: QuickThreads | None = None
        self._shutdownTrigger: object = None

    # -- threads -----------------------------------------------------------------------

    def _call(self, path: str, function: Callable[..., Any], *args: Any) -> Deferred:
        """Run a quick function(*args) (metadata, small files) in the driver's threads, typing OSErrors."""
        return self._pools()[0].run(function, *args).addErrback(self._typed, path)

    def _stream(self, path: str, function: Callable[..., Any], *args: Any) -> Deferred:
        """As L{_call}, for a chunk of a stream (a read, a batch of writes, a sync)."""
        d = deferToThreadPool(self._reactor, self._pools()[1], function, *args)
        return d.addErrback(self._typed, path)

    def _pools(self) -> tuple[QuickThreads, ThreadPool]:
        """
        The quick threads and the stream pool, started on first use; C{maxThreads} threads together.

        Small operations get a few threads of their own: a task queued to a busy thread runs as
        soon as that thread is done, where a pool that grows a thread per waiting task pays a
        thread wake-up and GIL hand-over for each (a third less CPU per manifest GET under 64
        connections), and long streams cannot hold them up. They are L{QuickThreads}, not a
        twisted ThreadPool: blob HEADs under 64 connections went from 4,210 to 4,716 per second.
        """
        if self._pool is None:
            quick = min(QUICK_THREADS, self.maxThreads // 2)
            self._quick = QuickThreads(self._reactor, quick, "registryd-filesystem-quick")
            self._pool = ThreadPool(
                minthreads=0, maxthreads=self.maxThreads - quick, name="registryd-filesystem"
            )
            self._quick.start()
            self._pool.start()
            self._shutdownTrigger = self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)
        return self._quick, self._pool

    def _streamQueue(self, function: Callable[[Any], Any]) -> ThreadQueue:
        """A queue of one stream's chunks (write batches), worked through in order in a stream thread."""
        return ThreadQueue(self._reactor, self._pools()[1], function)

    def _typed(self, failure: Failure, path: str) -> Failure:
        """An OSError about path as the storage error it means (PathNotFound, ...)."""
        if failure.check(OSError) and not failure.check(StorageDriverError):
            return Failure(_translated(self.name, path, failure.value))
        return failure

    def stop(self) -> None:
        """Stop the driver's threads (the reactor's shutdown does this too); a later call restarts them."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._shutdownTrigger is not None:
            try:
                self._reactor.removeSystemEventTrigger(self._shutdownTrigger)
            except (ValueError, KeyError):
                pass  # already fired: we are being called by it
            self._shutdownTrigger = None
        self._quick.stop()
        pool.stop()

    # -- paths -------------------------------------------------------------------------

    def _fullPath(self, path: str) -> str:
        """The file system path of a storage path (validated; raises InvalidPath)."""
        checkPath(self.name, path)
        if path == "/":
            return self.rootDirectory
        return os.path.join(self.rootDirectory, path[1:])

    def _inside(self, realPath: str) -> bool:
        """Whether a resolved path is the root or below it (call in a thread)."""
        if _within(realPath, self._realRoot):
            return True
        # The root may have been created (or replaced by a link) since we resolved it.
        self._realRoot = os.path.realpath(self.rootDirectory)
        return _within(realPath, self._realRoot)

    def _resolve(self, path: str, full: str) -> None:
        """Refuse a path that symbolic links lead outside the root (call in a thread)."""
        if not self._inside(os.path.realpath(full)):
            raise InvalidPath(self.name, path, "leads outside the root directory")

    def _open(self, path: str, full: str, flags: int) -> int:
        """
        Open a file, refusing one that links lead outside the root (call in a thread).

        The check asks the kernel where the open file is (/proc/self/fd) rather than resolving
        every component of the path: one call instead of one per component, and nothing can
        change between the check and the open. Without /proc, or when the open fails, the
        path is resolved as before, so a refusal still comes before "not found".
        """
        try:
            fd = os.open(full, flags)
        except OSError:
            self._resolve(path, full)
            raise
        try:
            real = _whereIs(fd)
            if real is None:
                self._resolve(path, full)
            elif not self._inside(real):
                raise InvalidPath(self.name, path, "leads outside the root directory")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _resolveParent(self, path: str, full: str) -> None:
        """Refuse a path whose directory links lead outside the root (the entry itself is not followed)."""
        if not self._inside(os.path.realpath(os.path.dirname(full))):
            raise InvalidPath(self.name, path, "leads outside the root directory")

    def _inThread(self, path: str, work: Callable[[str], Any], notRoot: str | None = None) -> Deferred:
        """
        Validate path (refusing the root with the reason notRoot, when given), then run
        work(its file system path) in the driver's threads.
        """
        try:
            full = self._fullPath(path)
            if notRoot is not None and path == "/":
                raise InvalidPath(self.name, path, notRoot)
        except StorageDriverError as e:
            return fail(e)
        return self._call(path, work, full)

    # -- small objects -----------------------------------------------------------------

    def getContent(self, path: str) -> Deferred:
        def read(full: str) -> bytes:
            try:
                with open(self._open(path, full, os.O_RDONLY), "rb") as f:
                    return f.read()
            except IsADirectoryError:
                raise PathNotFound(self.name, path) from None

        return self._inThread(path, read)

    def putContent(self, path: str, data: bytes) -> Deferred:
        data = bytes(data)

        def put(full: str) -> None:
            self._resolveParent(path, full)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            temporary = f"{full}.{secrets.token_hex(8)}.tmp"
            try:
                with open(temporary, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temporary, full)
            except BaseException:
                _removeQuietly(temporary)
                raise

        return self._inThread(path, put, notRoot="the root is a directory")

    # -- streams -----------------------------------------------------------------------

    def reader(self, path: str, offset: int = 0) -> Deferred:
        def open_(full: str) -> _FileReader:
            if not isinstance(offset, int) or offset < 0:
                raise InvalidOffset(self.name, path, f"offset {offset!r}")
            f = open(self._open(path, full, os.O_RDONLY), "rb", buffering=0)
            try:
                info = os.fstat(f.fileno())
                if statmodule.S_ISDIR(info.st_mode):
                    raise PathNotFound(self.name, path)
                if offset > info.st_size:
                    raise InvalidOffset(self.name, path, f"offset {offset} beyond size {info.st_size}")
                f.seek(offset)
            except BaseException:
                f.close()
                raise
            return _FileReader(self, path, f)

        return self._inThread(path, open_)

    def writer(self, path: str, append: bool = False) -> Deferred:
        def open_(full: str) -> _FileWriter:
            self._resolve(path, full)
            if append:
                # No O_CREAT: resuming what is not there is PathNotFound.
                fd = os.open(full, os.O_WRONLY | os.O_APPEND)
            else:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                info = os.fstat(fd)
                if statmodule.S_ISDIR(info.st_mode):
                    raise PathNotFound(self.name, path)
            except BaseException:
                os.close(fd)
                raise
            return _FileWriter(self, path, full, fd, info.st_size)

        return self._inThread(path, open_, notRoot="the root is a directory")

    # -- metadata ----------------------------------------------------------------------

    def stat(self, path: str) -> Deferred:
        def stat_(full: str) -> FileInfo:
            try:
                fd = self._open(path, full, os.O_PATH)
            except FileNotFoundError:
                if path == "/":
                    return FileInfo(path, 0, time.time(), True)
                raise
            try:
                return _fileInfo(path, os.fstat(fd))
            finally:
                os.close(fd)

        return self._inThread(path, stat_)

    def list(self, path: str) -> Deferred:
        def list_(full: str) -> list[str]:
            self._resolve(path, full)
            try:
                names = os.listdir(full)
            except FileNotFoundError:
                if path == "/":
                    return []
                raise
            return [join(path, name) for name in sorted(names) if _addressable(name)]

        return self._inThread(path, list_)

    # -- changes -----------------------------------------------------------------------

    def move(self, sourcePath: str, destPath: str) -> Deferred:
        try:
            source = self._fullPath(sourcePath)
            dest = self._fullPath(destPath)
            for p in (sourcePath, destPath):
                if p == "/":
                    raise InvalidPath(self.name, p, "the root cannot be moved")
        except StorageDriverError as e:
            return fail(e)

        def move_() -> None:
            self._resolveParent(sourcePath, source)
            self._resolveParent(destPath, dest)
            if not os.path.lexists(source):
                raise PathNotFound(self.name, sourcePath)
            try:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(source, dest)
            except OSError as e:
                raise _translated(self.name, destPath, e) from e

        return self._call(sourcePath, move_)

    def delete(self, path: str) -> Deferred:
        def delete_(full: str) -> None:
            if path == "/":
                # Empty the root but keep it: it may be a mount point or belong to another user.
                if not os.path.isdir(full):
                    raise PathNotFound(self.name, path)
                for name in os.listdir(full):
                    _removeTree(os.path.join(full, name))
                return
            self._resolveParent(path, full)
            _removeTree(full)

        return self._inThread(path, delete_)

    def redirectURL(self, method: str, path: str) -> Deferred:
        return succeed(None)

    def walk(self, path: str, visit: Callable[[FileInfo], Any]) -> Deferred:
        return Deferred.fromCoroutine(self._walk(path, visit))

    async def _walk(self, path: str, visit: Callable[[FileInfo], Any]) -> None:
        top = await self.stat(path)
        if not top.isDir:
            return
        await self._visitAll(await self._call(path, self._scan, path), visit)

    async def _visitAll(self, entries: list[tuple[FileInfo, bool]], visit: Callable[[FileInfo], Any]) -> None:
        # Listings of the directories ahead are read in the same thread hop as the one needed now:
        # a hop costs far more than reading a small directory, and a walk of 10,000 repositories
        # would otherwise make 10,000 of them.
        listings: dict[str, list[tuple[FileInfo, bool]]] = {}
        for index, (info, descend) in enumerate(entries):
            result = visit(info)
            if isinstance(result, Deferred):
                result = await result
            children = listings.pop(info.path, None)
            if not (info.isDir and descend and result is not SKIP_DIR):
                continue
            if children is None:
                ahead = _descendable(entries, index)
                listings = dict(await self._call(info.path, self._scanAhead, ahead))
                children = listings.pop(info.path)
            await self._visitAll(children, visit)

    def _scanAhead(self, paths: list[str]) -> list[tuple[str, list[tuple[FileInfo, bool]]]]:
        """The listings of the first of paths and of as many after it as a batch holds (call in a thread)."""
        listings = []
        entries = 0
        for path in paths:
            if listings and entries >= _WALK_BATCH_ENTRIES:
                break
            try:
                listing = self._scan(path, entered=True)
            except OSError:
                if not listings:
                    raise
                break  # read again, and reported, when the walk gets there
            listings.append((path, listing))
            entries += len(listing)
        return listings

    def _scan(self, path: str, entered: bool = False) -> list[tuple[FileInfo, bool]]:
        """
        The children of a directory in lexical order, each with whether a walk may descend into it.

        A directory the walk C{entered} from a listing that found it no link is opened without
        following a link (one that appeared since is refused) instead of resolving its whole path.
        """
        full = self._fullPath(path)
        if entered:
            fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                return self._entries(path, full, os.scandir(fd))
            finally:
                os.close(fd)
        self._resolve(path, full)
        return self._entries(path, full, os.scandir(full))

    def _entries(self, path: str, full: str, children: Any) -> list[tuple[FileInfo, bool]]:
        with children:
            found = sorted((child for child in children if _addressable(child.name)), key=lambda c: c.name)
        entries = []
        for child in found:
            isLink = child.is_symlink()
            if isLink and not self._inside(os.path.realpath(os.path.join(full, child.name))):
                continue  # a symbolic link out of the root is not part of the store
            try:
                info = child.stat()
            except FileNotFoundError:
                continue  # deleted meanwhile, or a dangling link
            # Links are listed but not followed, so a link to an ancestor cannot loop forever.
            entries.append((_fileInfo(f"{path.rstrip('/')}/{child.name}", info), not isLink))
        return entries


def _descendable(entries: list[tuple[FileInfo, bool]], start: int) -> list[str]:
    """The paths of up to a batch of directories a walk may enter, from entries[start] on."""
    paths = []
    for info, descend in entries[start:]:
        if info.isDir and descend:
            paths.append(info.path)
            if len(paths) == _WALK_BATCH_DIRECTORIES:
                break
    return paths


def _whereIs(fd: int) -> str | None:
    """The resolved path of an open file as the kernel knows it, or None without /proc."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _within(realPath: str, realRoot: str) -> bool:
    return realPath == realRoot or realPath.startswith(realRoot.rstrip(os.sep) + os.sep)


def _addressable(name: str) -> bool:
    """Whether a directory entry can be named by a storage path (others are not part of the store)."""
    return _NAME.match(name) is not None and name not in (".", "..")


def _fileInfo(path: str, info: os.stat_result) -> FileInfo:
    isDir = statmodule.S_ISDIR(info.st_mode)
    return FileInfo(path, 0 if isDir else info.st_size, info.st_mtime, isDir)


def _removeQuietly(full: str) -> None:
    try:
        os.unlink(full)
    except FileNotFoundError:
        pass


def _removeTree(full: str) -> None:
    """Remove a file, a symbolic link (not its target) or a directory tree; FileNotFoundError if absent."""
    info = os.lstat(full)
    if statmodule.S_ISDIR(info.st_mode):
        shutil.rmtree(full)
    else:
        os.unlink(full)


@implementer(IFileReader)
class _FileReader:
    """Reads a file a chunk at a time in the driver's threads, with the next chunk read ahead."""

    def __init__(self, driver: FilesystemDriver, path: str, f: Any) -> None:
        self._driver = driver
        self._path = path
        self._file = f
        self._lock = DeferredLock()  # one thread at a time touches the file
        self._ahead: Deferred | None = None
        self._closed = False

    def _fetch(self) -> Deferred:
        return self._lock.run(self._driver._stream, self._path, self._file.read, READ_CHUNK)

    def _readAhead(self, chunk: bytes) -> bytes:
        if chunk and not self._closed:
            self._ahead = self._fetch()
        return chunk

    def read(self) -> Deferred:
        if self._closed:
            return succeed(b"")
        d, self._ahead = self._ahead or self._fetch(), None
        return d.addCallback(self._readAhead)

    def close(self) -> Deferred:
        if self._closed:
            return succeed(None)
        self._closed = True
        if self._ahead is not None:
            # Nobody will read the chunk read ahead; don't let an error in it go unhandled.
            self._ahead.addErrback(lambda _: None)
            self._ahead = None
        return self._lock.run(self._driver._call, self._path, self._file.close)


@implementer(IFileWriter)
class _FileWriter:
    """
    Appends to a file in place, as distribution does. Writes are gathered into batches;
    up to _QUEUED_BATCHES batches are on their way to disk while the next is gathered, written
    one after another by one stream thread (L{ThreadQueue}: no reactor round trip between them).
    An error writing a batch is reported by the next write, close or commit.
    """

    def __init__(self, driver: FilesystemDriver, path: str, full: str, fd: int, size: int) -> None:
        self._driver = driver
        self._path = path
        self._full = full
        self._fd = fd
        self.size = size
        self._pieces: list[bytes] = []
        self._pending = 0
        self._batches: ThreadQueue | None = None  # made on the first batch, in the reactor thread
        self._written = Backlog()  # batches handed to the thread and not yet written; the first error
        self._state = "open"

    def _checkOpen(self) -> None:
        if self._state != "open":
            raise StorageDriverError(self._driver.name, self._path, f"writer already {self._state}")

    def write(self, data: bytes) -> Deferred:
        try:
            self._checkOpen()
        except StorageDriverError as e:
            return fail(e)
        if self._written.failure is not None:
            return fail(self._written.failure)
        if not data:
            return succeed(None)
        if not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse its buffer
        self._pieces.append(data)
        self._pending += len(data)
        self.size += len(data)
        if self._pending < WRITE_BATCH and len(self._pieces) < _WRITE_BATCH_PIECES:
            return succeed(None)
        self._sendBatch()
        # The disk is busy with this batch; gather the next meanwhile, unless too many wait.
        return self._written.whenAtMost(_QUEUED_BATCHES)

    def _sendBatch(self) -> None:
        pieces, self._pieces, self._pending = self._pieces, [], 0
        if not pieces:
            return
        if self._batches is None:
            fd = self._fd
            self._batches = self._driver._streamQueue(lambda batch: _writeAll(fd, batch))
        self._written.track(self._batches.submit(pieces).addErrback(self._driver._typed, self._path))

    async def _drain(self) -> None:
        """Write what is gathered and wait for every batch to reach the file."""
        self._sendBatch()
        try:
            await self._written.whenAtMost(0)
        except Exception:
            pass  # kept in self._written.failure, for _finish to report

    async def _finish(self, state: str, finalStep: Callable[[int], None]) -> None:
        self._checkOpen()
        self._state = state
        try:
            await self._drain()
        finally:
            await self._driver._stream(self._path, finalStep, self._fd)
        if self._written.failure is not None and state != "cancelled":
            self._written.failure.raiseException()

    def close(self) -> Deferred:
        return Deferred.fromCoroutine(self._finish("closed", _closeFile))

    def commit(self) -> Deferred:
        return Deferred.fromCoroutine(self._finish("committed", _syncAndClose))

    def cancel(self) -> Deferred:
        full = self._full

        def discard(fd: int) -> None:
            os.close(fd)
            _removeQuietly(full)

        return Deferred.fromCoroutine(self._finish("cancelled", discard))


def _writeAll(fd: int, pieces: list[bytes]) -> None:
    """
    Write every piece to fd, resuming after short writes, and start their write-out to disk
    (runs in a thread; releases the GIL).
    """
    views = [memoryview(p) for p in pieces]
    total = 0
    while views:
        written = os.writev(fd, views)
        total += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
    # The commit's fsync then finds the bytes on their way already (registryd.storage.writeback).
    startWriteback(fd, total)


def _closeFile(fd: int) -> None:
    os.close(fd)


def _syncAndClose(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

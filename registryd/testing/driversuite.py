"""
The storage driver test suite: every driver runs it, ours and third parties' alike.

A driver author mixes L{StorageDriverTestsMixin} into a trial C{TestCase} and defines
C{makeDriver}, which returns a fresh, empty driver (or a Deferred firing with one) for
each test; anything to clean up afterwards is registered there with C{self.addCleanup}::

    class MyDriverTests(StorageDriverTestsMixin, TestCase):
        def makeDriver(self):
            driver = MyDriver(bucket=..., prefix=f"/test-{uuid4().hex}")
            self.addCleanup(driver.close)
            return driver

The suite checks what the registry core relies on: the behaviour documented in
L{registryd.storage.interfaces}, the typed errors and the driver name they carry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from registryd.storage.interfaces import (
    SKIP_DIR,
    IFileInfo,
    IFileReader,
    IFileWriter,
    InvalidOffset,
    InvalidPath,
    IStorageDriver,
    PathNotFound,
    StorageDriverError,
)

MiB = 1 << 20

INVALID_PATHS = (
    "",
    "relative/path",
    "/trailing/",
    "//double",
    "/a//b",
    "/a/../b",
    "/..",
    "/a/./b",
    "/space in/name",
    "/caf\u00e9",
    "/nul\x00byte",
    "/back\\slash",
    "/star*",
)
"""Paths every driver must refuse with InvalidPath."""


async def readToEnd(reader: Any) -> bytes:
    """Every chunk C{reader.read()} gives until b"", joined; the reader is closed after, if it can be."""
    chunks = []
    while chunk := await reader.read():
        chunks.append(chunk)
    close = getattr(reader, "close", None)
    if close is not None:
        await close()
    return b"".join(chunks)


class StorageDriverTestsMixin:
    """Tests of an L{IStorageDriver}; mix into a trial TestCase and define C{makeDriver}."""

    largeObjectSize = 9 * MiB + 12345
    """Size of the object streamed through writers and readers (not a multiple of any chunk size)."""

    maxReadChunk = 4 * MiB
    """The biggest chunk a reader may return; with largeObjectSize this forces several reads."""

    driver: Any

    def makeDriver(self) -> IStorageDriver | Deferred:
        """Return a new, empty driver for one test."""
        raise NotImplementedError(f"{type(self).__name__} must define makeDriver()")

    async def _makeDriver(self) -> None:
        self.driver = await maybeDeferred(self.makeDriver)

    def setUp(self) -> Deferred:
        parent = getattr(super(), "setUp", None)
        d = maybeDeferred(parent) if parent is not None else succeed(None)
        return d.addCallback(lambda _: Deferred.fromCoroutine(self._makeDriver()))

    # -- helpers -------------------------------------------------------------------------

    async def failsWith(
        self, d: Awaitable[Any], errorClass: type[StorageDriverError], path: Any = None
    ) -> Any:
        """Await d, assert it fails with errorClass carrying the driver name (and path); return the error."""
        try:
            result = await d
        except errorClass as e:
            self.assertEqual(e.driverName, self.driver.name, f"{e!r} does not carry the driver's name")
            if path is not None:
                self.assertEqual(e.path, path)
            return e
        self.fail(f"expected {errorClass.__name__}, got result {result!r}")

    async def readAll(self, path: str, offset: int = 0) -> bytes:
        """Everything a reader gives from offset."""
        return await readToEnd(await self.driver.reader(path, offset))

    async def writeAll(self, path: str, pieces: list[bytes], commit: bool = True) -> None:
        """Write pieces through a writer, then commit (or close)."""
        writer = await self.driver.writer(path)
        for piece in pieces:
            await writer.write(piece)
        await (writer.commit() if commit else writer.close())

    def pattern(self, size: int, seed: int = 0) -> bytes:
        """Deterministic bytes that differ at every offset that matters (no repeating 256-byte period)."""
        block = hashlib.sha256(str(seed).encode()).digest()
        out = bytearray()
        counter = 0
        while len(out) < size:
            out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest() * 64
            counter += 1
        return bytes(out[:size])

    # -- the driver itself ---------------------------------------------------------------

    def test_providesIStorageDriver(self) -> None:
        self.assertTrue(verifyObject(IStorageDriver, self.driver))
        self.assertIsInstance(self.driver.name, str)
        self.assertTrue(self.driver.name)

    # -- getContent / putContent ---------------------------------------------------------

    async def test_putThenGetContent(self) -> None:
        self.assertIsNone(await self.driver.putContent("/a/b/c", b"hello"))
        self.assertEqual(await self.driver.getContent("/a/b/c"), b"hello")

    async def test_putContentReplaces(self) -> None:
        await self.driver.putContent("/replace/me", b"first, longer content")
        await self.driver.putContent("/replace/me", b"second")
        self.assertEqual(await self.driver.getContent("/replace/me"), b"second")

    async def test_emptyContent(self) -> None:
        await self.driver.putContent("/empty", b"")
        self.assertEqual(await self.driver.getContent("/empty"), b"")
        info = await self.driver.stat("/empty")
        self.assertEqual(info.size, 0)
        self.assertFalse(info.isDir)

    async def test_binaryContent(self) -> None:
        data = bytes(range(256)) * 3 + b"\x00\r\n\xff"
        await self.driver.putContent("/binary", data)
        self.assertEqual(await self.driver.getContent("/binary"), data)

    async def test_linkFileContent(self) -> None:
        """A link file's bytes come back exactly: no newline added or stripped."""
        link = b"sha256:" + b"ab" * 32
        path = "/docker/registry/v2/repositories/library/alpine/_manifests/tags/latest/current/link"
        await self.driver.putContent(path, link)
        self.assertEqual(await self.driver.getContent(path), link)

    async def test_getContentMissing(self) -> None:
        await self.failsWith(self.driver.getContent("/no/such/thing"), PathNotFound, "/no/such/thing")

    async def test_getContentBelowMissingDirectory(self) -> None:
        await self.driver.putContent("/file", b"x")
        await self.failsWith(self.driver.getContent("/file/below"), PathNotFound)

    async def test_getContentOfDirectory(self) -> None:
        await self.driver.putContent("/dir/file", b"x")
        await self.failsWith(self.driver.getContent("/dir"), PathNotFound)

    async def test_putContentCreatesParents(self) -> None:
        await self.driver.putContent("/p/q/r/s", b"deep")
        self.assertEqual(await self.driver.list("/p/q"), ["/p/q/r"])
        self.assertTrue((await self.driver.stat("/p/q/r")).isDir)

    # -- list ----------------------------------------------------------------------------

    async def _listTree(self) -> None:
        for path in ("/l/b", "/l/a", "/l/c/x", "/l/c/y/z", "/l2/other", "/la"):
            await self.driver.putContent(path, path.encode())

    async def test_listSortedFullChildPaths(self) -> None:
        await self._listTree()
        self.assertEqual(await self.driver.list("/l"), ["/l/a", "/l/b", "/l/c"])

    async def test_listNested(self) -> None:
        await self._listTree()
        self.assertEqual(await self.driver.list("/l/c"), ["/l/c/x", "/l/c/y"])
        self.assertEqual(await self.driver.list("/l/c/y"), ["/l/c/y/z"])

    async def test_listRoot(self) -> None:
        await self._listTree()
        self.assertEqual(await self.driver.list("/"), ["/l", "/l2", "/la"])

    async def test_listRootOfEmptyDriver(self) -> None:
        self.assertEqual(await self.driver.list("/"), [])

    async def test_listMissing(self) -> None:
        await self._listTree()
        await self.failsWith(self.driver.list("/nothing/here"), PathNotFound, "/nothing/here")

    async def test_listOfFile(self) -> None:
        await self._listTree()
        await self.failsWith(self.driver.list("/l/a"), PathNotFound)

    # -- stat ----------------------------------------------------------------------------

    async def test_statFile(self) -> None:
        before = reactor.seconds()
        await self.driver.putContent("/s/file", b"12345")
        after = reactor.seconds()
        info = await self.driver.stat("/s/file")
        self.assertTrue(verifyObject(IFileInfo, info))
        self.assertEqual((info.path, info.size, info.isDir), ("/s/file", 5, False))
        # Generous: stores keep whole seconds, and clocks of remote services drift.
        self.assertTrue(before - 120 <= info.modTime <= after + 120, (before, info.modTime, after))

    async def test_statDirectory(self) -> None:
        await self.driver.putContent("/s/dir/file", b"12345")
        info = await self.driver.stat("/s/dir")
        self.assertTrue(verifyObject(IFileInfo, info))
        self.assertEqual((info.path, info.isDir), ("/s/dir", True))

    async def test_statRoot(self) -> None:
        self.assertTrue((await self.driver.stat("/")).isDir)

    async def test_statMissing(self) -> None:
        await self.failsWith(self.driver.stat("/s/missing"), PathNotFound, "/s/missing")

    # -- move ----------------------------------------------------------------------------

    async def test_moveFile(self) -> None:
        await self.driver.putContent("/m/source", b"moving")
        self.assertIsNone(await self.driver.move("/m/source", "/m/dest"))
        self.assertEqual(await self.driver.getContent("/m/dest"), b"moving")
        await self.failsWith(self.driver.getContent("/m/source"), PathNotFound)

    async def test_moveReplacesDestination(self) -> None:
        await self.driver.putContent("/m/source", b"new")
        await self.driver.putContent("/m/dest", b"old and longer")
        await self.driver.move("/m/source", "/m/dest")
        self.assertEqual(await self.driver.getContent("/m/dest"), b"new")

    async def test_moveCreatesParents(self) -> None:
        await self.driver.putContent("/m/source", b"x")
        await self.driver.move("/m/source", "/elsewhere/deep/down/dest")
        self.assertEqual(await self.driver.getContent("/elsewhere/deep/down/dest"), b"x")

    async def test_moveMissingSource(self) -> None:
        await self.failsWith(self.driver.move("/m/nothing", "/m/dest"), PathNotFound, "/m/nothing")
        await self.failsWith(self.driver.getContent("/m/dest"), PathNotFound)

    # -- delete --------------------------------------------------------------------------

    async def test_deleteFile(self) -> None:
        await self.driver.putContent("/d/file", b"x")
        await self.driver.putContent("/d/keep", b"y")
        self.assertIsNone(await self.driver.delete("/d/file"))
        await self.failsWith(self.driver.getContent("/d/file"), PathNotFound)
        self.assertEqual(await self.driver.getContent("/d/keep"), b"y")

    async def test_deleteDirectoryRecursively(self) -> None:
        for path in ("/d/a", "/d/e/f", "/d/e/g/h", "/dd/sibling", "/d2"):
            await self.driver.putContent(path, b"x")
        await self.driver.delete("/d")
        for gone in ("/d/a", "/d/e/f", "/d/e/g/h"):
            await self.failsWith(self.driver.getContent(gone), PathNotFound)
        await self.failsWith(self.driver.stat("/d"), PathNotFound)
        # Paths sharing the prefix as a string, but not as a directory, survive.
        self.assertEqual(await self.driver.getContent("/dd/sibling"), b"x")
        self.assertEqual(await self.driver.getContent("/d2"), b"x")

    async def test_deleteMissing(self) -> None:
        await self.failsWith(self.driver.delete("/d/missing"), PathNotFound, "/d/missing")

    # -- reader --------------------------------------------------------------------------

    async def test_readerProvidesIFileReader(self) -> None:
        await self.driver.putContent("/r/file", b"x")
        reader = await self.driver.reader("/r/file")
        self.assertTrue(verifyObject(IFileReader, reader))
        await reader.close()

    async def test_readerFromStart(self) -> None:
        await self.driver.putContent("/r/file", b"0123456789")
        self.assertEqual(await self.readAll("/r/file"), b"0123456789")

    async def test_readerFromMiddle(self) -> None:
        await self.driver.putContent("/r/file", b"0123456789")
        self.assertEqual(await self.readAll("/r/file", 4), b"456789")

    async def test_readerAtEndIsEmpty(self) -> None:
        await self.driver.putContent("/r/file", b"0123456789")
        reader = await self.driver.reader("/r/file", 10)
        self.assertEqual(await reader.read(), b"")
        await reader.close()

    async def test_readerOfEmptyContent(self) -> None:
        await self.driver.putContent("/r/empty", b"")
        self.assertEqual(await self.readAll("/r/empty"), b"")

    async def test_readerBeyondEnd(self) -> None:
        await self.driver.putContent("/r/file", b"0123456789")
        await self.failsWith(self.driver.reader("/r/file", 11), InvalidOffset, "/r/file")

    async def test_readerNegativeOffset(self) -> None:
        await self.driver.putContent("/r/file", b"0123456789")
        await self.failsWith(self.driver.reader("/r/file", -1), InvalidOffset)

    async def test_readerMissing(self) -> None:
        await self.failsWith(self.driver.reader("/r/missing"), PathNotFound, "/r/missing")

    async def test_readerStreamsLargeObjectInChunks(self) -> None:
        data = self.pattern(self.largeObjectSize)
        await self.writeAll("/r/large", [data[i : i + MiB] for i in range(0, len(data), MiB)])
        reader = await self.driver.reader("/r/large")
        sizes = []
        digest = hashlib.sha256()
        while True:
            chunk = await reader.read()
            if not chunk:
                break
            self.assertLessEqual(len(chunk), self.maxReadChunk)
            sizes.append(len(chunk))
            digest.update(chunk)
        await reader.close()
        self.assertEqual(sum(sizes), len(data))
        self.assertGreater(len(sizes), 1)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(data).hexdigest())

    async def test_readerLargeObjectFromOffset(self) -> None:
        data = self.pattern(self.largeObjectSize, seed=1)
        await self.writeAll("/r/large", [data])
        offset = len(data) - 3 * MiB - 7
        self.assertEqual(await self.readAll("/r/large", offset), data[offset:])

    async def test_readerCloseEarly(self) -> None:
        """A reader closed before the end releases cleanly; the content is untouched."""
        data = self.pattern(3 * MiB, seed=2)
        await self.driver.putContent("/r/file", data)
        reader = await self.driver.reader("/r/file")
        self.assertTrue(await reader.read())
        await reader.close()
        self.assertEqual(await self.driver.getContent("/r/file"), data)

    # -- writer --------------------------------------------------------------------------

    async def test_writerProvidesIFileWriter(self) -> None:
        writer = await self.driver.writer("/w/file")
        self.assertTrue(verifyObject(IFileWriter, writer))
        await writer.cancel()

    async def test_writerCommit(self) -> None:
        writer = await self.driver.writer("/w/file")
        self.assertEqual(writer.size, 0)
        await writer.write(b"hello, ")
        await writer.write(b"world")
        self.assertEqual(writer.size, 12)
        self.assertIsNone(await writer.commit())
        self.assertEqual(await self.driver.getContent("/w/file"), b"hello, world")
        self.assertEqual((await self.driver.stat("/w/file")).size, 12)

    async def test_writerCommitNothing(self) -> None:
        writer = await self.driver.writer("/w/empty")
        await writer.commit()
        self.assertEqual(await self.driver.getContent("/w/empty"), b"")

    async def test_writerCreatesParents(self) -> None:
        await self.writeAll("/w/x/y/z", [b"deep"])
        self.assertEqual(await self.driver.list("/w/x/y"), ["/w/x/y/z"])

    async def test_writerCloseThenAppendResumes(self) -> None:
        writer = await self.driver.writer("/w/upload")
        await writer.write(b"abc")
        self.assertIsNone(await writer.close())
        resumed = await self.driver.writer("/w/upload", append=True)
        self.assertEqual(resumed.size, 3)
        await resumed.write(b"def")
        self.assertEqual(resumed.size, 6)
        await resumed.close()
        again = await self.driver.writer("/w/upload", append=True)
        self.assertEqual(again.size, 6)
        await again.write(b"g")
        await again.commit()
        self.assertEqual(await self.driver.getContent("/w/upload"), b"abcdefg")

    async def test_writerAppendLargeResumes(self) -> None:
        """Resuming after a close keeps every byte, across chunk and part boundaries."""
        data = self.pattern(self.largeObjectSize, seed=3)
        half = len(data) // 2 + 1
        writer = await self.driver.writer("/w/upload")
        for i in range(0, half, MiB // 4):
            await writer.write(data[i : min(i + MiB // 4, half)])
        await writer.close()
        writer = await self.driver.writer("/w/upload", append=True)
        self.assertEqual(writer.size, half)
        for i in range(half, len(data), 3 * MiB):
            await writer.write(data[i : i + 3 * MiB])
        self.assertEqual(writer.size, len(data))
        await writer.commit()
        self.assertEqual(
            hashlib.sha256(await self.readAll("/w/upload")).digest(), hashlib.sha256(data).digest()
        )

    async def test_writerWithoutAppendStartsEmpty(self) -> None:
        writer = await self.driver.writer("/w/upload")
        await writer.write(b"stale")
        await writer.close()
        fresh = await self.driver.writer("/w/upload")
        self.assertEqual(fresh.size, 0)
        await fresh.write(b"new")
        await fresh.commit()
        self.assertEqual(await self.driver.getContent("/w/upload"), b"new")

    async def test_writerAppendToNothing(self) -> None:
        await self.failsWith(self.driver.writer("/w/never", append=True), PathNotFound, "/w/never")

    async def test_writerCancel(self) -> None:
        writer = await self.driver.writer("/w/cancelled")
        await writer.write(b"doomed")
        self.assertIsNone(await writer.cancel())
        await self.failsWith(self.driver.writer("/w/cancelled", append=True), PathNotFound)
        await self.failsWith(self.driver.getContent("/w/cancelled"), PathNotFound)

    async def test_writerCancelAfterResume(self) -> None:
        writer = await self.driver.writer("/w/cancelled")
        await writer.write(b"first part")
        await writer.close()
        writer = await self.driver.writer("/w/cancelled", append=True)
        await writer.cancel()
        await self.failsWith(self.driver.writer("/w/cancelled", append=True), PathNotFound)

    async def test_writerUnusableAfterCommit(self) -> None:
        writer = await self.driver.writer("/w/file")
        await writer.write(b"done")
        await writer.commit()
        await self.failsWith(writer.write(b"more"), StorageDriverError)
        self.assertEqual(await self.driver.getContent("/w/file"), b"done")

    async def test_writerManySmallWrites(self) -> None:
        pieces = [bytes([i % 251]) * (1 + i % 97) for i in range(5000)]
        await self.writeAll("/w/small", pieces)
        self.assertEqual(await self.driver.getContent("/w/small"), b"".join(pieces))

    async def test_writerWriteCopiesMutableBuffers(self) -> None:
        """A caller may reuse its buffer once write's Deferred fired."""
        writer = await self.driver.writer("/w/file")
        buffer = bytearray(b"aaaa")
        await writer.write(buffer)
        buffer[:] = b"bbbb"
        await writer.write(buffer)
        await writer.commit()
        self.assertEqual(await self.driver.getContent("/w/file"), b"aaaabbbb")

    async def test_writerReplacesCommittedContent(self) -> None:
        await self.driver.putContent("/w/file", b"old content that is longer")
        await self.writeAll("/w/file", [b"new"])
        self.assertEqual(await self.driver.getContent("/w/file"), b"new")

    # -- walk ----------------------------------------------------------------------------

    async def _walkTree(self) -> None:
        for path in ("/walk/b", "/walk/a/y/z", "/walk/a/x", "/walk/c/q", "/walkother/no"):
            await self.driver.putContent(path, b"w")

    async def test_walkDepthFirstLexical(self) -> None:
        await self._walkTree()
        seen: list[tuple[str, bool]] = []
        self.assertIsNone(await self.driver.walk("/walk", lambda info: seen.append((info.path, info.isDir))))
        self.assertEqual(
            seen,
            [
                ("/walk/a", True),
                ("/walk/a/x", False),
                ("/walk/a/y", True),
                ("/walk/a/y/z", False),
                ("/walk/b", False),
                ("/walk/c", True),
                ("/walk/c/q", False),
            ],
        )

    async def test_walkSkipDir(self) -> None:
        await self._walkTree()
        seen = []

        def visit(info: Any) -> object:
            seen.append(info.path)
            return SKIP_DIR if info.path == "/walk/a" else None

        await self.driver.walk("/walk", visit)
        self.assertEqual(seen, ["/walk/a", "/walk/b", "/walk/c", "/walk/c/q"])

    async def test_walkWaitsForDeferredVisitor(self) -> None:
        await self._walkTree()
        events = []

        def visit(info: Any) -> Deferred:
            events.append(("start", info.path))
            return deferLater(reactor, 0, events.append, ("end", info.path))

        await self.driver.walk("/walk/c", visit)
        self.assertEqual(events, [("start", "/walk/c/q"), ("end", "/walk/c/q")])

    async def test_walkVisitorErrorStopsWalk(self) -> None:
        await self._walkTree()

        def visit(info: Any) -> None:
            raise ZeroDivisionError(info.path)

        with self.assertRaises(ZeroDivisionError):
            await self.driver.walk("/walk", visit)

    async def test_walkFileInfo(self) -> None:
        await self._walkTree()
        infos = []
        await self.driver.walk("/walk/a", infos.append)
        for info in infos:
            self.assertTrue(verifyObject(IFileInfo, info))
        self.assertEqual(
            [(i.path, i.size) for i in infos if not i.isDir], [("/walk/a/x", 1), ("/walk/a/y/z", 1)]
        )

    async def test_walkMissing(self) -> None:
        await self.failsWith(self.driver.walk("/walk/none", lambda info: None), PathNotFound)

    async def test_walkRoot(self) -> None:
        await self._walkTree()
        seen = []
        await self.driver.walk("/", lambda info: seen.append(info.path))
        self.assertEqual(seen[:2], ["/walk", "/walk/a"])
        self.assertEqual(seen[-2:], ["/walkother", "/walkother/no"])

    # -- paths ---------------------------------------------------------------------------

    async def test_invalidPaths(self) -> None:
        await self.driver.putContent("/valid", b"x")
        for bad in INVALID_PATHS:
            calls = [
                self.driver.getContent(bad),
                self.driver.putContent(bad, b"x"),
                self.driver.reader(bad),
                self.driver.writer(bad),
                self.driver.writer(bad, append=True),
                self.driver.stat(bad),
                self.driver.list(bad),
                self.driver.move(bad, "/elsewhere"),
                self.driver.move("/valid", bad),
                self.driver.delete(bad),
                self.driver.walk(bad, lambda info: None),
            ]
            for call in calls:
                await self.failsWith(call, InvalidPath)
        # Nothing was moved or written along the way.
        self.assertEqual(await self.driver.list("/"), ["/valid"])

    async def test_validPathCharacters(self) -> None:
        path = "/A-Z_a-z.0-9/..dots/-dash/_under/x.y-z_"
        await self.driver.putContent(path, b"ok")
        self.assertEqual(await self.driver.getContent(path), b"ok")

    # -- redirects -----------------------------------------------------------------------

    async def test_redirectURL(self) -> None:
        await self.driver.putContent("/redirect/me", b"x")
        url = await self.driver.redirectURL("GET", "/redirect/me")
        if url is not None:
            self.assertIsInstance(url, str)
            self.assertTrue(url.startswith(("http://", "https://")), url)

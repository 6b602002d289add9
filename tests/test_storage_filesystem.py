"""The filesystem driver: the shared driver suite, plus what only a directory tree can get wrong."""

from __future__ import annotations

import errno
import os
import shutil
import stat

from twisted.internet import reactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from registryd.config.errors import ConfigError
from registryd.storage import filesystem
from registryd.storage.filesystem import FilesystemDriver, createDriver
from registryd.storage.interfaces import SKIP_DIR, InvalidPath, StorageDriverError
from registryd.testing.driversuite import MiB, StorageDriverTestsMixin


class FilesystemDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared suite against L{FilesystemDriver} on a fresh directory."""

    def makeDriver(self) -> FilesystemDriver:
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)
        return driver


class FilesystemLayoutTests(TestCase):
    """Files land where distribution puts them, and nothing leaves the root."""

    def setUp(self) -> None:
        self.root = FilePath(self.mktemp())
        self.root.makedirs()
        self.driver = FilesystemDriver(self.root.path, reactor)
        self.addCleanup(self.driver.stop)

    def allFiles(self) -> list[str]:
        return sorted(p.path[len(self.root.path) :] for p in self.root.walk() if p.isfile())

    async def test_distributionPaths(self) -> None:
        digest = "ab" + "cd" * 31
        blob = f"/docker/registry/v2/blobs/sha256/ab/{digest}/data"
        link = f"/docker/registry/v2/repositories/library/alpine/_layers/sha256/{digest}/link"
        await self.driver.putContent(blob, b"layer bytes")
        await self.driver.putContent(link, f"sha256:{digest}".encode())
        self.assertEqual(self.root.preauthChild(blob[1:]).getContent(), b"layer bytes")
        self.assertEqual(self.root.preauthChild(link[1:]).getContent(), f"sha256:{digest}".encode())
        self.assertEqual(self.allFiles(), sorted([blob, link]))

    async def test_readsWhatAnotherProcessWrote(self) -> None:
        """Content written by distribution (or anything else) under the root is served as it is."""
        target = self.root.preauthChild("docker/registry/v2/repositories/x/_manifests/tags/v1/current/link")
        target.parent().makedirs()
        target.setContent(b"sha256:" + b"0" * 64)
        path = "/docker/registry/v2/repositories/x/_manifests/tags/v1/current/link"
        self.assertEqual(await self.driver.getContent(path), b"sha256:" + b"0" * 64)
        self.assertEqual(
            await self.driver.list("/docker/registry/v2/repositories/x/_manifests/tags"),
            ["/docker/registry/v2/repositories/x/_manifests/tags/v1"],
        )

    async def test_putContentLeavesNoTemporaryFiles(self) -> None:
        for i in range(20):
            await self.driver.putContent("/a/b/link", b"x" * i)
        self.assertEqual(self.allFiles(), ["/a/b/link"])

    async def test_putContentReplacesByRename(self) -> None:
        """A reader that opened the old content keeps seeing all of it: content is swapped, not rewritten."""
        await self.driver.putContent("/a/link", b"old content")
        with open(os.path.join(self.root.path, "a", "link"), "rb") as old:
            await self.driver.putContent("/a/link", b"new")
            self.assertEqual(old.read(), b"old content")
        self.assertEqual(await self.driver.getContent("/a/link"), b"new")

    async def test_writerAppendsInPlace(self) -> None:
        """As distribution does, an upload's bytes are in its data file once the writer is closed."""
        writer = await self.driver.writer("/u/data")
        await writer.write(b"part one;")
        await writer.close()
        self.assertEqual(self.root.preauthChild("u/data").getContent(), b"part one;")
        writer = await self.driver.writer("/u/data", append=True)
        await writer.write(b"part two")
        await writer.close()
        self.assertEqual(self.root.preauthChild("u/data").getContent(), b"part one;part two")

    async def test_resumeFileLeftByAnotherProcess(self) -> None:
        """After a restart the upload's size is what is on disk."""
        self.root.preauthChild("u").makedirs()
        self.root.preauthChild("u/data").setContent(b"12345")
        writer = await self.driver.writer("/u/data", append=True)
        self.assertEqual(writer.size, 5)
        await writer.write(b"678")
        await writer.commit()
        self.assertEqual(self.root.preauthChild("u/data").getContent(), b"12345678")

    async def test_cancelRemovesFile(self) -> None:
        writer = await self.driver.writer("/u/data")
        await writer.write(b"x" * (3 * MiB))
        await writer.cancel()
        self.assertEqual(self.allFiles(), [])

    async def test_largeWriteBatches(self) -> None:
        """Writes smaller than a batch are gathered; the file gets every byte in order."""
        pieces = [bytes([i % 256]) * 65536 for i in range(100)]
        writer = await self.driver.writer("/big")
        for piece in pieces:
            await writer.write(piece)
        self.assertEqual(writer.size, 100 * 65536)
        await writer.commit()
        self.assertEqual(self.root.child("big").getContent(), b"".join(pieces))

    async def test_rootCreatedOnFirstWrite(self) -> None:
        driver = FilesystemDriver(os.path.join(self.mktemp(), "not", "yet"), reactor)
        self.addCleanup(driver.stop)
        self.assertEqual(await driver.list("/"), [])
        self.assertTrue((await driver.stat("/")).isDir)
        await driver.putContent("/x", b"y")
        self.assertEqual(await driver.list("/"), ["/x"])

    async def test_deleteRootEmptiesIt(self) -> None:
        await self.driver.putContent("/a/b", b"x")
        await self.driver.putContent("/c", b"x")
        await self.driver.delete("/")
        self.assertTrue(self.root.isdir())
        self.assertEqual(self.root.listdir(), [])

    async def test_unaddressableEntriesAreIgnored(self) -> None:
        """Files whose names no storage path can name (left by hand) are neither listed nor walked."""
        await self.driver.putContent("/d/good", b"x")
        self.root.preauthChild("d/bad name").setContent(b"x")
        self.assertEqual(await self.driver.list("/d"), ["/d/good"])
        seen = []
        await self.driver.walk("/d", lambda info: seen.append(info.path))
        self.assertEqual(seen, ["/d/good"])

    async def test_restartsThreadsAfterStop(self) -> None:
        await self.driver.putContent("/a", b"1")
        self.driver.stop()
        self.assertEqual(await self.driver.getContent("/a"), b"1")


class FilesystemEscapeTests(TestCase):
    """No storage path reaches outside the root directory, even through symbolic links."""

    def setUp(self) -> None:
        base = FilePath(self.mktemp())
        self.root = base.child("root")
        self.outside = base.child("outside")
        self.root.makedirs()
        self.outside.makedirs()
        self.outside.child("secret").setContent(b"secret")
        os.symlink(self.outside.path, self.root.child("escape").path)
        os.symlink(self.outside.child("secret").path, self.root.child("secretlink").path)
        self.driver = FilesystemDriver(self.root.path, reactor)
        self.addCleanup(self.driver.stop)

    async def assertRefused(self, d: object) -> None:
        try:
            await d
        except InvalidPath as e:
            self.assertEqual(e.driverName, "filesystem")
        else:
            self.fail("a path leading outside the root was accepted")

    async def test_readsThroughLinksOutsideRefused(self) -> None:
        await self.assertRefused(self.driver.getContent("/escape/secret"))
        await self.assertRefused(self.driver.getContent("/secretlink"))
        await self.assertRefused(self.driver.reader("/secretlink"))
        await self.assertRefused(self.driver.stat("/escape"))
        await self.assertRefused(self.driver.list("/escape"))
        await self.assertRefused(self.driver.walk("/escape", lambda info: None))

    async def test_readsThroughLinksOutsideRefusedWithoutProc(self) -> None:
        """Where /proc cannot say where an open file is, the path is resolved instead."""

        self.patch(filesystem, "_whereIs", lambda fd: None)
        await self.test_readsThroughLinksOutsideRefused()
        await self.driver.putContent("/inside", b"x")
        self.assertEqual(await self.driver.getContent("/inside"), b"x")
        self.assertEqual((await self.driver.stat("/inside")).size, 1)

    async def test_missingPathThroughLinkOutsideRefused(self) -> None:
        await self.assertRefused(self.driver.getContent("/escape/missing"))
        await self.assertRefused(self.driver.stat("/escape/missing"))
        await self.assertRefused(self.driver.reader("/escape/missing"))

    async def test_writesThroughLinksOutsideRefused(self) -> None:
        await self.assertRefused(self.driver.putContent("/escape/new", b"x"))
        await self.assertRefused(self.driver.writer("/escape/new"))
        await self.assertRefused(self.driver.writer("/secretlink"))
        await self.assertRefused(self.driver.writer("/secretlink", append=True))
        await self.assertRefused(self.driver.move("/escape/secret", "/stolen"))
        await self.assertRefused(self.driver.move("/secretlink", "/escape/planted"))
        await self.assertRefused(self.driver.delete("/escape/secret"))
        self.assertEqual(self.outside.listdir(), ["secret"])
        self.assertEqual(self.outside.child("secret").getContent(), b"secret")

    async def test_walkSkipsLinksOutside(self) -> None:
        await self.driver.putContent("/inside", b"x")
        seen = []
        await self.driver.walk("/", lambda info: seen.append(info.path))
        self.assertEqual(seen, ["/inside"])

    async def test_linkInsideRootFollowed(self) -> None:
        """Links within the root are fine (an operator may have moved a directory aside)."""
        await self.driver.putContent("/real/file", b"x")
        os.symlink(self.root.child("real").path, self.root.child("alias").path)
        self.assertEqual(await self.driver.getContent("/alias/file"), b"x")

    async def test_deletingLinkRemovesOnlyTheLink(self) -> None:
        await self.driver.delete("/secretlink")
        self.assertFalse(os.path.lexists(self.root.child("secretlink").path))
        self.assertEqual(self.outside.child("secret").getContent(), b"secret")

    async def test_dotDotNeverFollowed(self) -> None:
        await self.assertRefused(self.driver.getContent("/../outside/secret"))
        await self.assertRefused(self.driver.putContent("/a/../../outside/planted", b"x"))
        self.assertEqual(self.outside.listdir(), ["secret"])


class FilesystemParameterTests(TestCase):
    """Parameters as distribution documents them; anything else is a ConfigError naming the key."""

    def test_defaults(self) -> None:
        driver = createDriver(reactor, {})
        self.assertEqual(driver.rootDirectory, "/var/lib/registry")
        self.assertEqual(driver.maxThreads, 100)
        self.assertEqual(createDriver(reactor, None).rootDirectory, "/var/lib/registry")

    def test_rootDirectory(self) -> None:
        root = self.mktemp()
        self.assertEqual(createDriver(reactor, {"rootdirectory": root}).rootDirectory, os.path.abspath(root))

    def test_maxThreads(self) -> None:
        self.assertEqual(createDriver(reactor, {"maxthreads": 25}).maxThreads, 25)
        self.assertEqual(createDriver(reactor, {"maxthreads": "250"}).maxThreads, 250)

    def assertBad(self, parameters: dict, key: str) -> ConfigError:
        e = self.assertRaises(ConfigError, createDriver, reactor, parameters)
        self.assertEqual(e.keyPath, ("storage", "filesystem", key))
        return e

    def test_maxThreadsTooLow(self) -> None:
        e = self.assertBad({"maxthreads": 24}, "maxthreads")
        self.assertIn("25", str(e))

    def test_maxThreadsWrongType(self) -> None:
        for value in (True, 50.5, "many", [], {}):
            self.assertBad({"maxthreads": value}, "maxthreads")

    def test_rootDirectoryWrongType(self) -> None:
        for value in (5, "", ["/x"], {}, False):
            self.assertBad({"rootdirectory": value}, "rootdirectory")

    def test_unknownParameter(self) -> None:
        e = self.assertBad({"rootdirectory": "/x", "rootdir": "/y"}, "rootdir")
        self.assertIn("rootdirectory", str(e))

    def test_notAMapping(self) -> None:
        e = self.assertRaises(ConfigError, createDriver, reactor, "/var/lib/registry")
        self.assertEqual(e.keyPath, ("storage", "filesystem"))

    async def test_threadPoolSizedByMaxThreads(self) -> None:
        driver = createDriver(reactor, {"rootdirectory": self.mktemp(), "maxthreads": 31})
        self.addCleanup(driver.stop)
        await driver.list("/")
        self.assertEqual(driver._pool.max + driver._quick.size, 31)


class FilesystemModeTests(TestCase):
    """Files are created honouring the umask, as distribution does."""

    async def test_fileModeFollowsUmask(self) -> None:
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)
        old = os.umask(0o027)
        self.addCleanup(os.umask, old)
        await driver.putContent("/dir/file", b"x")
        writer = await driver.writer("/dir/upload")
        await writer.commit()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(driver.rootDirectory, "dir")).st_mode), 0o750)
        self.assertEqual(
            stat.S_IMODE(os.stat(os.path.join(driver.rootDirectory, "dir/upload")).st_mode), 0o640
        )
        # putContent's temporary file is made by open(), which also honours the umask.
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(driver.rootDirectory, "dir/file")).st_mode), 0o640)


class FilesystemInternalsTests(TestCase):
    """Corner cases of the driver's own machinery."""

    def test_shortWritesResumed(self) -> None:
        """A writev that takes only part of a batch is continued where it stopped."""
        realWritev = os.writev
        calls = []

        def stingy(fd: int, buffers: list) -> int:
            calls.append(len(buffers))
            if len(calls) > 50:
                raise RuntimeError("writev called again and again: no progress")
            return realWritev(fd, [bytes(buffers[0][:7])])

        self.patch(os, "writev", stingy)
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        try:
            filesystem._writeAll(fd, [b"0123456789", b"", b"abc", b"defghijklmnop"])
        finally:
            os.close(fd)
        self.assertEqual(FilePath(path).getContent(), b"0123456789abcdefghijklmnop")

    async def test_walkDoesNotFollowLinksInsideRoot(self) -> None:
        """A link back to an ancestor is visited but not descended into, so a walk always ends."""
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)
        await driver.putContent("/a/b/file", b"x")
        os.symlink(os.path.join(driver.rootDirectory, "a"), os.path.join(driver.rootDirectory, "a/b/loop"))
        seen = []
        await driver.walk("/", lambda info: seen.append((info.path, info.isDir)))
        self.assertEqual(seen, [("/a", True), ("/a/b", True), ("/a/b/file", False), ("/a/b/loop", True)])

    async def test_walkReadsDirectoriesAheadInFewThreadHops(self) -> None:
        """A walk over many small directories reads their listings in batches, in order, skipping as told."""
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)
        for number in range(600):
            os.makedirs(os.path.join(driver.rootDirectory, f"r/{number:03d}/_skip"))
            with open(os.path.join(driver.rootDirectory, f"r/{number:03d}/file"), "wb") as f:
                f.write(b"x")
        hops = []
        call = driver._call
        self.patch(driver, "_call", lambda path, *rest: hops.append(path) or call(path, *rest))
        seen = []

        def visit(info: object) -> object:
            seen.append(info.path)
            return SKIP_DIR if info.path.endswith("/_skip") else None

        await driver.walk("/r", visit)
        expected = []
        for number in range(600):
            expected += [f"/r/{number:03d}", f"/r/{number:03d}/_skip", f"/r/{number:03d}/file"]
        self.assertEqual(seen, expected)
        self.assertLess(len(hops), 10)

    async def test_walkRefusesDirectoryMadeALinkAfterItWasListed(self) -> None:
        """A directory swapped for a link out of the root while the walk runs is not entered."""
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)
        await driver.putContent("/w/a/file", b"x")
        await driver.putContent("/w/b/file", b"x")
        outside = FilePath(self.mktemp())
        outside.makedirs()
        outside.child("secret").setContent(b"secret")
        seen = []

        def visit(info: object) -> None:
            seen.append(info.path)
            if info.path == "/w/a":
                b = os.path.join(driver.rootDirectory, "w/b")
                shutil.rmtree(b)
                os.symlink(outside.path, b)

        await self.assertFailure(driver.walk("/w", visit), StorageDriverError)
        self.assertNotIn("/w/b/secret", seen)

    async def test_writeErrorReported(self) -> None:
        """A batch that fails on its way to disk fails a later write and the commit, as a typed error."""
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)

        def noSpace(fd: int, pieces: list) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(filesystem, "_writeAll", noSpace)
        writer = await driver.writer("/u/data")
        failed = None
        for _ in range(16):
            try:
                await writer.write(b"x" * MiB)
            except StorageDriverError as e:
                failed = e
                break
        self.assertIsNotNone(failed, "no write reported the failed batch")
        self.assertEqual((failed.driverName, failed.path), ("filesystem", "/u/data"))
        self.assertIn("No space", str(failed))
        writer2 = await driver.writer("/u/other")
        await writer2.write(b"y")
        with self.assertRaises(StorageDriverError):
            await writer2.commit()
        await writer.cancel()

    async def test_rootMadeALinkAfterStart(self) -> None:
        """A root directory that appears as a link after start-up (an operator's mount) is still the root."""
        base = FilePath(self.mktemp())
        base.makedirs()
        driver = FilesystemDriver(base.child("root").path, reactor)
        self.addCleanup(driver.stop)
        base.child("real").makedirs()
        os.symlink(base.child("real").path, base.child("root").path)
        await driver.putContent("/x", b"y")
        self.assertEqual(base.child("real").child("x").getContent(), b"y")

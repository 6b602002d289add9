"""Write-out started as an upload is written (registryd.storage.writeback), and the filesystem writer."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from registryd.storage import filesystem, writeback
from registryd.storage.filesystem import FilesystemDriver


class StartWritebackTests(TestCase):
    """startWriteback asks for exactly the range just written."""

    def setUp(self) -> None:
        self.calls: list[tuple[int, int, int, int]] = []
        self.fd = os.open(self.mktemp(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.addCleanup(os.close, self.fd)

    def record(self, fd: int, offset: int, length: int, flags: int) -> int:
        self.calls.append((fd, offset, length, flags))
        return 0

    def test_rangeJustWritten(self) -> None:
        self.patch(writeback, "_syncFileRange", self.record)
        os.write(self.fd, b"a" * 100)
        os.write(self.fd, b"b" * 50)
        self.assertTrue(writeback.startWriteback(self.fd, 50))
        self.assertEqual(self.calls, [(self.fd, 100, 50, writeback.SYNC_FILE_RANGE_WRITE)])

    def test_nothingWrittenAsksNothing(self) -> None:
        self.patch(writeback, "_syncFileRange", self.record)
        self.assertFalse(writeback.startWriteback(self.fd, 0))
        self.assertEqual(self.calls, [])

    def test_withoutSyncFileRange(self) -> None:
        """Where the C library has no sync_file_range, writing goes on without the hint."""
        self.patch(writeback, "_syncFileRange", None)
        os.write(self.fd, b"x")
        self.assertFalse(writeback.startWriteback(self.fd, 1))

    def test_realCallOnAFile(self) -> None:
        if writeback._syncFileRange is None:
            raise self.skipTest("no sync_file_range in this C library")
        os.write(self.fd, b"x" * 8192)
        self.assertTrue(writeback.startWriteback(self.fd, 8192))


class FilesystemWriterWritebackTests(TestCase):
    """The filesystem writer starts the write-out of every batch it writes."""

    async def test_everyBatchWrittenOut(self) -> None:
        started: list[int] = []
        self.patch(filesystem, "startWriteback", lambda fd, written: started.append(written))
        driver = FilesystemDriver(self.mktemp(), reactor)
        self.addCleanup(driver.stop)
        writer = await driver.writer("/upload/data")
        batch = filesystem.WRITE_BATCH
        for _ in range(3):
            await writer.write(b"z" * batch)
        await writer.write(b"tail")
        await writer.commit()
        self.assertEqual(sum(started), 3 * batch + 4)
        self.assertEqual(len(started), 4)

"""Blob uploads and blobs of the registry core over the in-memory driver."""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from registryd import memory
from registryd.registry import layout, resumablehash, uploads
from registryd.registry.core import Registry
from registryd.registry.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    NameInvalid,
    RangeInvalid,
    SizeInvalid,
    Unsupported,
)
from registryd.registry.interfaces import IBlobs, IDescriptor, IRegistry, IRepository, IUpload
from registryd.storage.inmemory import InMemoryDriver
from registryd.storage.interfaces import PathNotFound
from tests.test_registry_helpers import ListBody, pushBlob, sha256


class ConnectionLost(Exception):
    """Stands in for a client that went away mid-body."""


async def storedPaths(driver: InMemoryDriver) -> list[str]:
    """Every file path visible in the driver, via walk (the interface, not the dict)."""
    paths: list[str] = []

    def visit(info: object) -> None:
        if not info.isDir:
            paths.append(info.path)

    try:
        await driver.walk("/", visit)
    except PathNotFound:
        pass
    return paths


class UploadTests(TestCase):
    def setUp(self) -> None:
        self.driver = InMemoryDriver()
        self.registry = Registry(self.driver)
        self.repository = self.registry.repository("library/app")
        self.addCleanup(uploads._states.clear)

    def test_objects_provide_their_interfaces(self) -> None:
        verifyObject(IRegistry, self.registry)
        verifyObject(IRepository, self.repository)
        verifyObject(IBlobs, self.repository.blobs)

    def test_repository_name_is_checked_at_once(self) -> None:
        self.assertRaises(NameInvalid, self.registry.repository, "Bad/Name")
        self.assertRaises(NameInvalid, self.registry.repository, "a/../b")

    async def test_monolithic_upload_links_blob(self) -> None:
        upload = await self.repository.blobs.createUpload()
        verifyObject(IUpload, upload)
        self.assertEqual(upload.size, 0)
        started = await self.driver.getContent(layout.uploadStartedAtPath("library/app", upload.uuid))
        self.assertRegex(started.decode(), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(await upload.write(ListBody([b"hello ", b"world"]), start=0, length=11), 11)
        descriptor = await upload.commit(sha256(b"hello world"), 11)
        verifyObject(IDescriptor, descriptor)
        self.assertEqual((descriptor.digest, descriptor.size), (sha256(b"hello world"), 11))
        digest = sha256(b"hello world")
        self.assertEqual(await self.driver.getContent(layout.blobDataPath(digest)), b"hello world")
        self.assertEqual(
            await self.driver.getContent(layout.layerLinkPath("library/app", digest)), digest.encode()
        )
        self.assertEqual(
            await storedPaths(self.driver),
            [layout.blobDataPath(digest), layout.layerLinkPath("library/app", digest)],
        )
        stat = await self.repository.blobs.stat(digest)
        self.assertEqual((stat.digest, stat.size, stat.mediaType), (digest, 11, None))

    async def test_chunks_across_a_restart_are_rehashed(self) -> None:
        data = [bytes([i]) * (200 * 1024 + i) for i in range(4)]
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([data[0], data[1]]), start=0)
        # A new process: another Registry over the same storage, no running hashers.
        uploads.forgetRunningHashes()
        restarted = Registry(self.driver).repository("library/app")
        resumed = await restarted.blobs.resumeUpload(upload.uuid)
        self.assertEqual(resumed.size, len(data[0]) + len(data[1]))
        self.assertEqual(resumed.startedAt, upload.startedAt)
        size = await resumed.write(ListBody([data[2]]), start=resumed.size)
        uploads.forgetRunningHashes()
        again = await Registry(self.driver).repository("library/app").blobs.resumeUpload(upload.uuid)
        self.assertEqual(again.size, size)
        await again.write(ListBody([data[3]]), start=size)
        whole = b"".join(data)
        descriptor = await again.commit(sha256(whole))
        self.assertEqual(descriptor.size, len(whole))
        self.assertEqual(await self.driver.getContent(layout.blobDataPath(sha256(whole))), whole)

    def countReadBacks(self) -> list[str]:
        """Paths the driver opens for reading from now on (an upload read back to rehash it)."""
        opened: list[str] = []
        original = self.driver.reader

        def reader(path: str, offset: int = 0) -> Deferred:
            opened.append(path)
            return original(path, offset)

        self.driver.reader = reader
        return opened

    async def otherProcess(self, uuid: str) -> object:
        """The upload as a process that never saw it resumes it."""
        uploads.forgetRunningHashes()
        return await Registry(self.driver).repository("library/app").blobs.resumeUpload(uuid)

    async def test_a_patch_saves_its_running_hash(self) -> None:
        if not resumablehash.AVAILABLE:
            raise self.skipTest("no resumable SHA-256 here")
        upload = await self.repository.blobs.createUpload()
        size = await upload.write(ListBody([b"a" * 300_000, b"b" * 5]), start=0, resumable=True)
        path = layout.uploadHashStatePath("library/app", upload.uuid, "sha256", size)
        saved = resumablehash.resumed(await self.driver.getContent(path), size)
        self.assertEqual(saved.hexdigest(), hashlib.sha256(b"a" * 300_000 + b"b" * 5).hexdigest())

    async def test_chunks_through_other_processes_are_not_read_back(self) -> None:
        if not resumablehash.AVAILABLE:
            raise self.skipTest("no resumable SHA-256 here")
        data = [bytes([i]) * (200 * 1024 + i) for i in range(3)]
        upload = await self.repository.blobs.createUpload()
        readBacks = self.countReadBacks()
        size = await upload.write(ListBody([data[0]]), start=0, resumable=True)
        second = await self.otherProcess(upload.uuid)
        size = await second.write(ListBody([data[1]]), start=size, resumable=True)
        third = await self.otherProcess(upload.uuid)
        await third.write(ListBody([data[2]]), start=size, resumable=True)
        committing = await self.otherProcess(upload.uuid)
        with self.assertRaises(DigestInvalid):
            await committing.commit(sha256(b"not these bytes"))
        self.assertEqual(readBacks, [])
        # The refused commit removed the upload, as ever; again, this time with the right digest.
        upload = await self.repository.blobs.createUpload()
        size = await upload.write(ListBody(data), start=0, resumable=True)
        committing = await self.otherProcess(upload.uuid)
        descriptor = await committing.commit(sha256(b"".join(data)))
        self.assertEqual(descriptor.size, size)
        self.assertEqual(readBacks, [])
        self.assertEqual(await self.driver.getContent(layout.blobDataPath(descriptor.digest)), b"".join(data))

    async def test_a_damaged_saved_state_is_not_trusted(self) -> None:
        upload = await self.repository.blobs.createUpload()
        size = await upload.write(ListBody([b"x" * 200_000]), start=0, resumable=True)
        path = layout.uploadHashStatePath("library/app", upload.uuid, "sha256", size)
        await self.driver.putContent(path, b"sha\x03 cut short")
        readBacks = self.countReadBacks()
        committing = await self.otherProcess(upload.uuid)
        await committing.commit(sha256(b"x" * 200_000))
        self.assertEqual(readBacks, [layout.uploadDataPath("library/app", upload.uuid)])

    async def test_a_monolithic_write_saves_no_state(self) -> None:
        upload = await self.repository.blobs.createUpload()
        size = await upload.write(ListBody([b"whole blob"]))
        path = layout.uploadHashStatePath("library/app", upload.uuid, "sha256", size)
        with self.assertRaises(PathNotFound):
            await self.driver.getContent(path)

    def countWriters(self) -> dict[str, int]:
        """How many writers the driver opens and how many of them get closed, from now on."""
        counts = {"opened": 0, "closed": 0}
        original = self.driver.writer

        async def writer(path: str, append: bool = False) -> object:
            opened = await original(path, append)
            counts["opened"] += 1
            close = opened.close

            def counted() -> Deferred:
                counts["closed"] += 1
                return close()

            opened.close = counted
            return opened

        self.driver.writer = lambda path, append=False: Deferred.fromCoroutine(writer(path, append))
        return counts

    async def test_a_kept_writer_serves_the_next_chunk(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"first "]), start=0, resumable=True)
        counts = self.countWriters()
        resumed = await self.repository.blobs.resumeUpload(upload.uuid, keepWriter=True)
        await resumed.write(ListBody([b"second"]), start=6, resumable=True)
        await resumed.release()
        self.assertEqual(counts, {"opened": 1, "closed": 1})
        await resumed.commit(sha256(b"first second"))

    async def test_a_kept_writer_gone_stale_is_not_used(self) -> None:
        """Another request of this process appended between the resume and the write."""
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"one "]), start=0, resumable=True)
        late = await self.repository.blobs.resumeUpload(upload.uuid, keepWriter=True)
        early = await self.repository.blobs.resumeUpload(upload.uuid)
        await early.write(ListBody([b"two "]), start=4, resumable=True)
        with self.assertRaises(RangeInvalid):
            await late.write(ListBody([b"three"]), start=4)  # the kept writer still says 4
        self.assertEqual(late.size, 8)
        await late.write(ListBody([b"three"]), resumable=True)
        await late.release()
        await late.commit(sha256(b"one two three"))

    async def test_an_unused_kept_writer_is_closed_by_release(self) -> None:
        upload = await self.repository.blobs.createUpload()
        counts = self.countWriters()
        resumed = await self.repository.blobs.resumeUpload(upload.uuid, keepWriter=True)
        self.assertEqual(counts, {"opened": 1, "closed": 0})
        await resumed.release()
        await resumed.release()
        self.assertEqual(counts, {"opened": 1, "closed": 1})

    async def test_out_of_step_hasher_is_rebuilt(self) -> None:
        """Another process appended a chunk this process's hasher never saw."""
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"first "]))
        writer = await self.driver.writer(layout.uploadDataPath("library/app", upload.uuid), append=True)
        await writer.write(b"second ")
        await writer.close()
        resumed = await self.repository.blobs.resumeUpload(upload.uuid)
        await resumed.write(ListBody([b"third"]), start=13)
        await resumed.commit(sha256(b"first second third"))

    async def test_sha512_commit_hashes_the_stored_bytes(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"x" * 1000]))
        digest = "sha512:" + hashlib.sha512(b"x" * 1000).hexdigest()
        descriptor = await upload.commit(digest)
        self.assertEqual(descriptor.digest, digest)
        self.assertEqual((await self.repository.blobs.stat(digest)).size, 1000)

    async def test_wrong_digest_leaves_nothing_behind(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"content"]))
        wrong = sha256(b"other content")
        error = await self.assertFailure(upload.commit(wrong), DigestInvalid)
        self.assertEqual(error.detail["computed"], sha256(b"content"))
        self.assertEqual(await storedPaths(self.driver), [])
        await self.assertFailure(self.repository.blobs.stat(wrong), BlobUnknown)
        await self.assertFailure(self.repository.blobs.stat(sha256(b"content")), BlobUnknown)
        await self.assertFailure(self.repository.blobs.resumeUpload(upload.uuid), BlobUploadUnknown)

    async def test_malformed_commit_digest_keeps_the_upload(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"content"]))
        await self.assertFailure(upload.commit("sha256:nothex"), DigestInvalid)
        await upload.commit(sha256(b"content"))

    async def test_out_of_order_chunk_is_range_invalid_before_reading(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"12345"]))
        body = ListBody([b"never read"])
        error = await self.assertFailure(upload.write(body, start=3), RangeInvalid)
        self.assertEqual(error.detail["expected"], 5)
        self.assertEqual(body._chunks, [b"never read"])
        await self.assertFailure(upload.write(ListBody([b"again"]), start=0), RangeInvalid)
        self.assertEqual(upload.size, 5)

    async def test_length_mismatch_is_size_invalid(self) -> None:
        upload = await self.repository.blobs.createUpload()
        error = await self.assertFailure(upload.write(ListBody([b"abc"]), length=5), SizeInvalid)
        self.assertEqual((error.detail["declared"], error.detail["received"]), (5, 3))

    async def test_commit_size_mismatch_is_size_invalid(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"abc"]))
        await self.assertFailure(upload.commit(sha256(b"abc"), 4), SizeInvalid)
        self.assertEqual((await upload.commit(sha256(b"abc"), 3)).size, 3)

    async def test_disconnect_keeps_what_was_written_and_hides_it(self) -> None:
        upload = await self.repository.blobs.createUpload()
        body = ListBody([b"part one ", b"part two "], failure=ConnectionLost())
        await self.assertFailure(upload.write(body), ConnectionLost)
        self.assertEqual(upload.size, 18)
        self.assertEqual(
            await storedPaths(self.driver), [layout.uploadStartedAtPath("library/app", upload.uuid)]
        )
        resumed = await self.repository.blobs.resumeUpload(upload.uuid)
        self.assertEqual(resumed.size, 18)
        await resumed.write(ListBody([b"end"]), start=18)
        await resumed.commit(sha256(b"part one part two end"))

    async def test_disconnect_keeps_the_running_hash(self) -> None:
        """The hashing catches up with what was written before the error goes out: no rehash on resume."""
        upload = await self.repository.blobs.createUpload()
        big = b"b" * uploads.THREAD_HASH_MINIMUM
        await self.assertFailure(upload.write(ListBody([big, big], failure=ConnectionLost())), ConnectionLost)
        self.assertEqual(uploads._states[upload.uuid].running.offset, 2 * len(big))
        rehashed = []
        self.patch(uploads.Upload, "_rehash", lambda *arguments: rehashed.append(arguments))
        resumed = await self.repository.blobs.resumeUpload(upload.uuid)
        await resumed.write(ListBody([b"end"]), start=2 * len(big))
        await resumed.commit(sha256(big + big + b"end"))
        self.assertEqual(rehashed, [])

    async def test_failing_driver_write_drops_the_hasher(self) -> None:
        upload = await self.repository.blobs.createUpload()
        original = self.driver.writer
        calls = []

        async def failingWriter(path: str, append: bool = False) -> object:
            writer = await original(path, append)
            realWrite = writer.write

            def write(data: bytes) -> Deferred:
                calls.append(data)
                if data == b"boom":
                    # The driver took nothing and failed.
                    return Deferred.fromCoroutine(_raise())
                return realWrite(data)

            writer.write = write
            return writer

        async def _raise() -> None:
            raise OSError("disk full")

        self.driver.writer = lambda path, append=False: Deferred.fromCoroutine(failingWriter(path, append))
        await self.assertFailure(upload.write(ListBody([b"ok ", b"boom"])), OSError)
        self.driver.writer = original
        self.assertEqual(upload.size, 3)
        await upload.write(ListBody([b"fine"]), start=3)
        await upload.commit(sha256(b"ok fine"))

    async def test_concurrent_chunks_are_serialised(self) -> None:
        """Two requests racing for the same offset: the second sees the first's bytes and is refused."""
        upload = await self.repository.blobs.createUpload()
        other = await self.repository.blobs.resumeUpload(upload.uuid)
        arriving: Deferred = Deferred()

        class SlowBody:
            def __init__(self) -> None:
                self.chunks = [arriving, succeed(b"")]

            def read(self) -> Deferred:
                return self.chunks.pop(0)

        first = upload.write(SlowBody(), start=0)
        second = other.write(ListBody([b"racing"]), start=0)
        self.assertNoResult(second)
        arriving.callback(b"winner")
        self.assertEqual(await first, 6)
        await self.assertFailure(second, RangeInvalid)
        await upload.commit(sha256(b"winner"))
        self.assertEqual(uploads._states, {})

    async def test_cancelled_write_releases_the_upload(self) -> None:
        upload = await self.repository.blobs.createUpload()
        arriving: Deferred = Deferred()

        class StalledBody:
            def read(self) -> Deferred:
                return arriving

        stalled = upload.write(StalledBody())
        waiting = upload.write(ListBody([b"later"]))
        waiting.cancel()
        stalled.cancel()
        self.failureResultOf(waiting)
        self.failureResultOf(stalled)
        self.assertEqual(await upload.write(ListBody([b"next"]), start=0), 4)
        await upload.commit(sha256(b"next"))

    async def test_cancel_removes_the_upload(self) -> None:
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"data"]))
        await upload.cancel()
        self.assertEqual(await storedPaths(self.driver), [])
        await self.assertFailure(self.repository.blobs.resumeUpload(upload.uuid), BlobUploadUnknown)
        await self.assertFailure(upload.cancel(), BlobUploadUnknown)
        await self.assertFailure(upload.write(ListBody([b"x"])), BlobUploadUnknown)

    async def test_resume_refuses_unknown_and_malformed_ids(self) -> None:
        for uuid in ["0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b", "../../x", "a/b", ""]:
            await self.assertFailure(self.repository.blobs.resumeUpload(uuid), BlobUploadUnknown)

    async def test_uploads_belong_to_their_repository(self) -> None:
        upload = await self.repository.blobs.createUpload()
        other = self.registry.repository("other")
        await self.assertFailure(other.blobs.resumeUpload(upload.uuid), BlobUploadUnknown)

    async def test_big_chunks_are_hashed_in_a_thread(self) -> None:
        chunk = b"z" * (uploads.THREAD_HASH_MINIMUM * 2)
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([chunk, chunk, b"tail"]))
        await upload.commit(sha256(chunk + chunk + b"tail"))

    async def test_the_commit_reports_the_blob_size_for_memory_trimming(self) -> None:
        ended: list[int] = []
        self.patch(memory, "transferEnded", ended.append)
        upload = await self.repository.blobs.createUpload()
        await upload.write(ListBody([b"abc", b"de"]))
        await upload.write(ListBody([b"f"]), start=5)
        self.assertEqual(ended, [])
        await upload.commit(sha256(b"abcdef"))
        self.assertEqual(ended, [6])

    async def test_empty_blob(self) -> None:
        digest = await pushBlob(self.repository, b"")
        self.assertEqual((await self.repository.blobs.stat(digest)).size, 0)

    async def test_commit_of_an_existing_blob_reuses_it(self) -> None:
        await pushBlob(self.registry.repository("first"), b"shared")
        digest = await pushBlob(self.repository, b"shared")
        self.assertEqual((await self.repository.blobs.stat(digest)).size, 6)
        self.assertEqual(len([p for p in await storedPaths(self.driver) if "/blobs/" in p]), 1)

    async def test_blob_collected_while_an_upload_of_it_commits_is_restored(self) -> None:
        """
        A garbage collection that removes the existing copy of a blob just before the upload links
        it (it could not see the link yet) leaves the upload's own bytes to take its place.
        """
        digest = await pushBlob(self.registry.repository("first"), b"shared")
        linkPath = layout.layerLinkPath(self.repository.name, digest)
        putContent = self.driver.putContent

        async def collectThenPut(path: str, data: bytes) -> None:
            if path == linkPath:
                await self.driver.delete(layout.blobDataPath(digest).rsplit("/", 1)[0])
            await putContent(path, data)

        self.driver.putContent = collectThenPut
        await pushBlob(self.repository, b"shared")
        descriptor, reader = await self.repository.blobs.open(digest)
        self.assertEqual(await reader.read(), b"shared")
        self.assertEqual([p for p in await storedPaths(self.driver) if "/_uploads/" in p], [])

    async def test_read_only_registry_refuses_uploads(self) -> None:
        upload = await self.repository.blobs.createUpload()
        self.registry.readOnly = True
        await self.assertFailure(self.repository.blobs.createUpload(), Unsupported)
        await self.assertFailure(upload.write(ListBody([b"x"])), Unsupported)
        await self.assertFailure(upload.commit(sha256(b"")), Unsupported)


class BlobTests(TestCase):
    def setUp(self) -> None:
        self.driver = InMemoryDriver()
        self.registry = Registry(self.driver, deleteEnabled=True)
        self.repository = self.registry.repository("app")
        self.addCleanup(uploads._states.clear)

    async def test_stat_needs_link_and_data(self) -> None:
        digest = await pushBlob(self.repository, b"blob")
        await self.assertFailure(self.registry.repository("elsewhere").blobs.stat(digest), BlobUnknown)
        await self.driver.delete(layout.blobDirectory(digest))
        await self.assertFailure(self.repository.blobs.stat(digest), BlobUnknown)
        await self.assertFailure(self.repository.blobs.stat("sha256:xyz"), DigestInvalid)

    async def test_open_from_an_offset(self) -> None:
        digest = await pushBlob(self.repository, b"0123456789")
        descriptor, reader = await self.repository.blobs.open(digest, 4)
        self.assertEqual(descriptor.size, 10)
        chunks = []
        while chunk := await reader.read():
            chunks.append(chunk)
        await reader.close()
        self.assertEqual(b"".join(chunks), b"456789")
        await self.assertFailure(self.repository.blobs.open(digest, 11), RangeInvalid)
        await self.assertFailure(self.repository.blobs.open(sha256(b"nope")), BlobUnknown)

    async def test_delete_unlinks_only(self) -> None:
        digest = await pushBlob(self.repository, b"blob")
        await self.repository.blobs.delete(digest)
        await self.assertFailure(self.repository.blobs.stat(digest), BlobUnknown)
        self.assertEqual(await self.driver.getContent(layout.blobDataPath(digest)), b"blob")
        await self.assertFailure(self.repository.blobs.delete(digest), BlobUnknown)

    async def test_delete_needs_deletes_enabled(self) -> None:
        registry = Registry(self.driver)
        digest = await pushBlob(registry.repository("app"), b"blob")
        await self.assertFailure(registry.repository("app").blobs.delete(digest), Unsupported)
        self.assertEqual((await registry.repository("app").blobs.stat(digest)).size, 4)

    async def test_mount_from_a_repository(self) -> None:
        digest = await pushBlob(self.repository, b"mounted")
        target = self.registry.repository("target/repo")
        descriptor = await target.blobs.mount(digest, "app")
        self.assertEqual(descriptor.size, 7)
        self.assertEqual((await target.blobs.stat(digest)).size, 7)
        self.assertEqual(
            await self.driver.getContent(layout.layerLinkPath("target/repo", digest)), digest.encode()
        )

    async def test_mount_refuses_what_the_source_lacks(self) -> None:
        digest = await pushBlob(self.repository, b"mounted")
        target = self.registry.repository("target")
        await self.assertFailure(target.blobs.mount(digest, "unrelated"), BlobUnknown)
        await self.assertFailure(target.blobs.mount(digest, "Not/Valid"), BlobUnknown)
        await self.assertFailure(target.blobs.mount(sha256(b"absent"), "app"), BlobUnknown)
        await self.assertFailure(target.blobs.stat(digest), BlobUnknown)

    async def test_mount_without_source_needs_the_blob_stored(self) -> None:
        digest = await pushBlob(self.repository, b"known")
        target = self.registry.repository("target")
        self.assertEqual((await target.blobs.mount(digest, None)).size, 5)
        await self.assertFailure(target.blobs.mount(sha256(b"unknown"), None), BlobUnknown)

    async def test_redirect_url_comes_from_the_driver(self) -> None:
        digest = await pushBlob(self.repository, b"blob")
        asked = []

        def redirectURL(method: str, path: str) -> Deferred:
            asked.append((method, path))
            return succeed("https://cdn.example/blob")

        self.driver.redirectURL = redirectURL
        self.assertEqual(await self.repository.blobs.redirectURL("GET", digest), "https://cdn.example/blob")
        self.assertEqual(asked, [("GET", layout.blobDataPath(digest))])


class _StepPool:
    """A thread pool and reactor in one, run by hand: what a thread does, then what it tells the reactor."""

    def __init__(self) -> None:
        self.threadWork: list = []
        self.reactorCalls: list = []

    def getThreadPool(self) -> _StepPool:
        return self

    def callInThread(self, function: object, *args: object) -> None:
        self.threadWork.append((function, args))

    def callFromThread(self, function: object, *args: object) -> None:
        self.reactorCalls.append((function, args))

    def runThreads(self) -> None:
        while self.threadWork:
            function, args = self.threadWork.pop(0)
            function(*args)

    def tellReactor(self, count: int | None = None) -> None:
        for _ in range(len(self.reactorCalls) if count is None else count):
            function, args = self.reactorCalls.pop(0)
            function(*args)


class _BrokenHasher:
    def update(self, chunk: bytes) -> None:
        raise RuntimeError("hash thread")


class HashBehindTests(TestCase):
    """The hashing that follows an upload's chunks in a thread: in order, bounded, and waited for."""

    def setUp(self) -> None:
        self.pool = _StepPool()
        self.hasher = hashlib.sha256()
        self.hashing = uploads._HashBehind(self.hasher, ahead=2, reactor=self.pool)

    def test_chunks_are_hashed_in_order_behind_the_caller(self) -> None:
        big = uploads.THREAD_HASH_MINIMUM
        chunks = [bytes([n]) * big for n in range(3)]
        fed = [self.hashing.feed(chunk) for chunk in chunks[:2]]
        self.assertTrue(all(d.called for d in fed))  # two behind: room for no more
        third = self.hashing.feed(chunks[2])
        self.assertFalse(third.called)
        finished = self.hashing.finish()
        self.runThreadsOnce()
        self.assertFalse(third.called)  # hashed, but the reactor has not heard yet
        self.pool.tellReactor()  # one wake-up for all three
        self.assertEqual(self.pool.reactorCalls, [])
        self.assertTrue(third.called)
        self.assertTrue(finished.called)
        self.assertEqual(self.hasher.hexdigest(), hashlib.sha256(b"".join(chunks)).hexdigest())

    def runThreadsOnce(self) -> None:
        """One hand-over to the thread hashes everything queued so far."""
        self.assertEqual(len(self.pool.threadWork), 1)
        self.pool.runThreads()

    def test_small_chunks_are_hashed_at_once_in_order(self) -> None:
        big = b"b" * uploads.THREAD_HASH_MINIMUM
        self.hashing.feed(big)
        self.hashing.feed(b"small")  # must wait for the big one before it
        self.assertEqual(self.hasher.hexdigest(), hashlib.sha256(b"").hexdigest())
        self.runThreadsOnce()
        self.pool.tellReactor()
        self.assertTrue(self.hashing.finish().called)
        self.assertEqual(self.hasher.hexdigest(), hashlib.sha256(big + b"small").hexdigest())
        self.hashing.feed(b"tail")  # nothing in the thread's hands now: hashed at once
        self.assertEqual(self.pool.threadWork, [])
        self.assertEqual(self.hasher.hexdigest(), hashlib.sha256(big + b"small" + b"tail").hexdigest())

    def test_a_failed_hash_fails_what_waits_and_what_comes(self) -> None:
        hashing = uploads._HashBehind(_BrokenHasher(), ahead=2, reactor=self.pool)
        big = b"b" * uploads.THREAD_HASH_MINIMUM
        hashing.feed(big)
        finished = hashing.finish()
        self.pool.runThreads()
        self.pool.tellReactor()
        self.failureResultOf(finished, RuntimeError)
        self.failureResultOf(hashing.feed(big), RuntimeError)
        self.assertEqual(self.pool.threadWork, [])

    def test_abandoning_drops_what_was_not_hashed(self) -> None:
        big = b"b" * uploads.THREAD_HASH_MINIMUM
        self.hashing.feed(big)
        self.hashing.feed(big)
        self.hashing.abandon()
        self.pool.runThreads()
        self.pool.tellReactor()
        self.assertEqual(self.hasher.hexdigest(), hashlib.sha256(b"").hexdigest())
        self.assertTrue(self.hashing.finish().called)

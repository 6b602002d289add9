"""
Blob uploads whose state lives in storage (C{_uploads/<uuid>/}), as distribution keeps it.

The bytes go straight from the request body into the driver's writer while a SHA-256 runs
over them. Python cannot serialise a hash state, so running hashers are kept per upload
for the life of the process together with the offset they have reached; when one is
missing or out of step (a restart, another process wrote a chunk) the stored bytes are
hashed again. Where a driver cannot read an upload back before it is committed, the
digest is computed from the committed bytes instead, before anything becomes visible.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import implementer

from registryd import memory
from registryd.registry import layout, resumablehash
from registryd.registry.descriptors import Descriptor
from registryd.registry.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    SizeInvalid,
)
from registryd.registry.interfaces import IBodyStream, IUpload
from registryd.registry.names import isUploadID, newHasher, parseDigest
from registryd.storage.interfaces import IFileWriter, InvalidOffset, PathNotFound
from registryd.threads import Backlog, ThreadQueue

if TYPE_CHECKING:
    from registryd.registry.core import Registry

THREAD_HASH_MINIMUM = 128 * 1024
"""Chunks this long or longer are hashed in a thread while the driver writes them (hashlib drops the GIL)."""

HASH_AHEAD = 2
"""Chunks an upload may read ahead of its hashing thread (each up to a body read: 1 MiB; 4 gained nothing)."""

RUNNING_ALGORITHM = "sha256"
"""The algorithm hashed while bytes arrive; a commit with another algorithm rehashes the stored bytes."""


@dataclass
class _RunningHash:
    """A hasher that has seen exactly the first C{offset} bytes of an upload."""

    hasher: Any
    offset: int = 0


@dataclass
class _UploadState:
    """What this process holds for one upload: a lock serialising writes, and maybe a running hash."""

    lock: DeferredLock = field(default_factory=DeferredLock)
    running: _RunningHash | None = None
    users: int = 0


_states: dict[str, _UploadState] = {}
"""Process-wide, by upload uuid: every Registry object in the process shares these."""


def forgetRunningHashes() -> None:
    """Drop every running hasher, as a restart of the process would (for tests)."""
    for state in _states.values():
        state.running = None


class _Locked:
    """An async context manager holding an upload's lock, dropping its state once nobody uses it."""

    def __init__(self, uploadID: str) -> None:
        self._id = uploadID
        self.state = _states.setdefault(uploadID, _UploadState())

    async def __aenter__(self) -> _UploadState:
        self.state.users += 1
        try:
            await self.state.lock.acquire()
        except BaseException:
            # Cancelled while waiting (the client went away): we never held the lock.
            self._leave()
            raise
        return self.state

    def _leave(self) -> None:
        self.state.users -= 1
        if self.state.users == 0 and self.state.running is None and _states.get(self._id) is self.state:
            del _states[self._id]

    async def __aexit__(self, *exc: object) -> None:
        self.state.lock.release()
        self._leave()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _formatTime(when: datetime) -> bytes:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode("ascii")


def parseStartedAt(text: bytes | str) -> datetime:
    """Read an upload's C{startedat} (RFC 3339, as distribution writes it too); ValueError if unreadable."""
    if not isinstance(text, str):
        text = bytes(text).decode("ascii")
    when = datetime.fromisoformat(text.strip().replace("z", "Z"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _parseTime(text: bytes) -> datetime:
    """As L{parseStartedAt}, with the epoch for an unreadable time (the upload itself is still good)."""
    try:
        return parseStartedAt(text)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


async def _update(hasher: Any, chunk: bytes) -> None:
    if len(chunk) >= THREAD_HASH_MINIMUM:
        await deferToThread(hasher.update, chunk)
    else:
        hasher.update(chunk)


class _HashBehind:
    """
    Feeds an upload's chunks to its hasher in order, in a thread, while the upload goes on
    reading and writing: hashing is not waited for chunk by chunk, only when more than
    C{ahead} chunks are queued (memory stays bounded) and at the end. One thread works
    through the queue without waiting on the reactor between chunks (L{ThreadQueue}).
    """

    def __init__(self, hasher: Any, ahead: int = HASH_AHEAD, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self._hasher = hasher
        self._ahead = ahead
        self._queue = ThreadQueue(reactor, reactor.getThreadPool(), hasher.update)
        self._backlog = Backlog()
        self.caughtUp = False
        """Set by the upload once the hasher has seen exactly what the writer took."""

    def feed(self, chunk: bytes) -> Deferred:
        """Queue a chunk; the Deferred fires once at most C{ahead} chunks are not hashed yet."""
        if self._backlog.failure is not None:
            return fail(self._backlog.failure)
        if self._backlog.outstanding == 0 and len(chunk) < THREAD_HASH_MINIMUM:
            self._hasher.update(chunk)  # nothing in the thread's hands: cheaper than a hand-over
            return succeed(None)
        self._backlog.track(self._queue.submit(chunk))
        return self._backlog.whenAtMost(self._ahead)

    def finish(self) -> Deferred:
        """@return: Deferred firing once every chunk fed is hashed (or failing as the hashing did)."""
        return self._backlog.whenAtMost(0)

    def abandon(self) -> None:
        """Hash nothing more (the upload failed)."""
        self._backlog.forget(len(self._queue.clear()))


async def createUpload(registry: Registry, name: str) -> Upload:
    """Start an upload in storage: its start time, and an empty data file."""
    registry.checkWritable()
    uploadID = str(uuidlib.uuid4())
    startedAt = _now()
    await registry.driver.putContent(layout.uploadStartedAtPath(name, uploadID), _formatTime(startedAt))
    writer = await registry.driver.writer(layout.uploadDataPath(name, uploadID))
    await writer.close()
    return Upload(registry, name, uploadID, startedAt, 0)


async def resumeUpload(registry: Registry, name: str, uploadID: str, keepWriter: bool = False) -> Upload:
    """
    Find an upload in storage (any process may have started it). L{BlobUploadUnknown}.
    With C{keepWriter} (a PATCH) the writer opened to learn its size is kept for the write that
    follows (L{Upload.release} closes it if none does), as distribution does: per chunk, two
    thread hand-overs fewer.
    """
    if not isUploadID(uploadID):
        raise BlobUploadUnknown(detail={"uuid": uploadID})
    try:
        startedAt = _parseTime(await registry.driver.getContent(layout.uploadStartedAtPath(name, uploadID)))
    except PathNotFound:
        raise BlobUploadUnknown(detail={"uuid": uploadID}) from None
    upload = Upload(registry, name, uploadID, startedAt, 0)
    writer = await upload._openWriter()
    upload.size = writer.size
    if keepWriter:
        upload._heldWriter = writer
    else:
        await writer.close()
    return upload


@implementer(IUpload)
class Upload:
    """One upload session; cheap to make, as all of its state is in storage."""

    log = Logger()

    _heldWriter: IFileWriter | None = None

    def __init__(
        self, registry: Registry, repository: str, uuid: str, startedAt: datetime, size: int
    ) -> None:
        self._registry = registry
        self.repository = repository
        self.uuid = uuid
        self.startedAt = startedAt
        self.size = size

    @property
    def _dataPath(self) -> str:
        return layout.uploadDataPath(self.repository, self.uuid)

    async def _openWriter(self) -> IFileWriter:
        driver = self._registry.driver
        try:
            return await driver.writer(self._dataPath, append=True)
        except PathNotFound:
            pass
        if not await layout.exists(driver, layout.uploadStartedAtPath(self.repository, self.uuid)):
            raise BlobUploadUnknown(detail={"uuid": self.uuid})
        if await layout.exists(driver, self._dataPath):
            # Committed content at the upload path: another request is finishing this upload.
            raise BlobUploadInvalid(detail={"uuid": self.uuid, "reason": "upload is being completed"})
        # Started elsewhere without a data file yet (distribution creates it on the first write).
        return await driver.writer(self._dataPath)

    async def release(self) -> None:
        """Close the writer L{resumeUpload} kept, if no write took it."""
        writer, self._heldWriter = self._heldWriter, None
        if writer is not None:
            try:
                await writer.close()
            except Exception:
                self.log.failure("closing the unused writer of upload {uuid}", uuid=self.uuid)

    async def _writerFor(self, state: _UploadState) -> IFileWriter:
        """
        The writer for a write under the upload's lock: the one kept since the resume when nothing
        was written through this process since (the running hash ends where it does), else a new one.
        """
        held, self._heldWriter = self._heldWriter, None
        if held is not None:
            if state.running is not None and state.running.offset == held.size:
                return held
            await held.close()  # its size may be stale: open again, under the lock
        return await self._openWriter()

    async def _rehash(self, hasher: Any, size: int) -> bool:
        """Hash the first size stored bytes; False when the driver cannot read them back yet."""
        try:
            reader = await self._registry.driver.reader(self._dataPath)
        except (PathNotFound, InvalidOffset):
            return False
        seen = 0
        try:
            while seen < size:
                chunk = await reader.read()
                if not chunk:
                    return False
                chunk = chunk[: size - seen]
                await _update(hasher, chunk)
                seen += len(chunk)
        finally:
            await reader.close()
        return True

    async def _savedHash(self, size: int) -> _RunningHash | None:
        """The running hash at offset size as a request of any process saved it, if one did."""
        path = layout.uploadHashStatePath(self.repository, self.uuid, RUNNING_ALGORITHM, size)
        try:
            saved = await self._registry.driver.getContent(path)
        except PathNotFound:
            return None
        hasher = resumablehash.resumed(bytes(saved), size)
        return None if hasher is None else _RunningHash(hasher, size)

    async def _saveHash(self, state: _UploadState) -> None:
        """Save the running hash where the next request finds it, whichever process takes it."""
        running = state.running
        if running is None or running.offset != self.size:
            return
        saved = resumablehash.marshalled(running.hasher)
        if saved is not None:
            path = layout.uploadHashStatePath(self.repository, self.uuid, RUNNING_ALGORITHM, running.offset)
            await self._registry.driver.putContent(path, saved)

    async def _runningHash(self, state: _UploadState, size: int) -> _RunningHash | None:
        """
        The running hash at offset size: this process's, a saved one, or rebuilt from the stored
        bytes; None if it cannot be had.
        """
        if state.running is not None and state.running.offset == size:
            return state.running
        state.running = None
        if size and (saved := await self._savedHash(size)) is not None:
            state.running = saved
            return saved
        running = _RunningHash(resumablehash.newRunningHasher(), size)
        if size and not await self._rehash(running.hasher, size):
            self.log.debug("upload {uuid}: stored bytes not readable before commit", uuid=self.uuid)
            return None
        state.running = running
        return running

    def write(
        self, body: IBodyStream, start: int | None = None, length: int | None = None, resumable: bool = False
    ) -> Deferred:
        """
        Append the body's bytes, hashing them as they go. With C{resumable} (a PATCH: more
        requests follow), the running hash is saved as well. @return: Deferred firing with the new size.
        """
        return Deferred.fromCoroutine(self._write(body, start, length, resumable))

    async def _write(self, body: IBodyStream, start: int | None, length: int | None, resumable: bool) -> int:
        self._registry.checkWritable()
        async with _Locked(self.uuid) as state:
            writer = await self._writerFor(state)
            try:
                self.size = writer.size
                if start is not None and start != writer.size:
                    raise RangeInvalid(detail={"uuid": self.uuid, "expected": writer.size, "start": start})
                running = await self._runningHash(state, writer.size)
                received = await self._pump(body, writer, state, running)
            except BaseException:
                # Keep what was fully written: the upload's size tells the client where to resume.
                self.size = writer.size
                try:
                    await writer.close()
                except Exception:
                    self.log.failure("closing the writer of upload {uuid} after an error", uuid=self.uuid)
                raise
            self.size = writer.size
            await writer.close()
            if resumable:
                await self._saveHash(state)
        if length is not None and received != length:
            raise SizeInvalid(detail={"uuid": self.uuid, "declared": length, "received": received})
        return self.size

    async def _pump(
        self, body: IBodyStream, writer: IFileWriter, state: _UploadState, running: _RunningHash | None
    ) -> int:
        """Copy the body into the writer while a thread hashes the chunks behind it."""
        received = 0
        hashing = None if running is None else _HashBehind(running.hasher)
        pending: Deferred = body.read()
        try:
            while chunk := await self._nextChunk(pending, hashing, running, received):
                chunk = bytes(chunk)
                # Ask for the next chunk now, so the network keeps flowing while this one is stored.
                pending = body.read()
                if hashing is not None:
                    await hashing.feed(chunk)
                await writer.write(chunk)
                received += len(chunk)
        except BaseException:
            # Nobody will wait for a read still in flight: let its failure (if any) go quietly.
            pending.addErrback(lambda _: None)
            if hashing is not None and not hashing.caughtUp:
                # The hasher may have seen bytes the writer did not take.
                state.running = None
                hashing.abandon()
            raise
        return received

    @staticmethod
    async def _nextChunk(
        pending: Deferred, hashing: _HashBehind | None, running: _RunningHash | None, received: int
    ) -> bytes:
        """
        The next chunk of the body; at its end (or when it fails) the hashing catches up first,
        so the running hash stands at exactly the bytes the writer took.
        """
        error: BaseException | None = None
        try:
            chunk = await pending
        except BaseException as e:
            chunk, error = b"", e
        if not chunk and hashing is not None and running is not None:
            await hashing.finish()
            running.offset += received
            hashing.caughtUp = True
        if error is not None:
            raise error
        return chunk

    def commit(self, digest: str, size: int | None = None) -> Deferred:
        """Verify the upload and publish it as a blob of the repository. @return: Deferred (Descriptor)."""
        return Deferred.fromCoroutine(self._commit(digest, size))

    async def _commit(self, digest: str, size: int | None) -> Descriptor:
        self._registry.checkWritable()
        algorithm, _ = parseDigest(digest)
        driver = self._registry.driver
        async with _Locked(self.uuid) as state:
            writer = await self._openWriter()
            total = writer.size
            self.size = total
            if size is not None and size != total:
                await writer.close()
                raise SizeInvalid(detail={"uuid": self.uuid, "declared": size, "received": total})
            computed = None
            running = state.running
            if algorithm == RUNNING_ALGORITHM and total and (running is None or running.offset != total):
                running = await self._savedHash(total)  # the chunks went through another process
            if algorithm == RUNNING_ALGORITHM and running is not None and running.offset == total:
                computed = f"{algorithm}:{running.hasher.hexdigest()}"
            state.running = None
            await writer.commit()
            if computed is None:
                computed = await self._digestStored(algorithm, total)
            if computed != digest:
                await layout.deleteIfPresent(driver, layout.uploadPath(self.repository, self.uuid))
                raise DigestInvalid(detail={"digest": digest, "computed": computed})
            blobPath = layout.blobDataPath(digest)
            reused = await layout.exists(driver, blobPath)
            if not reused:
                await driver.move(self._dataPath, blobPath)
            await layout.writeLink(driver, layout.layerLinkPath(self.repository, digest), digest)
            # Link first, then look: a garbage collection that took the existing blob before it
            # could see the new link leaves it missing now, and the upload still has the bytes.
            # (Our own bytes, once moved into place, are the collector's to restore: it sees the link.)
            if reused and not await layout.exists(driver, blobPath):
                await driver.move(self._dataPath, blobPath)
            await layout.deleteIfPresent(driver, layout.uploadPath(self.repository, self.uuid))
        # At the commit, not after each PATCH: trimming between chunks would only make the next
        # chunk's buffers be faulted in again.
        memory.transferEnded(total)
        self.log.debug("upload {uuid} committed as {digest}", uuid=self.uuid, digest=digest)
        return Descriptor(digest, total, None)

    async def _digestStored(self, algorithm: str, size: int) -> str:
        """The digest of the committed upload bytes, read back from storage."""
        hasher = newHasher(algorithm)
        if size and not await self._rehash(hasher, size):
            raise BlobUploadInvalid(detail={"uuid": self.uuid, "reason": "upload data unreadable"})
        return f"{algorithm}:{hasher.hexdigest()}"

    def cancel(self) -> Deferred:
        """Discard the upload and everything received. @return: Deferred firing None."""
        return Deferred.fromCoroutine(self._cancel())

    async def _cancel(self) -> None:
        self._registry.checkWritable()
        async with _Locked(self.uuid) as state:
            state.running = None
            if not await layout.deleteIfPresent(
                self._registry.driver, layout.uploadPath(self.repository, self.uuid)
            ):
                raise BlobUploadUnknown(detail={"uuid": self.uuid})

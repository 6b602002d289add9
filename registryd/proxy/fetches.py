"""
Shared upstream transfers of the pull-through cache.

A blob not cached yet is fetched once (L{BlobFetch}) however many clients ask for it: the
bytes go into an upload of the registry core (hashed as they come, made visible only by a
commit that verifies the digest) and, at the same time, to every client following the
transfer. Clients that join late first read what the upload already holds in storage,
then follow from memory. The upstream is read only as fast as the slowest follower takes
the bytes, so memory stays within about L{WINDOW} + L{CHECKPOINT} bytes per transfer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from registryd import metrics
from registryd.proxy.interfaces import UpstreamUnavailable
from registryd.registry import layout
from registryd.registry.blobs import storedSize
from registryd.registry.errors import BlobUnknown, BlobUploadUnknown, RegistryError, Unavailable
from registryd.storage.interfaces import IFileReader, InvalidOffset, PathNotFound

if TYPE_CHECKING:
    from registryd.registry.core import Registry

WINDOW = 8 * 1024 * 1024
"""How far ahead of its slowest follower a transfer may read from upstream (its memory bound)."""

CHECKPOINT = 8 * 1024 * 1024
"""Bytes written to the upload between closes of its writer; late joiners read closed bytes from storage."""

IDLE_GRACE = 5.0
"""Seconds a fetch whose headers came waits for its first reader (a HEAD never reads) before it is dropped."""


class SharedCalls:
    """One call in flight per key: whoever asks while it runs waits for the same result."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, list[Deferred]] = {}

    def call(self, key: Hashable, start: Callable[[], Deferred]) -> Deferred:
        """@return: Deferred firing with what start's Deferred fires with (start runs once per burst)."""
        result: Deferred = Deferred()
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append(result)
            return result
        self._waiting[key] = [result]

        def deliver(outcome: object) -> None:
            for each in self._waiting.pop(key, []):
                if isinstance(outcome, Failure):
                    each.errback(outcome)
                else:
                    each.callback(outcome)

        Deferred.fromCoroutine(_await(start)).addBoth(deliver)
        return result


async def _await(start: Callable[[], Deferred]) -> object:
    return await start()


def unavailable(reason: str) -> Unavailable:
    """The registry error a client sees when the upstream could not give what the cache lacks."""
    return Unavailable(detail={"reason": reason})


class BlobFetches:
    """The blob transfers in flight, by (repository, digest); a transfer leaves once done."""

    def __init__(
        self,
        core: Registry,
        clock: IReactorTime,
        *,
        window: int = WINDOW,
        checkpoint: int = CHECKPOINT,
        grace: float = IDLE_GRACE,
    ) -> None:
        self.core = core
        self.clock = clock
        self.window = window
        self.checkpoint = checkpoint
        self.grace = grace
        self._fetches: dict[tuple[str, str], BlobFetch] = {}

    def current(self, name: str, digest: str) -> BlobFetch | None:
        """The transfer of digest into repository name still in flight, or None."""
        return self._fetches.get((name, digest))

    async def fetch(
        self, name: str, digest: str, request: Callable[[], Deferred], upstream: str
    ) -> BlobFetch:
        """
        The transfer of digest into name, started with C{request()} (firing with an
        L{IUpstreamBlob}) unless one is in flight. @return: it, once the upstream's headers came.
        L{BlobUnknown} when the upstream has no such blob, L{Unavailable} when it cannot answer.
        """
        key = (name, digest)
        fetch = self._fetches.get(key)
        if fetch is None:
            fetch = self._fetches[key] = BlobFetch(self, name, digest, upstream)
            fetch.begin(request)
        await fetch.whenReady()
        return fetch

    def forget(self, fetch: BlobFetch) -> None:
        """A transfer ended: later requests read storage (or start another)."""
        key = (fetch.name, fetch.digest)
        if self._fetches.get(key) is fetch:
            del self._fetches[key]


class BlobFetch:
    """
    One upstream blob transferred into one repository's upload, and the readers following it.

    @ivar size: the blob's length (the upstream's Content-Length), once the headers came.
    @ivar written: bytes received from upstream so far.
    @ivar durable: bytes of the upload readable from storage (its writer closed after them).
    """

    log = Logger()

    def __init__(self, fetches: BlobFetches, name: str, digest: str, upstream: str) -> None:
        self._fetches = fetches
        self.name = name
        self.digest = digest
        self.upstream = upstream
        self.size = 0
        self.written = 0
        self.durable = 0
        self.committed = False
        self.failure: RegistryError | None = None
        self.uploadPath: str | None = None
        self._ready: list[Deferred] | None = []
        self._readyResult: object = None
        self._response: Any = None
        self._chunks: deque[bytes] = deque()
        self._bufferStart = 0
        self._eof = False
        self._readers: set[FetchReader] = set()
        self._changes: list[Deferred] = []
        self._running = False
        self._idle: Any = None

    # Start-up: headers first, the body only once somebody reads.

    def begin(self, request: Callable[[], Deferred]) -> None:
        """Ask upstream for the blob; the body is not read until the first reader comes."""
        Deferred.fromCoroutine(self._begin(request))

    async def _begin(self, request: Callable[[], Deferred]) -> None:
        try:
            response = await request()
            if response.size is None:
                response.cancel()
                raise UpstreamUnavailable("the upstream sent no Content-Length for the blob")
        except BlobUnknown as e:
            self._fetches.forget(self)
            self._settle(Failure(e))
            return
        except Exception as e:
            self._fetches.forget(self)
            metrics.PROXY_UPSTREAM_ERRORS.labels(self.upstream).inc()
            self.log.warn(
                "upstream {upstream}: cannot fetch {name}@{digest}: {error}",
                upstream=self.upstream,
                name=self.name,
                digest=self.digest,
                error=e,
            )
            self._settle(Failure(unavailable(f"upstream {self.upstream}: {e}")))
            return
        self._response = response
        self.size = int(response.size)
        self._idle = self._fetches.clock.callLater(self._fetches.grace, self._dropIfIdle)
        self._settle(self)

    def _settle(self, result: object) -> None:
        waiting, self._ready, self._readyResult = self._ready, None, result
        for d in waiting or ():
            self._deliver(d)

    def _deliver(self, d: Deferred) -> None:
        if isinstance(self._readyResult, Failure):
            d.errback(self._readyResult)
        else:
            d.callback(self._readyResult)

    def whenReady(self) -> Deferred:
        """@return: Deferred firing with this transfer once its headers came (or failing)."""
        d: Deferred = Deferred()
        if self._ready is None:
            self._deliver(d)
        else:
            self._ready.append(d)
        return d

    def _dropIfIdle(self) -> None:
        self._idle = None
        if not self._running:
            self._response.cancel()
            self._fetches.forget(self)
            self.log.debug(
                "dropped the unread upstream answer for {name}@{digest}", name=self.name, digest=self.digest
            )

    def reader(self, offset: int = 0) -> FetchReader:
        """A reader of the blob from offset, following the transfer (which starts now if it waits)."""
        if self._ready is not None or isinstance(self._readyResult, Failure):
            raise RuntimeError("reader() before the transfer's headers came")
        reader = FetchReader(self, offset)
        self._readers.add(reader)
        if not self._running and self._response is not None:
            if self._idle is not None and self._idle.active():
                self._idle.cancel()
            self._idle = None
            self._running = True
            Deferred.fromCoroutine(self._run())
        return reader

    # The transfer.

    async def _run(self) -> None:
        core = self._fetches.core
        blobs = core.repository(self.name).blobs
        try:
            if await storedSize(core, self.digest) == self.size:
                # Another repository fetched these bytes already: link them, take nothing upstream.
                self._response.cancel()
                await blobs.mount(self.digest, None)
            else:
                await self._transfer(blobs)
        except Exception as e:
            self._fetches.forget(self)
            self._fail(e)
            return
        self.committed = True
        self.durable = self.size
        self._fetches.forget(self)
        self._trim()
        self._changed()

    async def _transfer(self, blobs: Any) -> None:
        upload = await blobs.createUpload()
        self.uploadPath = layout.uploadDataPath(self.name, upload.uuid)
        try:
            while not self._eof:
                await upload.write(_Segment(self, self._fetches.checkpoint))
                self.durable = upload.size
                self._trim()
                self._changed()
            if self.written != self.size:
                raise UpstreamUnavailable(f"the upstream sent {self.written} of {self.size} bytes")
            await upload.commit(self.digest, self.size)
        except BaseException:
            self._response.cancel()
            try:
                await upload.cancel()
            except BlobUploadUnknown:
                pass  # a commit that found the digest wrong removed it already
            except Exception:
                self.log.failure("discarding the upload of a failed fetch of {digest}", digest=self.digest)
            raise
        self.log.info(
            "cached {name}@{digest} ({size} bytes) from {upstream}",
            name=self.name,
            digest=self.digest,
            size=self.size,
            upstream=self.upstream,
        )

    def _fail(self, error: Exception) -> None:
        if isinstance(error, RegistryError) and not isinstance(error, BlobUnknown):
            reason = f"{error.code}: {error.detail}"
        else:
            reason = str(error) or type(error).__name__
        if isinstance(error, UpstreamUnavailable):
            metrics.PROXY_UPSTREAM_ERRORS.labels(self.upstream).inc()
        self.log.warn(
            "fetching {name}@{digest} from {upstream} failed, nothing cached: {reason}",
            name=self.name,
            digest=self.digest,
            upstream=self.upstream,
            reason=reason,
        )
        self.failure = unavailable(f"fetching the blob from upstream failed: {reason}")
        self._chunks.clear()
        self._changed()

    async def nextUpstreamChunk(self) -> bytes:
        """The upstream's next bytes, once every follower is within the window; b"" at the end."""
        while self._behind() >= self._fetches.window:
            await self.change()
        chunk = bytes(await self._response.read())
        if not chunk:
            self._eof = True
            return b""
        if self.written + len(chunk) > self.size:
            raise UpstreamUnavailable(f"the upstream sent more than its Content-Length {self.size}")
        self._chunks.append(chunk)
        self.written += len(chunk)
        metrics.PROXY_UPSTREAM_BYTES.labels(self.upstream).inc(len(chunk))
        self._changed()
        return chunk

    # What readers share: the buffer, and news of any change.

    def _following(self) -> list[int]:
        """The positions of the readers reading from memory (the others read storage)."""
        return [reader.pos for reader in self._readers if reader.pos >= self._bufferStart]

    def _behind(self) -> int:
        positions = self._following()
        return self.written - min(positions) if positions else 0

    def _trim(self) -> None:
        """Drop buffered bytes that storage holds and no follower still needs."""
        keep = min([self.durable, *self._following()])
        while self._chunks and self._bufferStart + len(self._chunks[0]) <= keep:
            self._bufferStart += len(self._chunks.popleft())

    def buffered(self, position: int) -> bytes | None:
        """Buffered bytes from position (to the end of their chunk), or None when not in memory."""
        if position < self._bufferStart or position >= self.written:
            return None
        start = self._bufferStart
        for chunk in self._chunks:
            if position < start + len(chunk):
                return chunk[position - start :]
            start += len(chunk)
        return None

    def inMemory(self, position: int) -> bool:
        """True when position is at or past the buffer's start (read from memory, or wait for it)."""
        return position >= self._bufferStart

    def change(self) -> Deferred:
        """@return: Deferred firing None at the next change (bytes, progress, the end)."""
        d: Deferred = Deferred()
        self._changes.append(d)
        return d

    def _changed(self) -> None:
        waiting, self._changes = self._changes, []
        for d in waiting:
            d.callback(None)

    def moved(self, reader: FetchReader | None = None) -> None:
        """A reader advanced or left: trim the buffer, and let a paused transfer go on."""
        if reader is not None:
            self._readers.discard(reader)
        self._trim()
        self._changed()


class _Segment:
    """The upstream body up to C{limit} bytes, as the body stream an upload writes (L{IBodyStream})."""

    def __init__(self, fetch: BlobFetch, limit: int) -> None:
        self._fetch = fetch
        self._limit = limit
        self._count = 0

    def read(self) -> Deferred:
        return Deferred.fromCoroutine(self._read())

    async def _read(self) -> bytes:
        if self._count >= self._limit or self._fetch._eof:
            return b""
        chunk = await self._fetch.nextUpstreamChunk()
        self._count += len(chunk)
        return chunk


@implementer(IFileReader)
class FetchReader:
    """
    A client's view of a blob being fetched, from an offset: storage for what the upload
    already holds behind the buffer, then memory. The last bytes are held back until the
    upload's commit verified the digest, so a client never sees a whole blob that was wrong:
    a failed transfer fails the read, and the API cuts the connection.
    """

    def __init__(self, fetch: BlobFetch, offset: int) -> None:
        self._fetch = fetch
        self.pos = offset
        self._closed = False
        self._stored: Any = None
        self._storedPos = -1
        self._uploadUnreadable = False

    def read(self) -> Deferred:
        return Deferred.fromCoroutine(self._read())

    async def _read(self) -> bytes:
        fetch = self._fetch
        while not self._closed:
            if fetch.failure is not None:
                raise fetch.failure
            if self.pos >= fetch.size:
                return b""
            chunk = fetch.buffered(self.pos)
            if chunk is None and (fetch.committed or not fetch.inMemory(self.pos)):
                chunk = await self._readStored()
            if chunk and (fetch.committed or self.pos + len(chunk) < fetch.size):
                self.pos += len(chunk)
                fetch.moved()
                return chunk
            await fetch.change()
        return b""

    async def _readStored(self) -> bytes | None:
        """Bytes from storage at pos (the upload, or the committed blob), or None to wait for a change."""
        fetch = self._fetch
        committed = fetch.committed
        if not committed and (self._uploadUnreadable or fetch.uploadPath is None):
            return None
        if self._stored is None or self._storedPos != self.pos:
            await self._closeStored()
            driver = fetch._fetches.core.driver
            path = layout.blobDataPath(fetch.digest) if committed else fetch.uploadPath
            try:
                self._stored = await driver.reader(path, self.pos)
            except (PathNotFound, InvalidOffset):
                if committed:
                    raise BlobUnknown(detail={"digest": fetch.digest}) from None
                # An object store shows an upload only once committed: wait for that.
                self._uploadUnreadable = True
                return None
            self._storedPos = self.pos
        chunk = bytes(await self._stored.read())
        limit = fetch.size if fetch.committed else fetch.durable
        chunk = chunk[: max(limit - self.pos, 0)]
        if not chunk:
            await self._closeStored()
            if not fetch.committed and self.pos < fetch.durable:
                self._uploadUnreadable = True
            return None
        self._storedPos += len(chunk)
        return chunk

    async def _closeStored(self) -> None:
        stored, self._stored = self._stored, None
        if stored is not None:
            await stored.close()

    def close(self) -> Deferred:
        """Stop following: the transfer goes on (for the cache) without waiting for this reader."""
        self._closed = True
        self._fetch.moved(self)
        return Deferred.fromCoroutine(self._closeStored())

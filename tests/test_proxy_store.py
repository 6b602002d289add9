"""
The pull-through cache (registryd.proxy.store and .fetches) against an in-test upstream:
tags fresh for the ttl then re-validated (fake clock), cached copies served while the
upstream is down, one shared transfer per blob with bounded memory, nothing visible after
a broken transfer, and pushes refused outside proxy.localrepositories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from registryd import metrics
from registryd.proxy.fetches import BlobFetches
from registryd.proxy.interfaces import IUpstream, IUpstreamBlob, UpstreamUnavailable
from registryd.proxy.store import ProxyRegistry, Route, validationPath
from registryd.registry import layout, uploads
from registryd.registry.core import Registry
from registryd.registry.errors import BlobUnknown, ManifestUnknown, Unavailable, Unsupported
from registryd.registry.interfaces import IBlobs, IManifests, IRegistry, IRepository
from registryd.registry.names import isDigest
from registryd.storage.filesystem import createDriver
from registryd.storage.inmemory import InMemoryDriver
from registryd.testing.driversuite import readToEnd
from tests.test_registry_helpers import OCI_MANIFEST, dumps, imageManifest, pushBlob, sha256

TTL = 3600.0
CHUNK = 16 * 1024


@dataclass
class _Manifest:
    digest: str | None
    mediaType: str
    size: int
    content: bytes | None


@implementer(IUpstreamBlob)
class FakeBlob:
    """An upstream blob body given a chunk per read: at once, or (held) when the test releases it."""

    def __init__(self, digest: str, data: bytes, held: bool, breakAt: int | None) -> None:
        self.digest = digest
        self.size = len(data)
        self.mediaType = None
        self.data = data
        self.position = 0
        self.held = held
        self.breakAt = breakAt
        self.reads = 0
        self.cancelled = False
        self.waiting: list[Deferred] = []

    def _next(self) -> bytes:
        if self.cancelled:
            raise UpstreamUnavailable("cancelled")
        if self.breakAt is not None and self.position >= self.breakAt:
            raise UpstreamUnavailable("connection reset")
        chunk = self.data[self.position : self.position + CHUNK]
        self.position += len(chunk)
        return chunk

    def read(self) -> Deferred:
        self.reads += 1
        if self.held:
            d: Deferred = Deferred()
            self.waiting.append(d)
            return d
        try:
            return succeed(self._next())
        except UpstreamUnavailable as e:
            return fail(e)

    def release(self) -> bool:
        """Answer the read waiting, if any. @return: whether one was waiting."""
        if not self.waiting:
            return False
        d = self.waiting.pop(0)
        try:
            d.callback(self._next())
        except UpstreamUnavailable as e:
            d.errback(e)
        return True

    def cancel(self) -> None:
        self.cancelled = True


@implementer(IUpstream)
class FakeUpstream:
    """An upstream registry in memory that records what it was asked."""

    url = "https://upstream.example"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.tags: dict[tuple[str, str], str] = {}
        self.manifests: dict[str, bytes] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.responses: list[FakeBlob] = []
        self.down = False
        self.held = False
        self.breakAt: int | None = None
        self.corrupt = False

    def addBlob(self, data: bytes) -> str:
        digest = sha256(data)
        self.blobs[digest] = data
        return digest

    def addImage(self, name: str, tag: str, seed: bytes = b"") -> tuple[str, bytes, list[bytes]]:
        """An image (config, two layers) upstream, its manifest tagged. @return: digest, bytes, blobs."""
        config = b'{"architecture":"amd64","os":"linux","seed":"' + seed + b'"}'
        layers = [b"layer one " + seed, b"layer two " + seed * 1000]
        for blob in (config, *layers):
            self.addBlob(blob)
        content = dumps(imageManifest(config, layers))
        digest = sha256(content)
        self.manifests[digest] = content
        self.tags[(name, tag)] = digest
        return digest, content, [config, *layers]

    def manifest(self, name: str, reference: str, method: str = "GET", accept: object = None) -> Deferred:
        self.calls.append((method, "manifest", name, reference))
        if self.down:
            return fail(UpstreamUnavailable("connection refused"))
        digest = reference if isDigest(reference) else self.tags.get((name, reference))
        if digest not in self.manifests:
            return fail(ManifestUnknown(detail={"reference": reference}))
        content = self.manifests[digest]
        return succeed(_Manifest(digest, OCI_MANIFEST, len(content), content if method == "GET" else None))

    def blob(self, name: str, digest: str) -> Deferred:
        self.calls.append(("GET", "blob", name, digest))
        if self.down:
            return fail(UpstreamUnavailable("connection refused"))
        if digest not in self.blobs:
            return fail(BlobUnknown(detail={"digest": digest}))
        data = self.blobs[digest]
        if self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 1])
        response = FakeBlob(digest, data, self.held, self.breakAt)
        self.responses.append(response)
        return succeed(response)

    def close(self) -> Deferred:
        return succeed(None)

    def asked(self, method: str, kind: str) -> list[tuple[str, str, str, str]]:
        return [call for call in self.calls if call[:2] == (method, kind)]


def counter(family: object, *labels: str) -> float:
    return family.labels(*labels)._value.get()


class ProxyTestCase(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.driver = InMemoryDriver()
        self.upstream = FakeUpstream()
        self.proxy = self.makeProxy()
        self.addCleanup(uploads._states.clear)

    def makeProxy(self, ttl: float = TTL, driver: object = None, **fetchOptions: object) -> ProxyRegistry:
        core = Registry(driver or self.driver)
        fetches = BlobFetches(core, self.clock, **fetchOptions)
        return ProxyRegistry(
            core,
            [Route(self.upstream, "", ttl)],
            self.clock,
            localRepositories=["local/*"],
            fetches=fetches,
        )


class InterfaceTests(ProxyTestCase):
    def test_provides_the_core_interfaces(self) -> None:
        verifyObject(IRegistry, self.proxy)
        repository = self.proxy.repository("library/alpine")
        verifyObject(IRepository, repository)
        verifyObject(IBlobs, repository.blobs)
        verifyObject(IManifests, repository.manifests)


class ManifestTests(ProxyTestCase):
    async def test_tag_miss_fetches_stores_and_tags(self) -> None:
        digest, content, _ = self.upstream.addImage("library/alpine", "3")
        manifests = self.proxy.repository("library/alpine").manifests
        misses = counter(metrics.PROXY_REQUESTS, "manifest", "miss")
        manifest = await manifests.get("3")
        self.assertEqual((manifest.digest, manifest.content), (digest, content))
        self.assertEqual(counter(metrics.PROXY_REQUESTS, "manifest", "miss"), misses + 1)
        # Stored as a push would: tag, revision, blob; listed as a cached tag.
        core = self.proxy.core.repository("library/alpine")
        self.assertEqual((await core.manifests.get("3")).digest, digest)
        self.assertEqual(await self.proxy.repository("library/alpine").tags(), (["3"], False))
        self.assertEqual(await self.proxy.catalog(), (["library/alpine"], False))
        # Served from storage from now on, by tag and by digest.
        await manifests.get("3")
        await manifests.stat(digest)
        self.assertEqual(len(self.upstream.asked("GET", "manifest")), 1)

    async def test_unknown_upstream_is_manifest_unknown(self) -> None:
        manifests = self.proxy.repository("library/alpine").manifests
        await self.assertFailure(manifests.get("nope"), ManifestUnknown)

    async def test_uncached_and_upstream_down_is_unavailable(self) -> None:
        self.upstream.addImage("library/alpine", "3")
        self.upstream.down = True
        await self.assertFailure(self.proxy.repository("library/alpine").manifests.get("3"), Unavailable)

    async def test_fresh_tag_is_not_asked_upstream(self) -> None:
        self.upstream.addImage("library/alpine", "3")
        manifests = self.proxy.repository("library/alpine").manifests
        await manifests.get("3")
        self.clock.advance(TTL - 1)
        await manifests.get("3")
        self.assertEqual(len(self.upstream.calls), 1)

    async def test_expired_tag_unchanged_is_revalidated_with_head(self) -> None:
        digest, _, _ = self.upstream.addImage("library/alpine", "3")
        manifests = self.proxy.repository("library/alpine").manifests
        await manifests.get("3")
        self.clock.advance(TTL + 1)
        self.assertEqual((await manifests.get("3")).digest, digest)
        self.assertEqual(len(self.upstream.asked("HEAD", "manifest")), 1)
        self.assertEqual(len(self.upstream.asked("GET", "manifest")), 1)
        # The validation was recorded in storage: fresh again for another ttl.
        self.clock.advance(TTL - 1)
        await manifests.get("3")
        self.assertEqual(len(self.upstream.asked("HEAD", "manifest")), 1)

    async def test_expired_tag_changed_upstream_is_fetched_and_retagged(self) -> None:
        self.upstream.addImage("library/alpine", "3", seed=b"old")
        manifests = self.proxy.repository("library/alpine").manifests
        await manifests.get("3")
        newDigest, newContent, _ = self.upstream.addImage("library/alpine", "3", seed=b"new")
        self.clock.advance(TTL + 1)
        manifest = await manifests.get("3")
        self.assertEqual((manifest.digest, manifest.content), (newDigest, newContent))
        core = self.proxy.core.repository("library/alpine")
        self.assertEqual((await core.manifests.get("3")).digest, newDigest)

    async def test_expired_tag_with_upstream_down_serves_cached(self) -> None:
        digest, _, _ = self.upstream.addImage("library/alpine", "3")
        manifests = self.proxy.repository("library/alpine").manifests
        await manifests.get("3")
        self.upstream.down = True
        self.clock.advance(TTL + 1)
        stale = counter(metrics.PROXY_REQUESTS, "manifest", "stale")
        errors = counter(metrics.PROXY_UPSTREAM_ERRORS, FakeUpstream.url)
        self.assertEqual((await manifests.get("3")).digest, digest)
        self.assertEqual(counter(metrics.PROXY_REQUESTS, "manifest", "stale"), stale + 1)
        self.assertEqual(counter(metrics.PROXY_UPSTREAM_ERRORS, FakeUpstream.url), errors + 1)
        self.flushLoggedErrors()

    async def test_ttl_zero_never_revalidates(self) -> None:
        proxy = self.makeProxy(ttl=0)
        self.upstream.addImage("library/alpine", "3")
        await proxy.repository("library/alpine").manifests.get("3")
        self.clock.advance(10 * 365 * 86400)
        await proxy.repository("library/alpine").manifests.get("3")
        self.assertEqual(len(self.upstream.calls), 1)

    async def test_by_digest_is_cached_forever(self) -> None:
        digest, content, _ = self.upstream.addImage("library/alpine", "3")
        manifests = self.proxy.repository("library/alpine").manifests
        self.assertEqual((await manifests.get(digest)).content, content)
        self.upstream.down = True
        self.clock.advance(100 * TTL)
        self.assertEqual((await manifests.stat(digest)).digest, digest)
        self.assertEqual(len(self.upstream.calls), 1)

    async def test_validation_record_is_in_storage_for_other_replicas(self) -> None:
        digest, _, _ = self.upstream.addImage("library/alpine", "3")
        await self.proxy.repository("library/alpine").manifests.get("3")
        record = json.loads(await self.driver.getContent(validationPath("library/alpine", "3")))
        self.assertEqual(record["digest"], digest)
        replica = self.makeProxy()
        await replica.repository("library/alpine").manifests.get("3")
        self.assertEqual(len(self.upstream.calls), 1)

    async def test_upstream_with_wrong_content_for_a_digest_is_refused(self) -> None:
        digest, _, _ = self.upstream.addImage("library/alpine", "3")
        self.upstream.manifests[digest] = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "x": 1})
        await self.assertFailure(self.proxy.repository("library/alpine").manifests.get(digest), Unavailable)
        await self.assertFailure(
            self.proxy.core.repository("library/alpine").manifests.get(digest), ManifestUnknown
        )

    async def test_concurrent_misses_share_one_upstream_get(self) -> None:
        self.upstream.addImage("library/alpine", "3")
        manifests = self.proxy.repository("library/alpine").manifests
        first, second = manifests.get("3"), manifests.get("3")
        self.assertEqual((await first).digest, (await second).digest)
        self.assertEqual(len(self.upstream.asked("GET", "manifest")), 1)


class RoutingTests(ProxyTestCase):
    async def test_longest_prefix_chooses_the_upstream_and_is_stripped(self) -> None:
        hub, library = FakeUpstream(), FakeUpstream()
        hub.addImage("grafana/grafana", "1")
        library.addImage("alpine", "3")
        core = Registry(self.driver)
        proxy = ProxyRegistry(
            core, [Route(hub, "docker.io/"), Route(library, "docker.io/library/")], self.clock
        )
        await proxy.repository("docker.io/grafana/grafana").manifests.get("1")
        await proxy.repository("docker.io/library/alpine").manifests.get("3")
        self.assertEqual(hub.calls, [("GET", "manifest", "grafana/grafana", "1")])
        self.assertEqual(library.calls, [("GET", "manifest", "alpine", "3")])
        # No upstream for this name: only what storage holds.
        await self.assertFailure(proxy.repository("quay.io/a/b").manifests.get("1"), ManifestUnknown)
        await self.assertFailure(proxy.repository("quay.io/a/b").blobs.stat(sha256(b"x")), BlobUnknown)

    def test_containerd_namespace_chooses_the_upstream_of_that_host(self) -> None:
        proxy = ProxyRegistry(
            Registry(self.driver),
            [Route(FakeUpstream(), "docker.io/"), Route(FakeUpstream(), "quay.io/")],
            self.clock,
        )
        self.assertEqual(proxy.namespaced("library/alpine", "docker.io"), "docker.io/library/alpine")
        self.assertEqual(proxy.namespaced("org/app", "quay.io"), "quay.io/org/app")
        # Already under the prefix, or no upstream for that host: the name as asked.
        self.assertEqual(
            proxy.namespaced("docker.io/library/alpine", "docker.io"), "docker.io/library/alpine"
        )
        self.assertEqual(proxy.namespaced("org/app", "ghcr.io"), "org/app")
        self.assertEqual(Registry(self.driver).namespaced("org/app", "docker.io"), "org/app")


class PushTests(ProxyTestCase):
    async def test_pushes_and_deletes_are_unsupported(self) -> None:
        repository = self.proxy.repository("library/alpine")
        digest = sha256(b"x")
        for attempt in (
            repository.blobs.createUpload,
            lambda: repository.blobs.resumeUpload("0" * 8 + "-0000-0000-0000-" + "0" * 12),
            lambda: repository.blobs.mount(digest, None),
            lambda: repository.blobs.delete(digest),
            lambda: repository.manifests.put("1", OCI_MANIFEST, b"{}"),
            lambda: repository.manifests.delete("1"),
        ):
            self.assertRaises(Unsupported, attempt)

    async def test_local_repositories_take_pushes(self) -> None:
        repository = self.proxy.repository("local/app")
        await pushBlob(repository, b"mine")
        self.assertEqual((await repository.blobs.stat(sha256(b"mine"))).size, 4)
        self.assertEqual(self.upstream.calls, [])


class BlobTests(ProxyTestCase):
    async def test_miss_streams_and_caches(self) -> None:
        data = bytes(range(256)) * 300
        digest = self.upstream.addBlob(data)
        blobs = self.proxy.repository("library/alpine").blobs
        received = counter(metrics.PROXY_UPSTREAM_BYTES, FakeUpstream.url)
        self.assertEqual((await blobs.stat(digest)).size, len(data))
        self.assertIsNone(await blobs.redirectURL("GET", digest))
        descriptor, reader = await blobs.open(digest)
        self.assertEqual(await readToEnd(reader), data)
        self.assertEqual(counter(metrics.PROXY_UPSTREAM_BYTES, FakeUpstream.url), received + len(data))
        # Cached: linked into the repository, no upload left, and a hit from now on.
        self.assertEqual(
            (await self.proxy.core.repository("library/alpine").blobs.stat(digest)).size, len(data)
        )
        self.assertEqual(await layout.listNames(self.driver, layout.uploadsPath("library/alpine")), [])
        self.upstream.down = True
        _, reader = await blobs.open(digest, 10)
        self.assertEqual(await readToEnd(reader), data[10:])
        self.assertEqual(len(self.upstream.asked("GET", "blob")), 1)

    async def test_blob_another_repository_fetched_is_linked_not_transferred(self) -> None:
        data = b"shared base layer" * 100
        digest = self.upstream.addBlob(data)
        _, reader = await self.proxy.repository("library/alpine").blobs.open(digest)
        await readToEnd(reader)
        _, reader = await self.proxy.repository("library/debian").blobs.open(digest)
        self.assertEqual(await readToEnd(reader), data)
        self.assertEqual(self.upstream.responses[1].reads, 0)
        self.assertEqual(
            (await self.proxy.core.repository("library/debian").blobs.stat(digest)).size, len(data)
        )

    async def test_head_reads_no_body_and_lets_go(self) -> None:
        digest = self.upstream.addBlob(b"x" * 100_000)
        blobs = self.proxy.repository("library/alpine").blobs
        self.assertEqual((await blobs.stat(digest)).size, 100_000)
        (response,) = self.upstream.responses
        self.assertEqual(response.reads, 0)
        self.clock.advance(60)
        self.assertTrue(response.cancelled)
        self.assertIsNone(self.proxy.fetches.current("library/alpine", digest))
        await self.assertFailure(self.proxy.core.repository("library/alpine").blobs.stat(digest), BlobUnknown)

    async def test_stat_then_open_is_one_upstream_get(self) -> None:
        data = b"y" * 50_000
        digest = self.upstream.addBlob(data)
        blobs = self.proxy.repository("library/alpine").blobs
        descriptor = await blobs.stat(digest)
        _, reader = await blobs.open(digest, 0, descriptor)
        self.assertEqual(await readToEnd(reader), data)
        self.assertEqual(len(self.upstream.asked("GET", "blob")), 1)

    async def test_unknown_upstream_blob(self) -> None:
        blobs = self.proxy.repository("library/alpine").blobs
        await self.assertFailure(blobs.stat(sha256(b"nothing")), BlobUnknown)

    async def test_concurrent_readers_share_one_transfer(self) -> None:
        self.upstream.held = True
        data = bytes(range(251)) * 1000
        digest = self.upstream.addBlob(data)
        blobs = self.proxy.repository("library/alpine").blobs
        opened = [blobs.open(digest) for _ in range(4)]
        readers = [(await each)[1] for each in opened]
        results = [Deferred.fromCoroutine(readToEnd(reader)) for reader in readers]
        (response,) = self.upstream.responses
        while response.release():
            pass
        self.assertEqual([await result for result in results], [data] * 4)
        self.assertEqual(len(self.upstream.asked("GET", "blob")), 1)

    async def test_slowest_reader_holds_the_upstream_back(self) -> None:
        proxy = self.makeProxy(window=4 * CHUNK, checkpoint=2 * CHUNK)
        self.upstream.held = True
        data = b"z" * (40 * CHUNK)
        digest = self.upstream.addBlob(data)
        blobs = proxy.repository("library/alpine").blobs
        _, fast = await blobs.open(digest)
        _, slow = await blobs.open(digest)
        fastDone = Deferred.fromCoroutine(readToEnd(fast))
        (response,) = self.upstream.responses
        while response.release():
            pass
        # The upstream is read no further than the window ahead of the reader that reads nothing.
        self.assertLessEqual(response.position, 4 * CHUNK + CHUNK)
        self.assertFalse(fastDone.called)
        self.assertLessEqual(
            sum(len(c) for c in proxy.fetches.current("library/alpine", digest)._chunks), 6 * CHUNK
        )
        slowDone = Deferred.fromCoroutine(readToEnd(slow))
        while response.release():
            pass
        self.assertEqual((await fastDone, await slowDone), (data, data))

    async def test_late_joiner_reads_stored_bytes_then_follows(self) -> None:
        root = self.mktemp()
        driver = createDriver(reactor, {"rootdirectory": root})
        self.addCleanup(driver.stop)
        proxy = self.makeProxy(driver=driver, window=4 * CHUNK, checkpoint=2 * CHUNK)
        self.upstream.held = True
        data = bytes(range(256)) * (20 * CHUNK // 256)
        digest = self.upstream.addBlob(data)
        blobs = proxy.repository("library/alpine").blobs
        _, first = await blobs.open(digest)
        firstDone = Deferred.fromCoroutine(readToEnd(first))
        (response,) = self.upstream.responses
        fetch = proxy.fetches.current("library/alpine", digest)
        while fetch.durable < 10 * CHUNK:
            if not response.release():
                await deferLaterZero()
        self.assertGreater(fetch._bufferStart, 0)
        _, late = await blobs.open(digest)
        lateDone = Deferred.fromCoroutine(readToEnd(late))
        while not (firstDone.called and lateDone.called):
            if not response.release():
                await deferLaterZero()
        self.assertEqual((await firstDone, await lateDone), (data, data))
        self.assertEqual(len(self.upstream.asked("GET", "blob")), 1)

    async def test_late_joiner_on_a_store_without_readable_uploads_waits_for_the_commit(self) -> None:
        proxy = self.makeProxy(window=4 * CHUNK, checkpoint=2 * CHUNK)
        self.upstream.held = True
        data = b"q" * (12 * CHUNK)
        digest = self.upstream.addBlob(data)
        blobs = proxy.repository("library/alpine").blobs
        _, first = await blobs.open(digest)
        firstDone = Deferred.fromCoroutine(readToEnd(first))
        (response,) = self.upstream.responses
        for _ in range(8):
            response.release()
        _, late = await blobs.open(digest)
        lateDone = Deferred.fromCoroutine(readToEnd(late))
        while response.release():
            pass
        self.assertEqual((await firstDone, await lateDone), (data, data))

    async def test_interrupted_transfer_leaves_nothing_visible(self) -> None:
        self.upstream.breakAt = 3 * CHUNK
        data = b"w" * (10 * CHUNK)
        digest = self.upstream.addBlob(data)
        blobs = self.proxy.repository("library/alpine").blobs
        errors = counter(metrics.PROXY_UPSTREAM_ERRORS, FakeUpstream.url)
        _, reader = await blobs.open(digest)
        await self.assertFailure(Deferred.fromCoroutine(readToEnd(reader)), Unavailable)
        self.assertEqual(counter(metrics.PROXY_UPSTREAM_ERRORS, FakeUpstream.url), errors + 1)
        await self.assertFailure(self.proxy.core.repository("library/alpine").blobs.stat(digest), BlobUnknown)
        self.assertFalse(await layout.exists(self.driver, layout.blobDataPath(digest)))
        self.assertEqual(await layout.listNames(self.driver, layout.uploadsPath("library/alpine")), [])
        # The next request tries again.
        self.upstream.breakAt = None
        _, reader = await blobs.open(digest)
        self.assertEqual(await readToEnd(reader), data)

    async def test_wrong_bytes_upstream_never_reach_the_end_of_a_response(self) -> None:
        self.upstream.corrupt = True
        data = b"v" * (3 * CHUNK)
        digest = self.upstream.addBlob(data)
        _, reader = await self.proxy.repository("library/alpine").blobs.open(digest)
        delivered = 0
        try:
            while chunk := await reader.read():
                delivered += len(chunk)
        except Unavailable:
            pass
        else:
            self.fail("the read did not fail")
        self.assertLess(delivered, len(data))
        self.assertFalse(await layout.exists(self.driver, layout.blobDataPath(digest)))


def deferLaterZero() -> Deferred:
    """Let the reactor run once (the filesystem driver's threads report back through it)."""
    d: Deferred = Deferred()
    reactor.callLater(0.001, d.callback, None)
    return d

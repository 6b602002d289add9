"""
Pushing while garbage collection runs: every push that succeeded can be pulled afterwards.

The race is made real and repeatable by a storage driver that holds every operation back
and carries them out one at a time in an order a seeded random generator picks, so pushes
and collections interleave at every storage step. Collections run with everything older
than the grace period, so only the quarantine / re-check protocol keeps pushes safe; with
either half of the protocol switched off the same schedules break images (shown below).
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from registryd.gc import GarbageCollector
from registryd.registry import uploads
from registryd.registry.core import Registry
from registryd.registry.errors import RegistryError
from registryd.registry.manifests import Manifests
from registryd.storage.inmemory import InMemoryDriver
from registryd.storage.interfaces import SKIP_DIR, PathNotFound
from tests.test_gc import laterClock
from tests.test_registry_helpers import OCI_INDEX, OCI_MANIFEST, dumps, imageManifest, pushBlob, sha256


class ShufflingDriver:
    """An in-memory driver whose operations take effect one at a time, in a seeded random order."""

    name = "shuffling"

    def __init__(self, seed: int, lazyWrites: bool = False) -> None:
        self.inner = InMemoryDriver()
        self._random = random.Random(seed)
        self._queue: list[tuple[Any, tuple, Deferred]] = []
        # Small writes (links) mostly wait until nothing else can go: long gaps between a
        # push's check and its writes, the other kind of schedule a busy server makes.
        self._lazyWrites = lazyWrites

    def _later(self, method: Any, *args: Any) -> Deferred:
        d: Deferred = Deferred()
        self._queue.append((method, args, d))
        return d

    def step(self) -> bool:
        """Carry out one waiting operation (chosen at random); False when none waits."""
        if not self._queue:
            return False
        choices = range(len(self._queue))
        if self._lazyWrites and self._random.random() < 0.95:
            others = [i for i in choices if self._queue[i][0] != self.inner.putContent]
            choices = others or choices
        method, args, d = self._queue.pop(self._random.choice(choices))
        method(*args).chainDeferred(d)
        return True

    def getContent(self, path: str) -> Deferred:
        return self._later(self.inner.getContent, path)

    def putContent(self, path: str, data: bytes) -> Deferred:
        return self._later(self.inner.putContent, path, data)

    def reader(self, path: str, offset: int = 0) -> Deferred:
        return self._later(self.inner.reader, path, offset)

    def writer(self, path: str, append: bool = False) -> Deferred:
        return self._later(self.inner.writer, path, append)

    def stat(self, path: str) -> Deferred:
        return self._later(self.inner.stat, path)

    def list(self, path: str) -> Deferred:
        return self._later(self.inner.list, path)

    def move(self, source: str, dest: str) -> Deferred:
        return self._later(self.inner.move, source, dest)

    def delete(self, path: str) -> Deferred:
        return self._later(self.inner.delete, path)

    def redirectURL(self, method: str, path: str) -> Deferred:
        return self.inner.redirectURL(method, path)

    def walk(self, path: str, visit: Any) -> Deferred:
        """A walk made of separate list and stat steps, so others act between them."""

        async def below(directory: str) -> None:
            try:
                children = await self.list(directory)
            except PathNotFound:
                return
            for child in children:
                try:
                    info = await self.stat(child)
                except PathNotFound:
                    continue
                result = visit(info)
                if isinstance(result, Deferred):
                    result = await result
                if info.isDir and result is not SKIP_DIR:
                    await below(child)

        async def walk() -> None:
            await self.stat(path)
            await below(path)

        return Deferred.fromCoroutine(walk())


class Pusher:
    """Pushes images like a client: skip blobs the repository has, upload the rest, then the manifest."""

    def __init__(self, registry: Registry, number: int, shared: list[bytes], rng: random.Random) -> None:
        self.registry = registry
        self.number = number
        self.shared = shared
        self.random = rng
        self.pushed: list[tuple[str, str, str]] = []  # (repository, tag, digest)
        self.refused: list[str] = []

    async def blobs(self, repository: Any, blobs: list[bytes]) -> None:
        for data in blobs:
            try:
                await repository.blobs.stat(sha256(data))
            except RegistryError:
                await pushBlob(repository, data)

    async def image(self, repository: Any, reference: str, name: str) -> tuple[str, int]:
        config = f'{{"pusher": {self.number}, "image": "{name}"}}'.encode()
        layers = [f"fresh layer {self.number} {name}".encode(), self.random.choice(self.shared)]
        await self.blobs(repository, [config, *layers])
        content = dumps(imageManifest(config, layers))
        if reference == "":
            reference = sha256(content)
        manifest, _ = await repository.manifests.put(reference, OCI_MANIFEST, content)
        return manifest.digest, len(content)

    async def run(self, images: int) -> None:
        for i in range(images):
            name = f"pusher{self.number}/repo{self.random.randrange(2)}"
            repository = self.registry.repository(name)
            tag = f"t{i}"
            try:
                if i % 3 == 2:
                    # A two-platform image: children by digest, then the tagged index.
                    children = [await self.image(repository, "", f"{i}-{arch}") for arch in ("amd", "arm")]
                    document = {
                        "schemaVersion": 2,
                        "mediaType": OCI_INDEX,
                        "manifests": [
                            {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
                            for digest, size in children
                        ],
                    }
                    manifest, _ = await repository.manifests.put(tag, OCI_INDEX, dumps(document))
                    digest = manifest.digest
                else:
                    digest, _ = await self.image(repository, tag, str(i))
            except RegistryError as e:
                # Failing cleanly is allowed: the client sees an error and pushes again.
                self.refused.append(e.code)
                continue
            self.pushed.append((name, tag, digest))


async def pullEverything(test: TestCase, driver: Any, pushed: list[tuple[str, str, str]]) -> None:
    """Every pushed manifest, by tag and digest, with every manifest and blob it references."""
    from registryd.gc import references

    registry = Registry(driver)

    async def pull(repository: Any, reference: str) -> None:
        manifest = await repository.manifests.get(reference)
        refs = references(manifest.content)
        for digest in refs.blobs:
            _, reader = await repository.blobs.open(digest)
            data = b""
            while chunk := await reader.read():
                data += chunk
            await reader.close()
            test.assertEqual(sha256(data), digest)
        for child in refs.children:
            await pull(repository, child)

    for name, tag, digest in pushed:
        repository = registry.repository(name)
        test.assertEqual((await repository.manifests.get(tag)).digest, digest)
        await pull(repository, digest)


class PushWhileCollectingTests(TestCase):
    """Pushers and repeated collections, interleaved step by step under many schedules."""

    SEEDS = range(12)

    def setUp(self) -> None:
        self.addCleanup(uploads._states.clear)

    async def seedGarbage(self, registry: Registry, shared: list[bytes]) -> None:
        """Garbage pushes will want again: shared layers whose images were deleted."""
        repository = registry.repository("seed/old")
        for n, layer in enumerate(shared):
            await pushBlob(repository, layer)
            config = f'{{"seed": {n}}}'.encode()
            await pushBlob(repository, config)
            content = dumps(imageManifest(config, [layer]))
            manifest, _ = await repository.manifests.put(f"s{n}", OCI_MANIFEST, content)
            await repository.manifests.delete(manifest.digest)
        for layer in shared:
            await repository.blobs.delete(sha256(layer))

    async def scenario(
        self, driver: ShufflingDriver, seed: int, deleteUntagged: bool, recheck: bool
    ) -> tuple:
        """Three pushers of six images each, and collections one after another until they finish."""
        registry = Registry(driver, deleteEnabled=True)
        rng = random.Random(seed)
        shared = [f"shared layer {n}".encode() for n in range(4)]
        seeding = ensureDeferred(self.seedGarbage(registry, shared))
        while driver.step():
            pass
        await seeding
        pushers = [Pusher(registry, n, shared, random.Random(rng.random())) for n in range(3)]
        # Everything is older than the grace period: only the protocol keeps pushes safe.
        collector = GarbageCollector(
            Registry(driver), deleteUntagged=deleteUntagged, gracePeriod=0, clock=laterClock()
        )
        collector._recheck = recheck
        done: list[bool] = []

        async def collectRepeatedly() -> None:
            while not done:
                await collector.run()

        async def push() -> None:
            await gatherResults([ensureDeferred(p.run(6)) for p in pushers])
            done.append(True)

        work = gatherResults([ensureDeferred(push()), ensureDeferred(collectRepeatedly())])
        while driver.step():
            pass
        await work
        return [i for p in pushers for i in p.pushed], [c for p in pushers for c in p.refused]

    async def checkSeeds(self, deleteUntagged: bool, recheck: bool = True, expectSafe: bool = True) -> int:
        """Run every seed; with expectSafe, assert every push that succeeded pulls. @return: seeds broken."""
        broken = totalPushed = totalRefused = 0
        for seed in self.SEEDS:
            driver = ShufflingDriver(seed, lazyWrites=seed % 2 == 1)
            pushed, refused = await self.scenario(driver, seed, deleteUntagged, recheck)
            totalPushed += len(pushed)
            totalRefused += len(refused)
            if expectSafe:
                self.assertLessEqual(set(refused), {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})
                await pullEverything(self, driver.inner, pushed)
                continue
            try:
                await pullEverything(self, driver.inner, pushed)
            except (RegistryError, self.failureException):
                broken += 1
        if expectSafe:
            # The schedules did race: some pushes lost and failed cleanly, most went through.
            self.assertGreater(totalPushed, totalRefused)
            self.assertGreater(totalRefused, 0)
        return broken

    async def test_every_successful_push_pulls_after_collections(self) -> None:
        await self.checkSeeds(deleteUntagged=False)

    async def test_every_successful_push_pulls_after_collections_deleting_untagged(self) -> None:
        await self.checkSeeds(deleteUntagged=True)

    async def test_without_the_recheck_pushes_lose_blobs(self) -> None:
        """The schedules are real races: without the collector's re-check, some image breaks."""
        self.assertGreater(await self.checkSeeds(False, recheck=False, expectSafe=False), 0)

    async def test_without_the_push_guard_pushes_lose_blobs(self) -> None:
        """Without the manifest push's check after writing its links, some image breaks too."""

        async def noGuard(self: Any, *args: Any) -> None:
            return None

        self.patch(Manifests, "_missingAfterWrite", noGuard)
        self.assertGreater(await self.checkSeeds(False, expectSafe=False), 0)

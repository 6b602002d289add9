"""Garbage collection over a realistic registry built through the core, on both bundled drivers."""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from registryd.gc import GarbageCollector, humanSize, quarantinePath, references
from registryd.gc.collector import QUARANTINE
from registryd.registry import layout, uploads
from registryd.registry.core import Registry
from registryd.registry.errors import BlobUnknown, ManifestBlobUnknown, ManifestUnknown
from registryd.storage.filesystem import FilesystemDriver
from registryd.storage.inmemory import InMemoryDriver
from tests.test_registry_helpers import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    dumps,
    imageManifest,
    pushBlob,
    sha256,
)

HOUR = 3600.0


def laterClock(seconds: float = 2 * HOUR) -> Clock:
    """A clock this far ahead of the wall clock, so that everything stored now is that old."""
    clock = Clock()
    clock.advance(time.time() + seconds)
    return clock


async def pushImage(repository: Any, reference: str, config: bytes, layers: list[bytes], **extra: Any) -> str:
    """Upload a config and layers, put an OCI manifest for them; return the manifest's digest."""
    for blob in [config, *layers]:
        await pushBlob(repository, blob)
    content = dumps(imageManifest(config, layers, **extra))
    if reference.startswith("sha256:"):
        reference = sha256(content)
    manifest, _ = await repository.manifests.put(reference, OCI_MANIFEST, content)
    return manifest.digest


async def pushIndex(repository: Any, reference: str, children: list[str], sizes: dict[str, int]) -> str:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child, "size": sizes[child], "platform": {"os": "linux"}}
            for child in children
        ],
    }
    content = dumps(document)
    if reference.startswith("sha256:"):
        reference = sha256(content)
    manifest, _ = await repository.manifests.put(reference, OCI_INDEX, content)
    return manifest.digest


def blob(name: str) -> bytes:
    return f"content of {name}".encode()


class RealisticRegistry:
    """
    The registry the tests collect:

      library/app    A:v1 [shared, a1], B:v2 [shared, b1], U untagged [u1],
                     S signs A (subject), SU signs U
      library/multi  index I:latest -> C1 [shared, m1], C2 [m2]; untagged index J -> C3 [m3]
      other/tool     T:1.0 [shared]; blob orphan uploaded, never referenced;
                     D:old [d1] deleted through the API (its revision and tag are gone)
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.digests: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    async def build(self) -> None:
        app = self.registry.repository("library/app")
        d = self.digests
        d["A"] = await pushImage(app, "v1", blob("cA"), [blob("shared"), blob("a1")])
        d["B"] = await pushImage(app, "v2", blob("cB"), [blob("shared"), blob("b1")])
        d["U"] = await pushImage(app, "sha256:", blob("cU"), [blob("u1")])
        subjectA = descriptor(OCI_MANIFEST, await self.content("library/app", d["A"]))
        d["S"] = await pushImage(
            app, "sha256:", b"{}", [blob("sig")], subject=subjectA, artifactType="application/signature"
        )
        subjectU = descriptor(OCI_MANIFEST, await self.content("library/app", d["U"]))
        d["SU"] = await pushImage(app, "sha256:", blob("cSU"), [blob("sigU")], subject=subjectU)

        multi = self.registry.repository("library/multi")
        for child, layers in [("C1", ["shared", "m1"]), ("C2", ["m2"]), ("C3", ["m3"])]:
            d[child] = await pushImage(multi, "sha256:", blob("c" + child), [blob(x) for x in layers])
            self.sizes[d[child]] = len(await self.content("library/multi", d[child]))
        d["I"] = await pushIndex(multi, "latest", [d["C1"], d["C2"]], self.sizes)
        d["J"] = await pushIndex(multi, "sha256:", [d["C3"]], self.sizes)

        tool = self.registry.repository("other/tool")
        d["T"] = await pushImage(tool, "1.0", blob("cT"), [blob("shared")])
        await pushBlob(tool, blob("orphan"))
        d["D"] = await pushImage(tool, "old", blob("cD"), [blob("d1")])
        await tool.manifests.delete(d["D"])

    async def content(self, name: str, digest: str) -> bytes:
        return (await self.registry.repository(name).manifests.get(digest)).content

    def blobsOf(self, *names: str) -> set[str]:
        """The digests of the named blobs (see L{blob})."""
        return {sha256(blob(name)) for name in names}


async def storedBlobDigests(driver: Any) -> set[str]:
    found = set()

    def visit(info: Any) -> None:
        parts = info.path.split("/")
        if not info.isDir and parts[-1] == "data" and parts[-5] == "blobs":
            found.add(f"{parts[-4]}:{parts[-2]}")

    await driver.walk(layout.BLOBS, visit)
    return found


async def everyFile(driver: Any) -> dict[str, bytes]:
    files = {}
    paths: list[str] = []
    await driver.walk("/", lambda info: None if info.isDir else paths.append(info.path))
    for path in paths:
        files[path] = bytes(await driver.getContent(path))
    return files


class GarbageCollectionMixin:
    """The same behaviour on every driver; subclasses make the driver."""

    def makeDriver(self) -> Any:
        raise NotImplementedError

    async def stored(self, path: str) -> bool:
        return await layout.exists(self.driver, path)

    def makeOld(self, path: str, seconds: float) -> None:
        """Set a stored file's modification time seconds into the past."""
        raise NotImplementedError

    async def setUpRegistry(self) -> RealisticRegistry:
        self.driver = self.makeDriver()
        self.registry = Registry(self.driver, deleteEnabled=True)
        self.addCleanup(uploads._states.clear)
        built = RealisticRegistry(self.registry)
        await built.build()
        self.lines: list[str] = []
        return built

    def collector(self, clock: Clock | None = None, **options: Any) -> GarbageCollector:
        # A fresh Registry: nothing cached from the pushes.
        return GarbageCollector(
            Registry(self.driver),
            clock=clock if clock is not None else laterClock(),
            report=self.lines.append,
            **options,
        )

    def allBlobs(self, built: RealisticRegistry) -> set[str]:
        manifests = set(built.digests.values())
        return manifests | built.blobsOf(
            "cA", "cB", "cU", "cSU", "shared", "a1", "b1", "u1", "sig", "sigU", "cC1", "cC2", "cC3",
            "m1", "m2", "m3", "cT", "orphan", "cD", "d1",
        ) | {sha256(b"{}")}  # fmt: skip

    async def assertPullable(self, name: str, reference: str) -> None:
        """Every manifest reachable from reference, and every blob they reference, can be read."""
        repository = Registry(self.driver).repository(name)
        manifest = await repository.manifests.get(reference)
        refs = references(manifest.content)
        for digest in refs.blobs:
            descriptor_, reader = await repository.blobs.open(digest)
            data = b""
            while chunk := await reader.read():
                data += chunk
            await reader.close()
            self.assertEqual(sha256(data), digest)
        for child in refs.children:
            await self.assertPullable(name, child)

    async def test_keeps_exactly_what_any_revision_reaches(self) -> None:
        built = await self.setUpRegistry()
        d = built.digests
        result = await self.collector(gracePeriod=HOUR).run()
        garbage = {d["D"]} | built.blobsOf("orphan", "cD", "d1")
        self.assertEqual(await storedBlobDigests(self.driver), self.allBlobs(built) - garbage)
        self.assertEqual({b.digest for b in result.deletedBlobs}, garbage)
        self.assertEqual(result.removedManifests, [])
        self.assertEqual(
            sorted(result.removedLayerLinks),
            sorted(("other/tool", digest) for digest in built.blobsOf("orphan", "cD", "d1")),
        )
        for name, reference in [
            ("library/app", "v1"), ("library/app", "v2"), ("library/app", d["U"]), ("library/app", d["S"]),
            ("library/app", d["SU"]), ("library/multi", "latest"), ("library/multi", d["J"]),
            ("other/tool", "1.0"),
        ]:  # fmt: skip
            await self.assertPullable(name, reference)
        tool = Registry(self.driver).repository("other/tool")
        with self.assertRaises(BlobUnknown):
            await tool.blobs.stat(sha256(blob("orphan")))
        self.assertFalse(await self.stored(layout.layerLinkPath("other/tool", sha256(blob("d1")))))
        # Nothing is left set aside.
        self.assertEqual(await layout.listNames(self.driver, QUARANTINE), [])
        # What was deleted is reported with its size, and a summary ends the report.
        for digest in garbage:
            self.assertTrue(any(line.startswith(f"deleted blob {digest} (") for line in self.lines), digest)
        self.assertIn(f"{len(garbage)} blobs deleted ({humanSize(result.deletedBytes)})", self.lines[-1])

    async def test_delete_untagged_removes_exactly_the_untagged(self) -> None:
        built = await self.setUpRegistry()
        d = built.digests
        result = await self.collector(gracePeriod=HOUR, deleteUntagged=True).run()
        untagged = {("library/app", d["U"]), ("library/app", d["SU"])}
        untagged |= {("library/multi", d["J"]), ("library/multi", d["C3"])}
        self.assertEqual(set(result.removedManifests), untagged)
        garbage = {d["D"], d["U"], d["SU"], d["J"], d["C3"]}
        garbage |= built.blobsOf("orphan", "cD", "d1", "cU", "u1", "cSU", "sigU", "cC3", "m3")
        self.assertEqual(await storedBlobDigests(self.driver), self.allBlobs(built) - garbage)
        # Multi-arch stays whole: the tagged index's children are not untagged manifests.
        await self.assertPullable("library/multi", "latest")
        # A signature of a tagged image lives with it.
        await self.assertPullable("library/app", d["S"])
        for name, reference in [("library/app", "v1"), ("library/app", "v2"), ("other/tool", "1.0")]:
            await self.assertPullable(name, reference)
        app = Registry(self.driver).repository("library/app")
        for digest in (d["U"], d["SU"]):
            with self.assertRaises(ManifestUnknown):
                await app.manifests.get(digest)
        self.assertEqual(
            await app.manifests.referrers(d["A"]),
            [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": d["S"],
                    "size": len(await built.content("library/app", d["S"])),
                    "artifactType": "application/signature",
                }
            ],
        )

    async def test_untagged_removal_drops_tag_history_entries(self) -> None:
        """A revision a tag pointed at before it moved loses its tag index entry with it."""
        await self.setUpRegistry()
        app = self.registry.repository("library/app")
        old = await pushImage(app, "moving", blob("c-old"), [blob("l-old")])
        new = await pushImage(app, "moving", blob("c-new"), [blob("l-new")])
        await self.collector(gracePeriod=HOUR, deleteUntagged=True).run()
        self.assertFalse(await self.stored(layout.tagIndexLinkPath("library/app", "moving", old)))
        self.assertTrue(await self.stored(layout.tagIndexLinkPath("library/app", "moving", new)))
        await self.assertPullable("library/app", "moving")

    async def test_dry_run_deletes_nothing_and_reports_the_same(self) -> None:
        built = await self.setUpRegistry()
        before = await everyFile(self.driver)
        dry = await self.collector(gracePeriod=HOUR, deleteUntagged=True, dryRun=True).run()
        self.assertEqual(await everyFile(self.driver), before)
        self.assertTrue(any("eligible for deletion" in line for line in self.lines))
        real = await self.collector(gracePeriod=HOUR, deleteUntagged=True).run()
        self.assertEqual(dry.deletedBlobs, real.deletedBlobs)
        self.assertEqual(sorted(dry.removedManifests), sorted(real.removedManifests))
        self.assertEqual(sorted(dry.removedLayerLinks), sorted(real.removedLayerLinks))
        self.assertGreater(len(dry.deletedBlobs), 0)
        self.assertNotEqual(await storedBlobDigests(self.driver), self.allBlobs(built))

    async def test_grace_period_keeps_recent_blobs_and_revisions(self) -> None:
        built = await self.setUpRegistry()
        before = await storedBlobDigests(self.driver)
        # Everything was written moments ago: younger than an hour.
        result = await self.collector(laterClock(0), gracePeriod=HOUR, deleteUntagged=True).run()
        self.assertEqual(result.deletedBlobs, [])
        self.assertEqual(result.removedManifests, [])
        self.assertEqual(await storedBlobDigests(self.driver), before)
        self.assertIn(sha256(blob("orphan")), result.keptYoung)
        # An hour and a bit later the same run collects.
        later = await self.collector(laterClock(HOUR + 60), gracePeriod=HOUR, deleteUntagged=True).run()
        self.assertIn(sha256(blob("orphan")), {b.digest for b in later.deletedBlobs})
        self.assertIn(("library/app", built.digests["U"]), later.removedManifests)

    async def test_a_fresh_link_keeps_an_old_blob(self) -> None:
        """A blob linked again (a repeated upload, a mount) within the grace period is kept."""
        await self.setUpRegistry()
        orphan = sha256(blob("orphan"))
        self.makeOld(layout.blobDataPath(orphan), 2 * HOUR)
        self.makeOld(layout.layerLinkPath("other/tool", orphan), 2 * HOUR)
        dry = await self.collector(laterClock(0), gracePeriod=HOUR, dryRun=True).run()
        self.assertIn(orphan, {b.digest for b in dry.deletedBlobs})
        await layout.writeLink(self.driver, layout.layerLinkPath("library/app", orphan), orphan)
        result = await self.collector(laterClock(0), gracePeriod=HOUR).run()
        self.assertIn(orphan, result.keptYoung)
        self.assertIn(orphan, await storedBlobDigests(self.driver))

    async def test_a_run_that_died_is_put_back_by_the_next(self) -> None:
        built = await self.setUpRegistry()
        shared = sha256(blob("shared"))
        # A run that set "shared" aside and died, its heartbeat two hours old.
        held = quarantinePath("dead", layout.blobDirectory(shared))
        await self.driver.move(layout.blobDirectory(shared), held)
        clock = laterClock(2 * HOUR)
        await self.driver.putContent(
            f"{QUARANTINE}/dead/heartbeat", repr(clock.seconds() - 2 * HOUR).encode()
        )
        await self.collector(clock, gracePeriod=HOUR).run()
        await self.assertPullable("library/app", "v1")
        self.assertTrue(any("interrupted collection (dead)" in line for line in self.lines))
        self.assertEqual(await layout.listNames(self.driver, QUARANTINE), [])
        self.assertIn(shared, await storedBlobDigests(self.driver))
        self.assertIsNotNone(built)

    async def test_a_live_run_is_left_alone(self) -> None:
        await self.setUpRegistry()
        shared = sha256(blob("shared"))
        held = quarantinePath("alive", layout.blobDirectory(shared))
        await self.driver.move(layout.blobDirectory(shared), held)
        clock = laterClock(2 * HOUR)
        await self.driver.putContent(f"{QUARANTINE}/alive/heartbeat", repr(clock.seconds() - 60).encode())
        await self.collector(clock, gracePeriod=HOUR).run()
        self.assertTrue(await self.stored(held + "/data"))

    async def test_a_push_after_the_quarantine_is_restored_or_refused(self) -> None:
        """
        The two halves of the race guard, step by step: a manifest pushed while a blob it
        references is set aside fails cleanly (and takes back its tag); one whose links were
        written before the re-check brings the blob back.
        """
        await self.setUpRegistry()
        orphan = sha256(blob("orphan"))
        tool = self.registry.repository("other/tool")
        collector = self.collector(gracePeriod=HOUR)
        content = dumps(imageManifest(blob("cT"), [blob("orphan")]))
        # Set the orphan aside as step 3 does, then push a manifest using it: refused.
        original = layout.blobDirectory(orphan)
        collector._runID = "run"
        await self.driver.move(original, quarantinePath("run", original))
        with self.assertRaises(ManifestBlobUnknown):
            await tool.manifests.put("uses-orphan", OCI_MANIFEST, content)
        self.assertFalse(await self.stored(layout.tagPath("other/tool", "uses-orphan")))
        self.assertFalse(await self.stored(layout.revisionLinkPath("other/tool", sha256(content))))
        # A previous tag value comes back when the push fails.
        with self.assertRaises(ManifestBlobUnknown):
            await tool.manifests.put("1.0", OCI_MANIFEST, content)
        await self.assertPullable("other/tool", "1.0")
        self.assertNotEqual((await tool.manifests.get("1.0")).digest, sha256(content))


class InMemoryGarbageCollectionTests(GarbageCollectionMixin, TestCase):
    def makeDriver(self) -> Any:
        return InMemoryDriver()

    def makeOld(self, path: str, seconds: float) -> None:
        self.driver._files[path].modTime -= seconds


class FilesystemGarbageCollectionTests(GarbageCollectionMixin, TestCase):
    def makeDriver(self) -> Any:
        driver = FilesystemDriver(self.mktemp())
        self.addCleanup(driver.stop)
        return driver

    def makeOld(self, path: str, seconds: float) -> None:
        full = os.path.join(self.driver.rootDirectory, path.lstrip("/"))
        then = os.stat(full).st_mtime - seconds
        os.utime(full, (then, then))


class ReferencesTests(TestCase):
    def test_schema1_layers_are_references(self) -> None:
        layer = "sha256:" + "a" * 64
        content = b'{"schemaVersion": 1, "fsLayers": [{"blobSum": "' + layer.encode() + b'"}]}'
        self.assertEqual(references(content).blobs, (layer,))

    def test_image_index_and_subject(self) -> None:
        child, subject = "sha256:" + "b" * 64, "sha256:" + "c" * 64
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": 1}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
        }
        refs = references(dumps(document))
        self.assertEqual((refs.blobs, refs.children, refs.subject), ((), (child,), subject))

    def test_config_and_layers(self) -> None:
        content = dumps(imageManifest(b"config", [b"one", b"two"]))
        self.assertEqual(references(content).blobs, (sha256(b"config"), sha256(b"one"), sha256(b"two")))
        self.assertEqual(descriptor(OCI_CONFIG, b"config")["digest"], sha256(b"config"))
        self.assertTrue(OCI_LAYER)

"""
End-to-end: containerd's C{ctr} pushes to and pulls from a real C{twistd registryd} process on loopback.

Each test runs containerd daemons of its own (root, state and socket under temporary directories):
one imports an OCI archive the test builds and pushes it, a fresh one pulls it back and unpacks it,
which makes containerd check every layer against the config's diff IDs.
"""

from __future__ import annotations

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.containerd import Containerd, layoutArchive
from tests.support.layouts import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, reachableBlobs, taggedDescriptor


class ContainerdTests(RegistryTestCase):
    """ctr against registryd."""

    def setUp(self) -> None:
        self.registry = self.startRegistryd(self.workDirectory() / "root")
        self.source, self.image, self.platforms = self.buildLayout(seed=9)
        self.archive = layoutArchive(self.source, self.workDirectory() / "image.tar")
        self.pusher = self.startContainerd()

    def startContainerd(self) -> Containerd:
        """A containerd of the test's own, stopped when the test ends."""
        containerd = Containerd(self.workDirectory(), self.registry)
        self.addCleanup(containerd.stop)
        containerd.start()
        return containerd

    def sourceBytes(self, digest: str) -> bytes:
        """A blob of the source layout."""
        return (self.source / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    def servedManifest(self, repository: str, reference: str) -> http.Response:
        """GET a manifest from the registry, accepting every manifest type."""
        response = http.request(
            "GET",
            f"{self.registry.url}/v2/{repository}/manifests/{reference}",
            {"Accept": http.MANIFEST_ACCEPT},
        )
        self.assertEqual(response.status, 200, self.registry.logTail())
        return response

    def pushTag(self, repository: str, tag: str) -> str:
        """Import the archive into the pushing containerd and push one of its tags; the reference."""
        base = f"{self.registry.host}/{repository}"
        self.pusher.importArchive(self.archive, base)
        reference = f"{base}:{tag}"
        self.pusher.push(reference)
        return reference

    def assertHoldsExactly(self, containerd: Containerd, digests: set[str]) -> None:
        """containerd's store holds each blob, and each reads back with the source layout's bytes' digest."""
        self.assertEqual(digests - containerd.contentDigests(), set())
        for digest in sorted(digests):
            self.assertEqual(containerd.contentDigest(digest), digest)

    def test_push_and_pull_back_into_a_fresh_containerd(self) -> None:
        """
        ctr pushes an imported multi-layer image; the registry serves the manifest byte for byte, and a
        fresh containerd pulls and unpacks it with every blob identical.
        """
        reference = self.pushTag("e2e/ctr", "v1")
        response = self.servedManifest("e2e/ctr", "v1")
        self.assertEqual(response.body, self.sourceBytes(self.image.manifest.digest))
        self.assertEqual(response.headers["Docker-Content-Digest"], self.image.manifest.digest)
        self.assertEqual(response.headers["Content-Type"], MEDIA_TYPE_MANIFEST)

        puller = self.startContainerd()
        puller.pull(reference)
        self.assertEqual(puller.images()[reference], (MEDIA_TYPE_MANIFEST, self.image.manifest.digest))
        self.assertHoldsExactly(puller, self.image.blobDigests())
        snapshots = puller.ctr("snapshots", "--snapshotter", "native", "ls").stdout.splitlines()[1:]
        self.assertEqual(len(snapshots), len(self.image.layers))

    def test_multi_arch_index_push_and_pull_of_all_platforms(self) -> None:
        """A two-platform index pushed by ctr is served as pushed; a fresh containerd pulls every platform."""
        reference = self.pushTag("e2e/multi", "multi")
        index = taggedDescriptor(self.source, "multi")
        response = self.servedManifest("e2e/multi", "multi")
        self.assertEqual(response.body, self.sourceBytes(index["digest"]))
        self.assertEqual(response.headers["Content-Type"], MEDIA_TYPE_INDEX)
        for platform in self.platforms:
            child = self.servedManifest("e2e/multi", platform.manifest.digest)
            self.assertEqual(child.body, self.sourceBytes(platform.manifest.digest))

        puller = self.startContainerd()
        puller.pull(reference, allPlatforms=True)
        self.assertEqual(puller.images()[reference], (MEDIA_TYPE_INDEX, index["digest"]))
        self.assertHoldsExactly(puller, reachableBlobs(self.source, index["digest"]))

    def test_pull_by_digest(self) -> None:
        """A fresh containerd pulls an image by its manifest digest."""
        self.pushTag("e2e/ctr", "v1")
        reference = f"{self.registry.host}/e2e/ctr@{self.image.manifest.digest}"
        puller = self.startContainerd()
        puller.pull(reference)
        self.assertEqual(puller.images()[reference], (MEDIA_TYPE_MANIFEST, self.image.manifest.digest))
        self.assertHoldsExactly(puller, self.image.blobDigests())

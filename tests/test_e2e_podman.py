"""
End-to-end: podman pushes to and pulls from a real C{twistd registryd} process on loopback.

podman keeps its images under the test's own directories (vfs storage); the image comes from an
OCI layout the test builds, so no network is needed. podman pushes each layer as one chunked PATCH.
"""

from __future__ import annotations

import gzip
import hashlib
import json

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.layouts import MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST
from tests.support.podman import Podman

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class PodmanTests(RegistryTestCase):
    """podman against registryd."""

    def setUp(self) -> None:
        self.registry = self.startRegistryd(self.workDirectory() / "root")
        self.podman = self.newPodman()
        source, self.image, _ = self.buildLayout(seed=7)
        self.imageID = self.podman.pullLayout(source, "v1")
        config = json.loads((source / "blobs" / "sha256" / self.image.config.digest[7:]).read_bytes())
        self.diffIDs = config["rootfs"]["diff_ids"]

    def newPodman(self) -> Podman:
        """podman with an empty store of its own, removed when the test ends."""
        podman = Podman(self.workDirectory(), self.registry)
        self.addCleanup(podman.cleanup)
        return podman

    def manifest(self, repository: str, tag: str) -> tuple[http.Response, dict]:
        """The registry's manifest for a tag, as served, and decoded."""
        response = http.request(
            "GET", f"{self.registry.url}/v2/{repository}/manifests/{tag}", {"Accept": http.MANIFEST_ACCEPT}
        )
        self.assertEqual(response.status, 200, self.registry.logTail())
        return response, response.json()

    def assertLayersHoldDiffIDs(self, repository: str, manifest: dict) -> None:
        """Each layer podman uploaded decompresses to the bytes of the original layer (its diff ID)."""
        digests = []
        for layer in manifest["layers"]:
            blob = http.request("GET", f"{self.registry.url}/v2/{repository}/blobs/{layer['digest']}")
            self.assertEqual(blob.status, 200)
            self.assertEqual("sha256:" + hashlib.sha256(blob.body).hexdigest(), layer["digest"])
            self.assertEqual(len(blob.body), layer["size"])
            digests.append("sha256:" + hashlib.sha256(gzip.decompress(blob.body)).hexdigest())
        self.assertEqual(digests, self.diffIDs)

    def pushAndPullBack(self, repository: str, tag: str, format: str) -> tuple[http.Response, dict, dict]:
        """Push the image with C{--format}, pull it into a fresh podman store; registry and pulled views."""
        self.podman.push(self.imageID, self.podman.reference(repository, tag), format)
        response, manifest = self.manifest(repository, tag)
        fresh = self.newPodman()
        pulledID = fresh.pull(fresh.reference(repository, tag))
        return response, manifest, fresh.inspect(pulledID)

    def test_push_oci_and_pull_back_into_a_fresh_store(self) -> None:
        """podman push --format oci, then pull into an empty store: same image id, layers and digest."""
        response, manifest, pulled = self.pushAndPullBack("e2e/podman", "oci", "oci")
        self.assertEqual(response.headers["Content-Type"], MEDIA_TYPE_MANIFEST)
        self.assertEqual(manifest["config"]["mediaType"], MEDIA_TYPE_CONFIG)
        self.assertEqual(manifest["config"]["digest"], "sha256:" + self.imageID)
        self.assertEqual({layer["mediaType"] for layer in manifest["layers"]}, {MEDIA_TYPE_LAYER})
        self.assertLayersHoldDiffIDs("e2e/podman", manifest)
        # podman streamed every layer in a PATCH (chunked transfer-encoding), then closed it with PUT.
        patches = self.registry.logPath.read_text().count('"PATCH /v2/e2e/podman/blobs/uploads/')
        self.assertGreaterEqual(patches, len(manifest["layers"]))
        self.assertEqual(pulled["Id"], self.imageID)
        self.assertEqual(pulled["Digest"], response.headers["Docker-Content-Digest"])
        self.assertEqual(pulled["RootFS"]["Layers"], self.diffIDs)

    def test_push_docker_v2s2_and_pull_back_into_a_fresh_store(self) -> None:
        """podman push --format v2s2 stores Docker media types; the pulled image matches the original."""
        response, manifest, pulled = self.pushAndPullBack("e2e/podman", "v2s2", "v2s2")
        self.assertEqual(response.headers["Content-Type"], DOCKER_MANIFEST)
        self.assertEqual(manifest["mediaType"], DOCKER_MANIFEST)
        self.assertEqual(manifest["config"]["mediaType"], DOCKER_CONFIG)
        self.assertEqual({layer["mediaType"] for layer in manifest["layers"]}, {DOCKER_LAYER})
        self.assertLayersHoldDiffIDs("e2e/podman", manifest)
        self.assertEqual(pulled["Id"], manifest["config"]["digest"].removeprefix("sha256:"))
        self.assertEqual(pulled["Digest"], response.headers["Docker-Content-Digest"])
        self.assertEqual(pulled.get("ManifestType"), DOCKER_MANIFEST)
        self.assertEqual(pulled["RootFS"]["Layers"], self.diffIDs)

    def test_pull_by_digest_after_push(self) -> None:
        """An image pushed by tag pulls by its manifest digest too."""
        self.podman.push(self.imageID, self.podman.reference("e2e/podman", "v1"), "oci")
        response, _ = self.manifest("e2e/podman", "v1")
        digest = response.headers["Docker-Content-Digest"]
        fresh = self.newPodman()
        pulledID = fresh.pull(f"{self.registry.host}/e2e/podman@{digest}")
        self.assertEqual(pulledID, self.imageID)
        self.assertIn(f"{self.registry.host}/e2e/podman@{digest}", fresh.inspect(pulledID)["RepoDigests"])

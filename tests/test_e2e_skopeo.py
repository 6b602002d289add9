"""
End-to-end: skopeo pushes to and pulls from a real C{twistd registryd} process on loopback.

Each test starts registryd on a fresh filesystem root, builds its own OCI layout, and drives the
skopeo program; nothing here talks to registryd's Python objects.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.layouts import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, taggedDescriptor
from tests.support.skopeo import Skopeo, SkopeoFailed, compareLayouts


class SkopeoTests(RegistryTestCase):
    """skopeo against registryd."""

    def setUp(self) -> None:
        self.root = self.workDirectory() / "root"
        self.registry = self.startRegistryd(self.root)
        self.skopeo = Skopeo(self.registry)
        self.source, self.image, self.platforms = self.buildLayout()

    def pushImage(self, repository: str = "e2e/app", tag: str = "v1") -> None:
        """Copy the multi-layer image from the source layout into the registry."""
        self.skopeo.copy(f"oci:{self.source}:v1", self.skopeo.reference(repository, tag))

    def assertIdentical(self, source: Path, sourceTag: str, copy: Path, copyTag: str) -> None:
        """Fail unless the copy of an image in a layout is byte-identical to the original."""
        problems = compareLayouts(source, sourceTag, copy, copyTag)
        self.assertEqual(problems, [], f"copy differs from the original:\n{self.registry.logTail()}")

    def manifestBytes(self, digest: str) -> bytes:
        """The bytes of a manifest in the source layout."""
        return (self.source / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    def test_copy_multilayer_image_in_and_out_is_byte_identical(self) -> None:
        """A multi-layer OCI image copied in and back out has the same manifest digest and blob bytes."""
        self.pushImage()
        out = self.workDirectory() / "out"
        self.skopeo.copy(self.skopeo.reference("e2e/app", "v1"), f"oci:{out}:pulled")
        self.assertIdentical(self.source, "v1", out, "pulled")
        self.assertEqual(taggedDescriptor(out, "pulled")["mediaType"], MEDIA_TYPE_MANIFEST)

    def test_manifest_served_as_pushed(self) -> None:
        """After a skopeo push, the manifest is served byte-for-byte with its digest and media type."""
        self.pushImage()
        expected = self.manifestBytes(self.image.manifest.digest)
        for reference in ("v1", self.image.manifest.digest):
            response = http.request(
                "GET",
                f"{self.registry.url}/v2/e2e/app/manifests/{reference}",
                headers={"Accept": http.MANIFEST_ACCEPT},
            )
            self.assertEqual(response.status, 200, reference)
            self.assertEqual(response.body, expected, reference)
            self.assertEqual(response.headers["Docker-Content-Digest"], self.image.manifest.digest)
            self.assertEqual(response.headers["Content-Type"], MEDIA_TYPE_MANIFEST)
        for layer in self.image.layers:
            response = http.request("HEAD", f"{self.registry.url}/v2/e2e/app/blobs/{layer.digest}")
            self.assertEqual(response.status, 200, layer.digest)
            self.assertEqual(int(response.headers["Content-Length"]), layer.size, layer.digest)

    def test_copy_multi_arch_index_with_all(self) -> None:
        """A two-platform OCI index copied with --all in and out keeps the index and every child intact."""
        self.skopeo.copy(f"oci:{self.source}:multi", self.skopeo.reference("e2e/multi", "multi"), all=True)
        index = taggedDescriptor(self.source, "multi")
        raw = self.skopeo.inspectRaw(self.skopeo.reference("e2e/multi", "multi"))
        self.assertEqual(raw, self.manifestBytes(index["digest"]))
        for platform in self.platforms:
            # Each child is reachable by digest on its own.
            child = self.skopeo.inspectRaw(self.skopeo.reference("e2e/multi", platform.manifest.digest))
            self.assertEqual(child, self.manifestBytes(platform.manifest.digest))
        out = self.workDirectory() / "out"
        self.skopeo.copy(self.skopeo.reference("e2e/multi", "multi"), f"oci:{out}:multi", all=True)
        self.assertIdentical(self.source, "multi", out, "multi")
        self.assertEqual(taggedDescriptor(out, "multi")["mediaType"], MEDIA_TYPE_INDEX)

    def test_list_tags(self) -> None:
        """skopeo list-tags names every tag pushed to the repository."""
        for tag in ("v1", "latest", "1.0.0"):
            self.pushImage(tag=tag)
        self.assertEqual(sorted(self.skopeo.listTags("e2e/app")), ["1.0.0", "latest", "v1"])

    def test_inspect(self) -> None:
        """skopeo inspect reports the pushed manifest's digest, layers and platform."""
        self.pushImage()
        report = self.skopeo.inspect(self.skopeo.reference("e2e/app", "v1"))
        self.assertEqual(report["Digest"], self.image.manifest.digest)
        self.assertEqual(report["Layers"], [layer.digest for layer in self.image.layers])
        self.assertEqual(report["Architecture"], "amd64")
        self.assertEqual(report["Os"], "linux")
        self.assertIn("v1", report.get("RepoTags", []))

    def test_delete(self) -> None:
        """After skopeo delete the manifest is 404 by digest and by tag; another repository keeps its copy."""
        self.pushImage()
        self.pushImage(repository="e2e/kept")
        self.skopeo.delete(self.skopeo.reference("e2e/app", "v1"))
        for reference in (self.image.manifest.digest, "v1"):
            response = http.request(
                "GET",
                f"{self.registry.url}/v2/e2e/app/manifests/{reference}",
                headers={"Accept": http.MANIFEST_ACCEPT},
            )
            self.assertEqual(response.status, 404, reference)
            self.assertEqual(response.errorCodes(), ["MANIFEST_UNKNOWN"], reference)
        self.assertRaises(SkopeoFailed, self.skopeo.inspect, self.skopeo.reference("e2e/app", "v1"))
        self.assertEqual(
            self.skopeo.inspect(self.skopeo.reference("e2e/kept", "v1"))["Digest"], self.image.manifest.digest
        )

    def test_copy_to_second_repository_mounts_blobs(self) -> None:
        """Copying an image to another repository of the same registry mounts its layers, no upload."""
        self.pushImage()
        log = self.skopeo.copy(
            self.skopeo.reference("e2e/app", "v1"), self.skopeo.reference("e2e/copy", "v1"), debug=True
        )
        for layer in self.image.layers:
            hexadecimal = layer.digest.split(":", 1)[1]
            mounts = re.findall(r"POST \S+/v2/e2e/copy/blobs/uploads/\?\S*mount=sha256%3A" + hexadecimal, log)
            self.assertTrue(mounts, f"no mount tried for {layer.digest}")
            uploads = re.findall(r"PUT \S+/v2/e2e/copy/blobs/uploads/\S*digest=sha256%3A" + hexadecimal, log)
            self.assertEqual(uploads, [], f"{layer.digest} was uploaded, not mounted")
        self.assertEqual(log.count("mount OK"), len(self.image.layers))
        out = self.workDirectory() / "out"
        self.skopeo.copy(self.skopeo.reference("e2e/copy", "v1"), f"oci:{out}:v1")
        self.assertIdentical(self.source, "v1", out, "v1")

    def test_tls_probe_on_plain_http_is_refused_with_an_http_answer(self) -> None:
        """
        skopeo with --tls-verify=false first tries TLS on the plain-HTTP port; the registry must answer that
        probe at once with plain HTTP (as distribution does), so the client falls back straight away
        instead of sitting out its 10 s TLS handshake timeout. skopeo's debug log says which happened.
        """
        self.pushImage()
        log = self.skopeo.run(
            "list-tags", "--tls-verify=false", self.skopeo.reference("e2e/app"), debug=True
        ).stderr
        self.assertIn("server gave HTTP response to HTTPS client", log)
        self.assertNotIn("handshake timeout", log)

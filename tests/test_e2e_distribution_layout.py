"""
End-to-end: registryd and Debian's distribution (docker-registry 2.8) take turns on one root directory.

Images skopeo pushed to distribution must be pulled from registryd, byte-identical, after distribution
stops and registryd starts on the same directory; and the other way round. The on-disk layout each
wrote is checked path by path too, so a difference shows where it is and not only that it exists.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.layouts import Image, taggedDescriptor
from tests.support.processes import RegistryProcess, distributionProcess, registrydProcess
from tests.support.skopeo import Skopeo, compareLayouts
from tests.support.tools import requireTool


def layoutProblems(root: Path, repository: str, tag: str, topDigest: str, images: list[Image]) -> list[str]:
    """
    Where the storage under C{root} departs from distribution's layout for C{repository:tag}, whose
    manifest (or index over C{images}) is C{topDigest}. An empty list means it matches.
    """
    base = root / "docker" / "registry" / "v2"
    repositoryPath = base / "repositories" / repository
    problems: list[str] = []

    def expectLink(path: Path, digest: str) -> None:
        if not path.is_file():
            problems.append(f"missing {path.relative_to(base)}")
        elif path.read_bytes() != digest.encode("ascii"):
            problems.append(f"{path.relative_to(base)} holds {path.read_bytes()!r}, not {digest!r}")

    def expectBlob(digest: str) -> None:
        algorithm, hexadecimal = digest.split(":", 1)
        data = base / "blobs" / algorithm / hexadecimal[:2] / hexadecimal / "data"
        if not data.is_file():
            problems.append(f"missing {data.relative_to(base)}")
            return
        hasher = hashlib.new(algorithm)
        with open(data, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
        if hasher.hexdigest() != hexadecimal:
            problems.append(f"{data.relative_to(base)} does not hash to its name")

    def hexOf(digest: str) -> tuple[str, str]:
        algorithm, hexadecimal = digest.split(":", 1)
        return algorithm, hexadecimal

    manifests = {topDigest} | {image.manifest.digest for image in images}
    for digest in manifests:
        expectBlob(digest)
        expectLink(repositoryPath / "_manifests" / "revisions" / Path(*hexOf(digest)) / "link", digest)
        if (repositoryPath / "_layers" / Path(*hexOf(digest))).exists():
            problems.append(f"manifest {digest} is linked under _layers")
    for image in images:
        for blob in [image.config, *image.layers]:
            expectBlob(blob.digest)
            expectLink(repositoryPath / "_layers" / Path(*hexOf(blob.digest)) / "link", blob.digest)
    tagPath = repositoryPath / "_manifests" / "tags" / tag
    expectLink(tagPath / "current" / "link", topDigest)
    expectLink(tagPath / "index" / Path(*hexOf(topDigest)) / "link", topDigest)
    return problems


class DistributionLayoutTests(RegistryTestCase):
    """registryd and distribution serve each other's storage."""

    def setUp(self) -> None:
        self.root = self.workDirectory() / "root"
        self.source, self.image, self.platforms = self.buildLayout(seed=7)
        self.index = taggedDescriptor(self.source, "multi")["digest"]

    def push(self, registry: RegistryProcess) -> None:
        """Push the multi-layer image and the multi-arch index with skopeo."""
        skopeo = Skopeo(registry)
        skopeo.copy(f"oci:{self.source}:v1", skopeo.reference("e2e/app", "v1"))
        skopeo.copy(f"oci:{self.source}:multi", skopeo.reference("e2e/multi", "multi"), all=True)

    def assertLayout(self, registry: RegistryProcess) -> None:
        """Fail unless the root holds both pushed images in distribution's layout."""
        problems = layoutProblems(self.root, "e2e/app", "v1", self.image.manifest.digest, [self.image])
        problems += layoutProblems(self.root, "e2e/multi", "multi", self.index, self.platforms)
        self.assertEqual(problems, [], f"layout written by {registry.name} differs:\n{registry.logTail()}")

    def assertPullsIdentical(self, registry: RegistryProcess) -> None:
        """Fail unless both images pull from C{registry} byte-identical to the source layout."""
        skopeo = Skopeo(registry)
        out = self.workDirectory() / "out"
        skopeo.copy(skopeo.reference("e2e/app", "v1"), f"oci:{out}:v1")
        skopeo.copy(skopeo.reference("e2e/multi", "multi"), f"oci:{out}:multi", all=True)
        for tag in ("v1", "multi"):
            problems = compareLayouts(self.source, tag, out, tag)
            message = f"{tag} pulled from {registry.name} differs:\n{registry.logTail()}"
            self.assertEqual(problems, [], message)
        self.assertEqual(skopeo.listTags("e2e/app"), ["v1"])
        catalog = http.request("GET", f"{registry.url}/v2/_catalog")
        self.assertEqual(catalog.status, 200)
        self.assertEqual(catalog.json()["repositories"], ["e2e/app", "e2e/multi"])

    def test_pushed_to_distribution_pulled_from_registryd(self) -> None:
        """Images distribution stored are served by registryd from the same directory, byte-identical."""
        distribution = self.startDistribution(self.root)
        self.push(distribution)
        distribution.stop()
        self.assertLayout(distribution)
        registryd = self.startRegistryd(self.root)
        self.assertPullsIdentical(registryd)

    def test_pushed_to_registryd_pulled_from_distribution(self) -> None:
        """Images registryd stored are served by distribution from the same directory, byte-identical."""
        registryd = self.startRegistryd(self.root)
        self.push(registryd)
        registryd.stop()
        self.assertLayout(registryd)
        distribution = self.startDistribution(self.root)
        self.assertPullsIdentical(distribution)

    def test_registryd_changes_seen_by_distribution(self) -> None:
        """A tag added and a manifest deleted by registryd on distribution's storage show in distribution."""
        distribution = self.startDistribution(self.root)
        self.push(distribution)
        distribution.stop()
        registryd = self.startRegistryd(self.root)
        skopeo = Skopeo(registryd)
        skopeo.copy(skopeo.reference("e2e/app", "v1"), skopeo.reference("e2e/app", "v2"))
        skopeo.delete(skopeo.reference("e2e/multi", "multi"))
        registryd.stop()
        distribution = self.startDistribution(self.root)
        skopeo = Skopeo(distribution)
        self.assertEqual(sorted(skopeo.listTags("e2e/app")), ["v1", "v2"])
        report = skopeo.inspect(skopeo.reference("e2e/app", "v2"))
        self.assertEqual(report["Digest"], self.image.manifest.digest)
        response = http.request(
            "GET", f"{distribution.url}/v2/e2e/multi/manifests/{self.index}", {"Accept": http.MANIFEST_ACCEPT}
        )
        self.assertEqual(response.status, 404, distribution.logTail())


def _pathAndQuery(location: str) -> str:
    """An upload Location (absolute or not) as path and query, for whichever registry is asked."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class HashStateTests(RegistryTestCase):
    """
    An upload begun by one registry is finished by the other on the same root: the running hash
    saved after a PATCH (distribution's hashstates/sha256/<offset>, Go's form) is taken up.

    To show the saved state was used and the bytes were not read back, the stored bytes are
    changed (same length) between the PATCH and the PUT: a registry that hashes what it stored
    would refuse the original digest; one that took up the saved hash accepts it, as distribution
    does with its own hash states.
    """

    SECRET = "shared by both registries"

    def start(self, kind: str, root: Path) -> RegistryProcess:
        """Start one of the two on root, with the http.secret both share (their _state tokens agree)."""
        if kind == "distribution":
            process = distributionProcess(self.workDirectory(), root, requireTool("docker-registry"))
        else:
            process = registrydProcess(self.workDirectory(), root)
        process.env = {**(process.env or os.environ), "REGISTRY_HTTP_SECRET": self.SECRET}
        return self._started(process)

    def uploadDirectory(self, root: Path, repository: str) -> Path:
        uploads = root / "docker" / "registry" / "v2" / "repositories" / repository / "_uploads"
        (directory,) = uploads.iterdir()
        return directory

    def handOver(self, first: RegistryProcess, second: RegistryProcess, root: Path) -> None:
        data = bytes(range(256)) * 1000 + b"tail"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = http.request("POST", f"{first.url}/v2/hand/over/blobs/uploads/")
        self.assertEqual(started.status, 202, started.body)
        patched = http.request(
            "PATCH",
            first.url + _pathAndQuery(started.headers["Location"]),
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(patched.status, 202, patched.body)
        upload = self.uploadDirectory(root, "hand/over")
        self.assertTrue((upload / "hashstates" / "sha256" / str(len(data))).is_file())
        stored = upload / "data"
        stored.write_bytes(b"\0" * len(data))
        location = _pathAndQuery(patched.headers["Location"])
        separator = "&" if "?" in location else "?"
        finished = http.request("PUT", f"{second.url}{location}{separator}digest={digest}")
        message = f"{second.name} refused the handed-over upload:\n{second.logTail()}"
        self.assertEqual(finished.status, 201, message + repr(finished.body))
        pulled = http.request("GET", f"{first.url}/v2/hand/over/blobs/{digest}")
        self.assertEqual((pulled.status, len(pulled.body)), (200, len(data)))

    def test_distribution_begins_registryd_finishes(self) -> None:
        root = self.workDirectory() / "root"
        self.handOver(self.start("distribution", root), self.start("registryd", root), root)

    def test_registryd_begins_distribution_finishes(self) -> None:
        root = self.workDirectory() / "root"
        self.handOver(self.start("registryd", root), self.start("distribution", root), root)

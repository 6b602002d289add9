"""
End-to-end: the ORAS Python SDK pushes and pulls OCI artifacts to a real C{twistd registryd} process.

ORAS uploads with several C{PATCH} requests carrying C{Content-Range} (a true chunked upload, unlike
skopeo's single PATCH), pushes manifests with a custom config media type, and attaches artifacts to
an image with C{subject}, which the referrers API must then list.
"""

from __future__ import annotations

import hashlib
import json
import random

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.layouts import MiB
from tests.support.tools import requireModule

SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
PAYLOAD_TYPE = "application/vnd.example.payload.v1+json"


class ORASTests(RegistryTestCase):
    """The oras SDK against registryd."""

    def setUp(self) -> None:
        requireModule("oras", "oras")
        self.oras = requireModule("oras.client", "oras")
        self.oci = requireModule("oras.oci", "oras")
        self.registry = self.startRegistryd(self.workDirectory() / "root")
        self.client = self.oras.OrasClient(hostname=self.registry.host, insecure=True)
        self.random = random.Random(23)
        self.work = self.workDirectory()

    def writeFile(self, name: str, size: int) -> bytes:
        """Write C{size} random bytes to C{name} in the work directory; return them."""
        data = self.random.randbytes(size)
        (self.work / name).write_bytes(data)
        return data

    def push(self, target: str, files: list[str], configType: str, **kwargs):
        """Push files as an artifact whose config has media type C{configType}; return the PUT response."""
        config = self.work / "config.json"
        config.write_text(json.dumps({"kind": configType}))
        return self.client.push(
            target=f"{self.registry.host}/{target}",
            files=[str(self.work / name) for name in files],
            manifest_config=f"{config}:{configType}",
            disable_path_validation=True,
            **kwargs,
        )

    def manifest(self, repository: str, reference: str) -> http.Response:
        """GET a manifest over HTTP, accepting every OCI and Docker manifest type."""
        return http.request(
            "GET",
            f"{self.registry.url}/v2/{repository}/manifests/{reference}",
            headers={"Accept": http.MANIFEST_ACCEPT},
        )

    def test_chunked_push_and_pull(self) -> None:
        """Files pushed in 1 MiB PATCH chunks pull back byte-identical; the tag is listed."""
        first = self.writeFile("first.bin", 3 * MiB + 123)
        second = self.writeFile("second.bin", 1000)
        response = self.push(
            "oras/artifact:v1", ["first.bin", "second.bin"], PAYLOAD_TYPE, do_chunked=True, chunk_size=MiB
        )
        self.assertEqual(response.status_code, 201, self.registry.logTail())
        out = self.workDirectory()
        pulled = self.client.pull(target=f"{self.registry.host}/oras/artifact:v1", outdir=str(out))
        self.assertEqual(sorted(p.rsplit("/", 1)[1] for p in pulled), ["first.bin", "second.bin"])
        self.assertEqual((out / "first.bin").read_bytes(), first)
        self.assertEqual((out / "second.bin").read_bytes(), second)
        self.assertEqual(self.client.get_tags(f"{self.registry.host}/oras/artifact"), ["v1"])
        manifest = self.manifest("oras/artifact", "v1")
        self.assertEqual(manifest.json()["config"]["mediaType"], PAYLOAD_TYPE)
        layer = manifest.json()["layers"][0]
        self.assertEqual(layer["digest"], "sha256:" + hashlib.sha256(first).hexdigest())

    def test_subject_listed_by_referrers(self) -> None:
        """An artifact pushed with a subject answers OCI-Subject and is listed, filtered, by referrers."""
        self.writeFile("payload.bin", 4096)
        self.push("oras/signed:v1", ["payload.bin"], PAYLOAD_TYPE)
        subjectResponse = self.manifest("oras/signed", "v1")
        subjectDigest = subjectResponse.headers["Docker-Content-Digest"]
        subject = self.oci.Subject(
            mediaType=subjectResponse.headers["Content-Type"],
            digest=subjectDigest,
            size=len(subjectResponse.body),
        )
        self.writeFile("signature.bin", 256)
        response = self.push("oras/signed:sig", ["signature.bin"], SIGNATURE_TYPE, subject=subject)
        self.assertEqual(response.status_code, 201, self.registry.logTail())
        self.assertEqual(response.headers.get("OCI-Subject"), subjectDigest)
        signatureDigest = response.headers["Docker-Content-Digest"]

        referrers = http.request("GET", f"{self.registry.url}/v2/oras/signed/referrers/{subjectDigest}")
        self.assertEqual(referrers.status, 200)
        self.assertEqual(referrers.headers["Content-Type"], "application/vnd.oci.image.index.v1+json")
        entries = referrers.json()["manifests"]
        self.assertEqual([entry["digest"] for entry in entries], [signatureDigest])
        self.assertEqual(entries[0]["artifactType"], SIGNATURE_TYPE)

        filtered = http.request(
            "GET", f"{self.registry.url}/v2/oras/signed/referrers/{subjectDigest}?artifactType={PAYLOAD_TYPE}"
        )
        self.assertEqual(filtered.json()["manifests"], [])
        self.assertEqual(filtered.headers.get("OCI-Filters-Applied"), "artifactType")

    def test_delete_tag(self) -> None:
        """oras delete removes the tagged manifest; the other tag stays."""
        self.writeFile("data.bin", 2048)
        self.push("oras/deleting:keep", ["data.bin"], PAYLOAD_TYPE)
        self.writeFile("data.bin", 4096)
        self.push("oras/deleting:drop", ["data.bin"], PAYLOAD_TYPE)
        self.assertTrue(self.client.delete_tag(f"{self.registry.host}/oras/deleting", "drop"))
        self.assertEqual(self.client.get_tags(f"{self.registry.host}/oras/deleting"), ["keep"])
        self.assertEqual(self.manifest("oras/deleting", "drop").status, 404)

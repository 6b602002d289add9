"""
The OCI distribution-spec conformance workflows (pull, push, content discovery, content
management, cross-repository mount), replayed against a registry on a real loopback socket.

The Go suite cannot be fetched here, so these tests send the requests it sends and accept
exactly the answers it accepts (statuses, headers, bodies), written in our own words. Each
test sets up what it needs; L{ConformanceWorkflowsMixin.test_workflows_in_suite_order} also
replays the four workflows in one repository in the suite's order, since each workflow's
teardown leaves state the next one sees. The module runs on the in-memory and the
filesystem drivers.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from registryd.api.app import RegistryAPI
from registryd.api.settings import APISettings
from registryd.registry.core import Registry
from registryd.storage.filesystem import FilesystemDriver
from registryd.storage.inmemory import InMemoryDriver
from registryd.web.site import RegistrySite

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCTETS = "application/octet-stream"

#: The error codes the suite accepts in an error body (its list, in its order).
SPEC_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
}

ANNOTATION = "org.opencontainers.conformance.test"
TYPE_A = "application/vnd.example.conformance.alpha"
TYPE_B = "application/vnd.example.conformance.beta"
TYPE_INDEX = "application/vnd.example.conformance.collection"
INVALID_REFERENCE = ".INVALID_MANIFEST_NAME"
NAMESPACE = "conformance/repo"
#: As the suite's default: one path component, a repository that does not exist yet.
CROSS_NAMESPACE = f"conformance-{uuid.uuid4()}"


def sha256(data: bytes) -> str:
    """The sha256 digest text of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def asyncTest(method: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Deferred]:
    """Let trial run an C{async def} test method."""

    @functools.wraps(method)
    def run(self: TestCase) -> Deferred:
        return Deferred.fromCoroutine(method(self))

    return run


def gzippedTar(name: str, content: bytes) -> bytes:
    """A small reproducible .tar.gz holding one file, as the suite's layer is."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def pretty(document: dict) -> bytes:
    """JSON indented with tabs, as Go's MarshalIndent writes the suite's documents."""
    return json.dumps(document, indent="\t").encode("utf-8")


def descriptor(mediaType: str, content: bytes, **extra: Any) -> dict:
    """A descriptor of content."""
    return {"mediaType": mediaType, "digest": sha256(content), "size": len(content), **extra}


class TestData:
    """
    Content shaped like the suite's: one config and one image manifest per workflow (the
    config descriptor carries C{data} and a field no spec knows), a gzip layer, a manifest
    without layers or C{mediaType}, chunked and streamed blobs, and the referrers set.
    """

    def __init__(self) -> None:
        self.configs = [
            pretty(
                {
                    "author": base64.b32encode(os.urandom(10)).decode(),
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                }
            )
            for _ in range(5)
        ]
        self.layer = gzippedTar("test.txt", b"a layer for the conformance workflows\n")
        self.manifests = [self.imageManifest(config) for config in self.configs]
        self.emptyLayerManifest = pretty(
            {
                "schemaVersion": 2,
                "config": descriptor(OCI_CONFIG, self.configs[1], data=_b64(self.configs[1])),
                "layers": [],
            }
        )
        self.blobA = os.urandom(42)
        self.blobB = os.urandom(42)
        self.chunk1, self.chunk2 = self.blobB[:22], self.blobB[22:]
        self.dummyDigest = sha256(b"hello world")
        self.emptyJSON = b"{}"
        self.refBlobA = b"referrer blob alpha for the conformance workflows"
        self.refBlobB = b"referrer blob beta for the conformance workflows"
        subject = descriptor(OCI_MANIFEST, self.manifests[4])
        self.refAConfig = self.artifact(subject, "config a", config=descriptor(TYPE_A, self.refBlobA))
        self.refALayer = self.artifact(
            subject, "layer a", artifactType=TYPE_A, layers=[descriptor(TYPE_A, self.refBlobA)]
        )
        self.refBConfig = self.artifact(subject, "config b", config=descriptor(TYPE_B, self.refBlobB))
        self.refBLayer = self.artifact(
            subject, "layer b", artifactType=TYPE_B, layers=[descriptor(TYPE_B, self.refBlobB)]
        )
        # Its subject (manifests[3]) is not in the repository when it is pushed.
        self.refCLayer = self.artifact(
            descriptor(OCI_MANIFEST, self.manifests[3]),
            None,
            artifactType=TYPE_B,
            layers=[descriptor(TYPE_B, self.refBlobB)],
        )
        self.refIndex = pretty(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "artifactType": TYPE_INDEX,
                "manifests": [
                    descriptor(OCI_MANIFEST, self.refAConfig),
                    descriptor(OCI_MANIFEST, self.refALayer),
                ],
                "subject": subject,
                "annotations": {ANNOTATION: "index"},
            }
        )
        self.annotations = {
            sha256(content): json.loads(content)["annotations"][ANNOTATION]
            for content in (self.refAConfig, self.refALayer, self.refBConfig, self.refBLayer, self.refIndex)
        }

    def imageManifest(self, config: bytes) -> bytes:
        """An OCI image manifest of config and the layer, with a C{data} field and an unknown field."""
        configDescriptor = descriptor(
            OCI_CONFIG, config, data=_b64(config), newUnspecifiedField=_b64(b"hello world")
        )
        return pretty(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": configDescriptor,
                "layers": [descriptor(OCI_LAYER, self.layer)],
            }
        )

    def artifact(
        self,
        subject: dict,
        annotation: str | None,
        config: dict | None = None,
        artifactType: str | None = None,
        layers: list[dict] | None = None,
    ) -> bytes:
        """An artifact manifest naming subject; the empty JSON config and layer unless told."""
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifactType:
            document["artifactType"] = artifactType
        document["config"] = config or descriptor(OCI_EMPTY, self.emptyJSON)
        document["layers"] = layers or [descriptor(OCI_EMPTY, self.emptyJSON)]
        document["subject"] = subject
        if annotation:
            document["annotations"] = {ANNOTATION: annotation}
        return pretty(document)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Answer:
    """One finished exchange: status, headers and body."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self._headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of a response header, or None."""
        values = self._headers.getRawHeaders(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def errorCodes(self) -> list[str]:
        """The C{code} of each error in the body (empty when it is not an error document)."""
        try:
            return [e.get("code") for e in self.json().get("errors", [])]
        except (ValueError, AttributeError):
            return []

    def locationPath(self) -> str:
        """The Location's path and query, as the suite's client follows it whether absolute or not."""
        location = self.header("Location")
        assert location, "no Location header"
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")


class LoopbackRegistry:
    """A registry on a loopback port and a client that speaks as the suite's; subclasses pick the driver."""

    #: storage.delete.enabled for the registry under test (the content management workflow needs it).
    deleteEnabled = True

    def makeDriver(self) -> Any:
        """The storage driver under test."""
        raise NotImplementedError()

    @asyncTest
    async def setUp(self) -> None:
        self.data = TestData()
        registry = Registry(self.makeDriver(), deleteEnabled=self.deleteEnabled)
        site = RegistrySite(RegistryAPI(registry, APISettings()).resource())
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    # -- the client side, speaking as the suite's client does

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request (path, or a Location followed as the suite does) and read the whole answer."""
        url = urljoin(self.base, path)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # Go sends Content-Length: 0 on a body-less POST/PUT/PATCH
        headers = dict(headers or {})
        # Go's client, like treq, writes Content-Length from the body it sends, never from a hand-set header.
        declared = headers.pop("Content-Length", None)
        if declared is not None:
            self.assertEqual(int(declared), len(body or b""), "the test declares a wrong Content-Length")
        sent = {k: [v] for k, v in headers.items()}
        response = await treq.request(method, url, data=body, headers=sent, pool=self.pool)
        content = await treq.content(response)
        received = response.headers.copy()
        # twisted's client parser keeps Content-Length out of the headers; it is the response's length.
        if not received.hasHeader("Content-Length") and isinstance(response.length, int):
            received.setRawHeaders("Content-Length", [str(response.length)])
        return Answer(response.code, received, content)

    async def startUpload(self, repo: str = NAMESPACE) -> Answer:
        """C{POST /v2/<repo>/blobs/uploads/}: a new session."""
        answer = await self.send("POST", f"/v2/{repo}/blobs/uploads/")
        self.assertEqual(answer.status, 202, answer.body)
        self.assertTrue(answer.header("Location"))
        return answer

    async def pushBlob(self, data: bytes, repo: str = NAMESPACE) -> Answer:
        """POST then PUT C{?digest=} with the blob: the suite's setup step; any 2xx."""
        started = await self.startUpload(repo)
        answer = await self.send(
            "PUT",
            started.locationPath(),
            data,
            {"Content-Type": OCTETS, "Content-Length": str(len(data))},
            {"digest": sha256(data)},
        )
        self.assertTrue(200 <= answer.status < 300, (answer.status, answer.body))
        return answer

    async def putManifest(
        self, reference: str, content: bytes, mediaType: str = OCI_MANIFEST, repo: str = NAMESPACE
    ) -> Answer:
        """C{PUT /v2/<repo>/manifests/<reference>}."""
        return await self.send(
            "PUT", f"/v2/{repo}/manifests/{reference}", content, {"Content-Type": mediaType}
        )

    async def pushImage(self, index: int, reference: str, repo: str = NAMESPACE) -> Answer:
        """Push config[index], the layer and manifest[index] as reference; must answer 201."""
        await self.pushBlob(self.data.configs[index], repo)
        await self.pushBlob(self.data.layer, repo)
        answer = await self.putManifest(reference, self.data.manifests[index], repo=repo)
        self.assertEqual(answer.status, 201, answer.body)
        return answer

    async def tags(self, repo: str = NAMESPACE, **query: str) -> Answer:
        """C{GET /v2/<repo>/tags/list}."""
        return await self.send("GET", f"/v2/{repo}/tags/list", query=query or None)

    def assertSuccessOr(self, answer: Answer, *others: int) -> None:
        """The status is a 2xx or one of others (the suite's teardown checks)."""
        self.assertTrue(200 <= answer.status < 300 or answer.status in others, (answer.status, answer.body))


class ConformanceWorkflowsMixin(LoopbackRegistry):
    """The suite's workflows, one test per expectation."""

    # -- the base route

    @asyncTest
    async def test_base_route_is_200_with_api_version(self) -> None:
        answer = await self.send("GET", "/v2/")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.header("Docker-Distribution-API-Version"), "registry/2.0")

    # -- pull

    @asyncTest
    async def test_pull_head_nonexistent_blob_is_404(self) -> None:
        answer = await self.send("HEAD", f"/v2/{NAMESPACE}/blobs/{self.data.dummyDigest}")
        self.assertEqual(answer.status, 404)

    @asyncTest
    async def test_pull_get_nonexistent_blob_is_404(self) -> None:
        answer = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{self.data.dummyDigest}")
        self.assertEqual(answer.status, 404)
        self.assertIn("BLOB_UNKNOWN", answer.errorCodes())

    @asyncTest
    async def test_pull_head_existing_blob_is_200_with_digest_and_length(self) -> None:
        config = self.data.configs[0]
        await self.pushBlob(config)
        answer = await self.send("HEAD", f"/v2/{NAMESPACE}/blobs/{sha256(config)}")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.header("Docker-Content-Digest"), sha256(config))
        self.assertEqual(answer.header("Content-Length"), str(len(config)))
        self.assertEqual(answer.body, b"")

    @asyncTest
    async def test_pull_get_existing_blob_is_200_with_its_bytes(self) -> None:
        config = self.data.configs[0]
        await self.pushBlob(config)
        answer = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(config)}")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.body, config)
        self.assertEqual(answer.header("Content-Length"), str(len(config)))

    @asyncTest
    async def test_pull_head_invalid_manifest_name_is_404(self) -> None:
        await self.pushImage(0, "tagtest0")
        answer = await self.send("HEAD", f"/v2/{NAMESPACE}/manifests/{INVALID_REFERENCE}")
        self.assertEqual(answer.status, 404)

    @asyncTest
    async def test_pull_get_invalid_manifest_name_is_404(self) -> None:
        await self.pushImage(0, "tagtest0")
        answer = await self.send("GET", f"/v2/{NAMESPACE}/manifests/{INVALID_REFERENCE}")
        self.assertEqual(answer.status, 404)

    @asyncTest
    async def test_pull_head_manifest_by_tag_and_digest_is_200(self) -> None:
        await self.pushImage(0, "tagtest0")
        digest1 = sha256(self.data.manifests[1])
        await self.pushImage(1, digest1)
        for reference, digest in (
            ("tagtest0", sha256(self.data.manifests[0])),
            (sha256(self.data.manifests[0]), sha256(self.data.manifests[0])),
            (digest1, digest1),
        ):
            answer = await self.send(
                "HEAD", f"/v2/{NAMESPACE}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
            )
            self.assertEqual(answer.status, 200, reference)
            self.assertEqual(answer.header("Docker-Content-Digest"), digest)
            self.assertEqual(answer.header("Content-Type"), OCI_MANIFEST)
            self.assertEqual(answer.body, b"")

    @asyncTest
    async def test_pull_get_manifest_by_tag_and_digest_is_200_byte_for_byte(self) -> None:
        await self.pushImage(0, "tagtest0")
        content = self.data.manifests[0]
        for reference in ("tagtest0", sha256(content)):
            answer = await self.send(
                "GET", f"/v2/{NAMESPACE}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
            )
            self.assertEqual(answer.status, 200)
            self.assertEqual(answer.body, content)
            self.assertEqual(answer.header("Content-Type"), OCI_MANIFEST)
            self.assertEqual(answer.header("Content-Length"), str(len(content)))
            self.assertEqual(answer.header("Docker-Content-Digest"), sha256(content))

    @asyncTest
    async def test_pull_get_manifest_with_malformed_digest_is_400_with_spec_code_or_404(self) -> None:
        answer = await self.send(
            "GET",
            f"/v2/{NAMESPACE}/manifests/sha256:totallywrong",
            b"blablabla",
            {"Content-Type": OCI_MANIFEST},
        )
        self.assertIn(answer.status, (400, 404))
        if answer.status == 400:
            self.assertIn(answer.errorCodes()[0], SPEC_CODES)

    @asyncTest
    async def test_pull_teardown_deletes_manifests_then_blobs(self) -> None:
        await self.pushImage(0, "tagtest0")
        await self.pushImage(1, sha256(self.data.manifests[1]))
        for content in self.data.manifests[:2]:
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(content)}")
            self.assertSuccessOr(answer, 405)
        for blob in (self.data.configs[0], self.data.configs[1], self.data.layer):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertSuccessOr(answer, 404, 405)

    @asyncTest
    async def test_pull_teardown_deleting_blobs_before_manifests(self) -> None:
        """OCI_DELETE_MANIFEST_BEFORE_BLOBS=0: blobs first (2xx/404/405), then manifests (2xx/405)."""
        await self.pushImage(0, "tagtest0")
        await self.pushImage(1, sha256(self.data.manifests[1]))
        for blob in (self.data.configs[0], self.data.configs[1], self.data.layer):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertSuccessOr(answer, 404, 405)
        for content in self.data.manifests[:2]:
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(content)}")
            self.assertSuccessOr(answer, 405)

    # -- push: streamed

    @asyncTest
    async def test_streamed_patch_without_content_range_is_202(self) -> None:
        started = await self.startUpload()
        answer = await self.send("PATCH", started.locationPath(), self.data.blobA, {"Content-Type": OCTETS})
        self.assertEqual(answer.status, 202, answer.body)
        self.assertTrue(answer.header("Location"))
        self.assertEqual(answer.header("Range"), f"0-{len(self.data.blobA) - 1}")

    @asyncTest
    async def test_streamed_put_with_digest_after_patch_is_201_with_location(self) -> None:
        started = await self.startUpload()
        patched = await self.send("PATCH", started.locationPath(), self.data.blobA, {"Content-Type": OCTETS})
        self.assertEqual(patched.status, 202)
        answer = await self.send(
            "PUT", patched.locationPath(), None, {"Content-Type": OCTETS}, {"digest": sha256(self.data.blobA)}
        )
        self.assertEqual(answer.status, 201, answer.body)
        self.assertEqual(answer.header("Docker-Content-Digest"), sha256(self.data.blobA))
        served = await self.send("GET", answer.locationPath())
        self.assertEqual((served.status, served.body), (200, self.data.blobA))

    # -- push: monolithic

    @asyncTest
    async def test_monolithic_post_with_digest_is_201_and_blob_is_served(self) -> None:
        config = self.data.configs[1]
        answer = await self.send(
            "POST",
            f"/v2/{NAMESPACE}/blobs/uploads/",
            config,
            {"Content-Type": OCTETS, "Content-Length": str(len(config))},
            {"digest": sha256(config)},
        )
        # The suite takes 201 or 202 with a Location; GET of the blob must then agree.
        self.assertIn(answer.status, (201, 202))
        self.assertTrue(answer.header("Location"))
        fetched = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(config)}")
        self.assertEqual(fetched.status, 200 if answer.status == 201 else 404)

    @asyncTest
    async def test_monolithic_post_with_wrong_digest_is_400_and_leaves_nothing(self) -> None:
        answer = await self.send(
            "POST",
            f"/v2/{NAMESPACE}/blobs/uploads/",
            b"some bytes",
            {"Content-Type": OCTETS},
            {"digest": self.data.dummyDigest},
        )
        self.assertEqual(answer.status, 400)
        self.assertIn("DIGEST_INVALID", answer.errorCodes())
        fetched = await self.send("HEAD", f"/v2/{NAMESPACE}/blobs/{self.data.dummyDigest}")
        self.assertEqual(fetched.status, 404)

    @asyncTest
    async def test_post_without_body_yields_a_session_202(self) -> None:
        answer = await self.send("POST", f"/v2/{NAMESPACE}/blobs/uploads/")
        self.assertEqual(answer.status, 202)
        self.assertTrue(answer.header("Location"))
        self.assertTrue(answer.header("Docker-Upload-UUID"))
        self.assertEqual(answer.header("Range"), "0-0")

    @asyncTest
    async def test_monolithic_put_is_201_with_location_serving_the_bytes(self) -> None:
        for blob in (self.data.configs[1], self.data.layer):
            started = await self.startUpload()
            answer = await self.send(
                "PUT",
                started.locationPath(),
                blob,
                {"Content-Type": OCTETS, "Content-Length": str(len(blob))},
                {"digest": sha256(blob)},
            )
            self.assertEqual(answer.status, 201, answer.body)
            served = await self.send("GET", answer.locationPath())
            self.assertEqual((served.status, served.body), (200, blob))
            fetched = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertEqual(fetched.status, 200)

    @asyncTest
    async def test_empty_blob_push_and_pull(self) -> None:
        await self.pushBlob(b"")
        answer = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(b'')}")
        self.assertEqual((answer.status, answer.body), (200, b""))
        self.assertEqual(answer.header("Content-Length"), "0")

    @asyncTest
    async def test_upload_cancel_is_204_and_then_unknown(self) -> None:
        started = await self.startUpload()
        answer = await self.send("DELETE", started.locationPath())
        self.assertEqual(answer.status, 204)
        status = await self.send("GET", started.locationPath())
        self.assertEqual(status.status, 404)
        self.assertIn("BLOB_UPLOAD_UNKNOWN", status.errorCodes())

    # -- push: chunked

    async def patchChunk(self, location: str, chunk: bytes, start: int) -> Answer:
        """PATCH one chunk with its Content-Range and Content-Length, as the suite does."""
        return await self.send(
            "PATCH",
            location,
            chunk,
            {
                "Content-Type": OCTETS,
                "Content-Length": str(len(chunk)),
                "Content-Range": f"{start}-{start + len(chunk) - 1}",
            },
        )

    @asyncTest
    async def test_chunked_upload_out_of_order_patch_is_416(self) -> None:
        started = await self.startUpload()
        minimum = started.header("OCI-Chunk-Min-Length")
        if minimum is not None:
            self.assertLessEqual(int(minimum), len(self.data.chunk1), "the suite's chunks would be resized")
        answer = await self.patchChunk(started.locationPath(), self.data.chunk2, len(self.data.chunk1))
        self.assertEqual(answer.status, 416)

    @asyncTest
    async def test_chunked_first_patch_is_202_with_range(self) -> None:
        started = await self.startUpload()
        answer = await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        self.assertEqual(answer.status, 202, answer.body)
        self.assertEqual(answer.header("Range"), f"0-{len(self.data.chunk1) - 1}")
        self.assertTrue(answer.header("Location"))

    @asyncTest
    async def test_chunked_repeated_chunk_on_stale_url_is_416(self) -> None:
        started = await self.startUpload()
        first = await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        self.assertEqual(first.status, 202)
        again = await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        self.assertEqual(again.status, 416)

    @asyncTest
    async def test_chunked_get_on_stale_upload_url_is_204_with_range_and_location(self) -> None:
        started = await self.startUpload()
        await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        await self.patchChunk(started.locationPath(), self.data.chunk1, 0)  # the rejected retry
        answer = await self.send("GET", started.locationPath())
        self.assertEqual(answer.status, 204)
        self.assertTrue(answer.header("Location"))
        self.assertEqual(answer.header("Range"), f"0-{len(self.data.chunk1) - 1}")

    @asyncTest
    async def test_chunked_second_patch_then_put_completes_the_blob(self) -> None:
        started = await self.startUpload()
        await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        status = await self.send("GET", started.locationPath())
        second = await self.patchChunk(status.locationPath(), self.data.chunk2, len(self.data.chunk1))
        self.assertEqual(second.status, 202, second.body)
        self.assertTrue(second.header("Location"))
        answer = await self.send(
            "PUT",
            second.locationPath(),
            None,
            {"Content-Type": OCTETS, "Content-Length": "0"},
            {"digest": sha256(self.data.blobB)},
        )
        self.assertEqual(answer.status, 201, answer.body)
        self.assertTrue(answer.header("Location"))
        served = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(self.data.blobB)}")
        self.assertEqual((served.status, served.body), (200, self.data.blobB))

    @asyncTest
    async def test_chunked_put_carrying_the_final_chunk_with_content_range_is_201(self) -> None:
        started = await self.startUpload()
        first = await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        start = len(self.data.chunk1)
        answer = await self.send(
            "PUT",
            first.locationPath(),
            self.data.chunk2,
            {
                "Content-Type": OCTETS,
                "Content-Length": str(len(self.data.chunk2)),
                "Content-Range": f"{start}-{len(self.data.blobB) - 1}",
            },
            {"digest": sha256(self.data.blobB)},
        )
        self.assertEqual(answer.status, 201, answer.body)
        served = await self.send("GET", answer.locationPath())
        self.assertEqual(served.body, self.data.blobB)

    @asyncTest
    async def test_chunked_out_of_order_then_status_then_resume(self) -> None:
        """The rewrite's recovery: a 416, then GET for the Range, then carry on from there."""
        started = await self.startUpload()
        first = await self.patchChunk(started.locationPath(), self.data.chunk1, 0)
        wrong = await self.patchChunk(first.locationPath(), self.data.chunk2[5:], len(self.data.chunk1) + 5)
        self.assertEqual(wrong.status, 416)
        status = await self.send("GET", first.locationPath())
        self.assertEqual(status.status, 204)
        self.assertEqual(status.header("Range"), f"0-{len(self.data.chunk1) - 1}")
        second = await self.patchChunk(status.locationPath(), self.data.chunk2, len(self.data.chunk1))
        self.assertEqual(second.status, 202)
        done = await self.send("PUT", second.locationPath(), None, query={"digest": sha256(self.data.blobB)})
        self.assertEqual(done.status, 201, done.body)

    # -- push: cross-repository mount

    @asyncTest
    async def test_mount_without_from_of_unknown_blob_is_202_with_location(self) -> None:
        answer = await self.send(
            "POST", f"/v2/{CROSS_NAMESPACE}/blobs/uploads/", query={"mount": self.data.dummyDigest}
        )
        self.assertEqual(answer.status, 202, answer.body)
        self.assertTrue(answer.locationPath().startswith(f"/v2/{CROSS_NAMESPACE}/blobs/uploads/"))

    @asyncTest
    async def test_mount_from_other_repository_is_201_at_the_blob_url(self) -> None:
        await self.pushBlob(self.data.blobA)
        answer = await self.send(
            "POST",
            f"/v2/{CROSS_NAMESPACE}/blobs/uploads/",
            query={"mount": sha256(self.data.blobA), "from": NAMESPACE},
        )
        self.assertEqual(answer.status, 201, answer.body)
        self.assertEqual(answer.locationPath(), f"/v2/{CROSS_NAMESPACE}/blobs/{sha256(self.data.blobA)}")
        served = await self.send("GET", answer.locationPath())
        self.assertEqual((served.status, served.body), (200, self.data.blobA))

    @asyncTest
    async def test_mount_from_repository_lacking_the_blob_is_202_upload(self) -> None:
        await self.pushBlob(self.data.blobA, repo="conformance/other")
        answer = await self.send(
            "POST",
            f"/v2/{CROSS_NAMESPACE}/blobs/uploads/",
            query={"mount": sha256(self.data.blobA), "from": NAMESPACE},
        )
        self.assertEqual(answer.status, 202, answer.body)
        self.assertTrue(answer.locationPath().startswith(f"/v2/{CROSS_NAMESPACE}/blobs/uploads/"))

    @asyncTest
    async def test_mount_without_from_of_known_blob_is_201_or_202(self) -> None:
        """OCI_AUTOMATIC_CROSSMOUNT: either answer is allowed, but it must be a consistent one."""
        await self.pushBlob(self.data.blobA)
        answer = await self.send(
            "POST", f"/v2/{CROSS_NAMESPACE}/blobs/uploads/", query={"mount": sha256(self.data.blobA)}
        )
        self.assertIn(answer.status, (201, 202))
        if answer.status == 201:
            self.assertEqual(answer.locationPath(), f"/v2/{CROSS_NAMESPACE}/blobs/{sha256(self.data.blobA)}")
            served = await self.send("GET", answer.locationPath())
            self.assertEqual(served.status, 200)
        else:
            self.assertTrue(answer.locationPath().startswith(f"/v2/{CROSS_NAMESPACE}/blobs/uploads/"))

    # -- push: manifests

    @asyncTest
    async def test_manifest_get_nonexistent_is_404(self) -> None:
        await self.pushImage(1, "test0")
        for reference in ("nosuchtag", sha256(self.data.manifests[2])):
            answer = await self.send("GET", f"/v2/{NAMESPACE}/manifests/{reference}")
            self.assertEqual(answer.status, 404)
            self.assertIn("MANIFEST_UNKNOWN", answer.errorCodes())

    @asyncTest
    async def test_manifest_put_under_four_tags_is_201_with_location_each_time(self) -> None:
        await self.pushBlob(self.data.configs[1])
        await self.pushBlob(self.data.layer)
        for i in range(4):
            answer = await self.putManifest(f"test{i}", self.data.manifests[1])
            self.assertEqual(answer.status, 201, answer.body)
            self.assertTrue(answer.header("Location"))
            self.assertEqual(answer.header("Docker-Content-Digest"), sha256(self.data.manifests[1]))
        fetched = await self.send(
            "GET",
            f"/v2/{NAMESPACE}/manifests/{sha256(self.data.manifests[1])}",
            headers={"Accept": OCI_MANIFEST},
        )
        self.assertEqual(fetched.status, 200)

    @asyncTest
    async def test_manifest_put_location_serves_the_manifest(self) -> None:
        answer = await self.pushImage(1, "test0")
        served = await self.send(
            "GET", answer.locationPath(), headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
        )
        self.assertEqual(served.status, 200)
        self.assertEqual(served.body, self.data.manifests[1])
        self.assertEqual(served.header("Content-Type"), OCI_MANIFEST)

    @asyncTest
    async def test_manifest_with_no_layers_and_no_media_type_is_201(self) -> None:
        await self.pushBlob(self.data.configs[1])
        answer = await self.putManifest("emptylayer", self.data.emptyLayerManifest)
        self.assertEqual(answer.status, 201, answer.body)
        self.assertTrue(answer.header("Location"))
        digest = sha256(self.data.emptyLayerManifest)
        deleted = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{digest}")
        self.assertSuccessOr(deleted, 405)

    @asyncTest
    async def test_manifest_put_with_missing_blobs_is_400_manifest_blob_unknown(self) -> None:
        answer = await self.putManifest("orphan", self.data.manifests[2])
        self.assertEqual(answer.status, 400)
        self.assertIn("MANIFEST_BLOB_UNKNOWN", answer.errorCodes())

    @asyncTest
    async def test_push_teardown_deleting_a_manifest_removes_its_tags(self) -> None:
        await self.pushBlob(self.data.configs[1])
        await self.pushBlob(self.data.layer)
        for i in range(4):
            await self.putManifest(f"test{i}", self.data.manifests[1])
        deleted = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(self.data.manifests[1])}")
        self.assertEqual(deleted.status, 202)
        for i in range(4):
            gone = await self.send("GET", f"/v2/{NAMESPACE}/manifests/test{i}")
            self.assertEqual(gone.status, 404)
        listed = await self.tags()
        self.assertEqual(listed.status, 200)
        self.assertEqual(listed.json()["tags"] or [], [])
        for blob in (self.data.configs[1], self.data.layer):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertSuccessOr(answer, 404, 405)

    # -- content discovery: tags

    async def pushDiscoveryTags(self) -> list[str]:
        """The discovery setup: manifests[2] under test0..test3 and manifests[4] under tagtest0."""
        await self.pushImage(2, "test0")
        for i in range(1, 4):
            answer = await self.putManifest(f"test{i}", self.data.manifests[2])
            self.assertEqual(answer.status, 201)
        await self.pushImage(4, "tagtest0")
        return ["tagtest0", "test0", "test1", "test2", "test3"]

    @asyncTest
    async def test_tags_list_is_200(self) -> None:
        expected = await self.pushDiscoveryTags()
        answer = await self.tags()
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.json(), {"name": NAMESPACE, "tags": expected})

    @asyncTest
    async def test_tags_list_is_limited_by_n(self) -> None:
        expected = await self.pushDiscoveryTags()
        answer = await self.tags(n="2")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.json()["tags"], expected[:2])
        link = answer.header("Link")
        self.assertIsNotNone(link)
        self.assertIn('rel="next"', link)

    @asyncTest
    async def test_tags_list_starts_after_last(self) -> None:
        expected = await self.pushDiscoveryTags()
        first = await self.tags(n="2")
        last = first.json()["tags"][-1]
        answer = await self.tags(n="2", last=last)
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.json()["tags"], expected[2:4])
        rest = await self.tags(n="2", last=expected[3])
        self.assertEqual(rest.json()["tags"], expected[4:])
        self.assertIsNone(rest.header("Link"))

    @asyncTest
    async def test_tags_list_follows_link_to_the_end(self) -> None:
        expected = await self.pushDiscoveryTags()
        seen: list[str] = []
        path: str | None = f"/v2/{NAMESPACE}/tags/list?n=2"
        while path:
            answer = await self.send("GET", path)
            self.assertEqual(answer.status, 200)
            seen.extend(answer.json()["tags"])
            link = answer.header("Link")
            path = link.split(";", 1)[0].strip().strip("<>") if link else None
        self.assertEqual(seen, expected)

    # -- content discovery: referrers

    async def pushReferrers(self) -> dict[str, Answer]:
        """The suite's referrers setup, in its order: some referrers before their subject exists."""
        data = self.data
        await self.pushBlob(data.emptyJSON)
        await self.pushBlob(data.refBlobA)
        answers = {
            "aConfig": await self.putManifest(sha256(data.refAConfig), data.refAConfig),
            "aLayer": await self.putManifest(sha256(data.refALayer), data.refALayer),
            "index": await self.putManifest(sha256(data.refIndex), data.refIndex, OCI_INDEX),
        }
        await self.pushImage(4, "tagtest0")
        await self.pushBlob(data.refBlobB)
        answers["bConfig"] = await self.putManifest(sha256(data.refBConfig), data.refBConfig)
        answers["bLayer"] = await self.putManifest(sha256(data.refBLayer), data.refBLayer)
        answers["cLayer"] = await self.putManifest(sha256(data.refCLayer), data.refCLayer)
        return answers

    async def referrers(self, digest: str, **query: str) -> Answer:
        """C{GET /v2/<name>/referrers/<digest>}; always 200 with an OCI index."""
        answer = await self.send("GET", f"/v2/{NAMESPACE}/referrers/{digest}", query=query or None)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.header("Content-Type"), OCI_INDEX)
        index = answer.json()
        self.assertEqual((index["schemaVersion"], index["mediaType"]), (2, OCI_INDEX))
        return answer

    @asyncTest
    async def test_referrers_manifest_put_with_missing_subject_answers_oci_subject(self) -> None:
        answers = await self.pushReferrers()
        subject = sha256(self.data.manifests[4])
        for key in ("aConfig", "aLayer", "index", "bConfig", "bLayer"):
            self.assertTrue(200 <= answers[key].status < 300, (key, answers[key].body))
            self.assertEqual(answers[key].header("OCI-Subject"), subject, key)
        self.assertEqual(answers["cLayer"].status, 201, answers["cLayer"].body)
        self.assertEqual(answers["cLayer"].header("OCI-Subject"), sha256(self.data.manifests[3]))

    @asyncTest
    async def test_referrers_of_unknown_digest_is_an_empty_index(self) -> None:
        answer = await self.referrers(self.data.dummyDigest)
        self.assertEqual(answer.json()["manifests"], [])

    @asyncTest
    async def test_referrers_list_every_referrer_with_its_annotations(self) -> None:
        await self.pushReferrers()
        manifests = (await self.referrers(sha256(self.data.manifests[4]))).json()["manifests"]
        self.assertEqual(len(manifests), 5)
        self.assertEqual({m["digest"] for m in manifests}, set(self.data.annotations))
        for entry in manifests:
            self.assertEqual(entry["annotations"], {ANNOTATION: self.data.annotations[entry["digest"]]})
        types = {m["digest"]: (m["mediaType"], m.get("artifactType")) for m in manifests}
        self.assertEqual(types[sha256(self.data.refAConfig)], (OCI_MANIFEST, TYPE_A))
        self.assertEqual(types[sha256(self.data.refALayer)], (OCI_MANIFEST, TYPE_A))
        self.assertEqual(types[sha256(self.data.refIndex)], (OCI_INDEX, TYPE_INDEX))
        sizes = {m["digest"]: m["size"] for m in manifests}
        self.assertEqual(sizes[sha256(self.data.refIndex)], len(self.data.refIndex))

    @asyncTest
    async def test_referrers_artifact_type_filter(self) -> None:
        await self.pushReferrers()
        answer = await self.referrers(sha256(self.data.manifests[4]), artifactType=TYPE_A)
        manifests = answer.json()["manifests"]
        if answer.header("OCI-Filters-Applied") is None:
            self.assertEqual(len(manifests), 5)
        else:
            self.assertEqual(answer.header("OCI-Filters-Applied"), "artifactType")
            self.assertEqual(
                {m["digest"] for m in manifests}, {sha256(self.data.refAConfig), sha256(self.data.refALayer)}
            )
            for entry in manifests:
                self.assertEqual(entry["annotations"], {ANNOTATION: self.data.annotations[entry["digest"]]})

    @asyncTest
    async def test_referrers_of_missing_subject_list_its_referrer(self) -> None:
        await self.pushReferrers()
        manifests = (await self.referrers(sha256(self.data.manifests[3]))).json()["manifests"]
        self.assertEqual([m["digest"] for m in manifests], [sha256(self.data.refCLayer)])

    @asyncTest
    async def test_discovery_teardown_blob_deletes_after_manifests_are_2xx(self) -> None:
        """Teardown deletes every manifest (and tagtest0 passed where a digest goes), then blobs: 2xx only."""
        await self.pushDiscoveryTags()
        await self.pushReferrers()
        data = self.data
        for reference in (
            sha256(data.refIndex),
            sha256(data.manifests[2]),
            sha256(data.manifests[4]),
            sha256(data.refAConfig),
            sha256(data.refALayer),
            "tagtest0",
            sha256(data.refBConfig),
            sha256(data.refBLayer),
            sha256(data.refCLayer),
        ):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{reference}")
            self.assertSuccessOr(answer, 404, 405)
        for blob in (data.configs[2], data.layer):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertSuccessOr(answer, 405)
        for blob in (data.configs[4], data.refBlobA, data.refBlobB, data.emptyJSON):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertSuccessOr(answer, 404, 405)
        gone = await self.referrers(sha256(data.manifests[4]))
        self.assertEqual(gone.json()["manifests"], [])

    # -- content management

    @asyncTest
    async def test_delete_tag_is_202(self) -> None:
        await self.pushImage(3, "tagtest0")
        answer = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/tagtest0")
        self.assertEqual(answer.status, 202, answer.body)
        gone = await self.send("GET", f"/v2/{NAMESPACE}/manifests/tagtest0")
        self.assertEqual(gone.status, 404)
        kept = await self.send("GET", f"/v2/{NAMESPACE}/manifests/{sha256(self.data.manifests[3])}")
        self.assertEqual(kept.status, 200)

    @asyncTest
    async def test_delete_manifest_by_digest_after_its_tag_is_202_then_404(self) -> None:
        await self.pushImage(3, "tagtest0")
        await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/tagtest0")
        digest = sha256(self.data.manifests[3])
        answer = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{digest}")
        self.assertIn(answer.status, (202, 404))
        fetched = await self.send("GET", f"/v2/{NAMESPACE}/manifests/{digest}")
        self.assertEqual(fetched.status, 404)
        again = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{digest}")
        self.assertEqual(again.status, 404)

    @asyncTest
    async def test_tags_list_after_deleting_every_tag_is_200_and_shorter(self) -> None:
        await self.pushImage(3, "tagtest0")
        before = await self.tags()
        self.assertEqual(before.status, 200)
        count = len(before.json()["tags"])
        await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/tagtest0")
        await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(self.data.manifests[3])}")
        after = await self.tags()
        self.assertEqual(after.status, 200, after.body)
        self.assertLess(len(after.json()["tags"] or []), count)

    @asyncTest
    async def test_delete_blob_is_202_then_get_is_404(self) -> None:
        await self.pushImage(3, "tagtest0")
        await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/tagtest0")
        await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(self.data.manifests[3])}")
        for blob in (self.data.configs[3], self.data.layer):
            answer = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")
            self.assertEqual(answer.status, 202, answer.body)
        fetched = await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(self.data.configs[3])}")
        self.assertEqual(fetched.status, 404)
        again = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(self.data.configs[3])}")
        self.assertEqual(again.status, 404)

    # -- error codes

    @asyncTest
    async def test_put_manifest_at_malformed_digest_is_400_with_spec_code(self) -> None:
        answer = await self.putManifest("sha256:totallywrong", b"blablabla")
        self.assertEqual(answer.status, 400)
        codes = answer.errorCodes()
        self.assertTrue(codes)
        self.assertIn(codes[0], SPEC_CODES)

    @asyncTest
    async def test_put_invalid_manifest_json_is_400_manifest_invalid(self) -> None:
        answer = await self.putManifest("broken", b"blablabla")
        self.assertEqual(answer.status, 400)
        self.assertIn(answer.errorCodes()[0], {"MANIFEST_INVALID", "MANIFEST_UNVERIFIED"})

    @asyncTest
    async def test_error_bodies_are_spec_json(self) -> None:
        answer = await self.send("GET", f"/v2/{NAMESPACE}/manifests/nosuchtag")
        self.assertEqual(answer.status, 404)
        errors = answer.json()["errors"]
        self.assertEqual(errors[0]["code"], "MANIFEST_UNKNOWN")
        self.assertIsInstance(errors[0]["message"], str)

    # -- what the suite's rewrite adds: other digests, indexes

    @asyncTest
    async def test_sha512_blob_push_and_pull(self) -> None:
        blob = os.urandom(300)
        digest = "sha512:" + hashlib.sha512(blob).hexdigest()
        started = await self.startUpload()
        answer = await self.send(
            "PUT", started.locationPath(), blob, {"Content-Type": OCTETS}, {"digest": digest}
        )
        self.assertEqual(answer.status, 201, answer.body)
        self.assertEqual(answer.header("Docker-Content-Digest"), digest)
        served = await self.send("GET", answer.locationPath())
        self.assertEqual((served.status, served.body), (200, blob))

    @asyncTest
    async def test_image_index_push_and_pull(self) -> None:
        await self.pushImage(0, sha256(self.data.manifests[0]))
        await self.pushImage(1, sha256(self.data.manifests[1]))
        index = pretty(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    descriptor(
                        OCI_MANIFEST,
                        self.data.manifests[0],
                        platform={"architecture": "amd64", "os": "linux"},
                    ),
                    descriptor(
                        OCI_MANIFEST,
                        self.data.manifests[1],
                        platform={"architecture": "arm64", "os": "linux"},
                    ),
                ],
            }
        )
        answer = await self.putManifest("multi", index, OCI_INDEX)
        self.assertEqual(answer.status, 201, answer.body)
        for method in ("GET", "HEAD"):
            served = await self.send(
                method, f"/v2/{NAMESPACE}/manifests/multi", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
            )
            self.assertEqual(served.status, 200)
            self.assertEqual(served.header("Content-Type"), OCI_INDEX)
            self.assertEqual(served.header("Content-Length"), str(len(index)))
            self.assertEqual(served.header("Docker-Content-Digest"), sha256(index))
            self.assertEqual(served.body, index if method == "GET" else b"")

    @asyncTest
    async def test_manifest_put_by_digest_that_does_not_match_is_400(self) -> None:
        await self.pushBlob(self.data.configs[0])
        await self.pushBlob(self.data.layer)
        answer = await self.putManifest(sha256(self.data.manifests[1]), self.data.manifests[0])
        self.assertEqual(answer.status, 400)
        self.assertIn(answer.errorCodes()[0], SPEC_CODES)

    @asyncTest
    async def test_large_manifest_under_4mib_is_accepted(self) -> None:
        """The rewrite pushes a manifest of about 3.9 MB (390 annotations of 10,000 bytes)."""
        await self.pushBlob(self.data.configs[0])
        await self.pushBlob(self.data.layer)
        document = json.loads(self.data.manifests[0])
        document["annotations"] = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
        content = pretty(document)
        self.assertLess(len(content), 4 * 1024 * 1024)
        answer = await self.putManifest("large-manifest", content)
        self.assertEqual(answer.status, 201, answer.body[:300])
        served = await self.send("GET", f"/v2/{NAMESPACE}/manifests/large-manifest")
        self.assertEqual((served.status, served.body), (200, content))

    @asyncTest
    async def test_nested_and_empty_indexes_are_accepted(self) -> None:
        await self.pushImage(0, sha256(self.data.manifests[0]))
        inner = pretty(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [descriptor(OCI_MANIFEST, self.data.manifests[0])],
            }
        )
        self.assertEqual((await self.putManifest(sha256(inner), inner, OCI_INDEX)).status, 201)
        outer = pretty(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_INDEX, inner)]}
        )
        answer = await self.putManifest("index-of-index", outer, OCI_INDEX)
        self.assertEqual(answer.status, 201, answer.body)
        empty = pretty({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        answer = await self.putManifest("empty-index", empty, OCI_INDEX)
        self.assertEqual(answer.status, 201, answer.body)
        served = await self.send(
            "GET", f"/v2/{NAMESPACE}/manifests/index-of-index", headers={"Accept": OCI_INDEX}
        )
        self.assertEqual((served.status, served.body), (200, outer))

    @asyncTest
    async def test_non_distributable_layers_need_not_be_pushed(self) -> None:
        """Layers with urls and a non-distributable media type are not in the registry; the push works."""
        await self.pushBlob(self.data.configs[0])
        await self.pushBlob(self.data.layer)
        foreign = os.urandom(256)
        document = json.loads(self.data.manifests[0])
        document["layers"].insert(
            0,
            {
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "digest": sha256(foreign),
                "size": 123456,
                "urls": [f"https://store.example.com/blobs/sha256/{sha256(foreign)[7:]}"],
            },
        )
        content = pretty(document)
        answer = await self.putManifest("non-distributable-image", content)
        self.assertEqual(answer.status, 201, answer.body)

    @asyncTest
    async def test_index_with_subject_is_a_referrer_of_an_index(self) -> None:
        await self.pushImage(0, sha256(self.data.manifests[0]))
        subjectIndex = pretty(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [descriptor(OCI_MANIFEST, self.data.manifests[0])],
            }
        )
        self.assertEqual((await self.putManifest("index", subjectIndex, OCI_INDEX)).status, 201)
        await self.pushBlob(self.data.emptyJSON)
        artifact = self.data.artifact(descriptor(OCI_INDEX, subjectIndex), "on an index", artifactType=TYPE_A)
        answer = await self.putManifest("tagged-artifact", artifact)
        self.assertEqual(answer.status, 201, answer.body)
        self.assertEqual(answer.header("OCI-Subject"), sha256(subjectIndex))
        listed = (await self.referrers(sha256(subjectIndex))).json()["manifests"]
        self.assertEqual([m["digest"] for m in listed], [sha256(artifact)])
        self.assertEqual(listed[0].get("artifactType"), TYPE_A)

    async def rangeOf(self, blob: bytes, value: str) -> Answer:
        """GET the blob with a Range header."""
        return await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}", headers={"Range": value})

    @asyncTest
    async def test_blob_range_requests_are_206_with_content_range(self) -> None:
        blob = os.urandom(2048)
        await self.pushBlob(blob)
        for value, start, end in (
            ("bytes=500-1499", 500, 1499),
            ("bytes=500-", 500, 2047),
            ("bytes=-500", 1548, 2047),
            ("bytes=2000-5000", 2000, 2047),
        ):
            answer = await self.rangeOf(blob, value)
            self.assertEqual(answer.status, 206, value)
            self.assertEqual(answer.body, blob[start : end + 1], value)
            self.assertEqual(answer.header("Content-Length"), str(end - start + 1), value)
            self.assertIn(
                answer.header("Content-Range"), (f"bytes {start}-{end}/2048", f"bytes {start}-{end}/*")
            )

    @asyncTest
    async def test_blob_unsatisfiable_ranges_are_416(self) -> None:
        blob = os.urandom(2048)
        await self.pushBlob(blob)
        for value in ("bytes=500-0", "bytes=5000-10000"):
            answer = await self.rangeOf(blob, value)
            self.assertEqual(answer.status, 416, value)

    @asyncTest
    async def test_empty_repository_answers(self) -> None:
        """Before anything is pushed: tag list 200 or 404, referrers an empty 200, blobs and manifests 404."""
        listed = await self.tags()
        self.assertIn(listed.status, (200, 404))
        self.assertEqual((await self.referrers(self.data.dummyDigest)).json()["manifests"], [])
        self.assertEqual(
            (await self.send("HEAD", f"/v2/{NAMESPACE}/blobs/{self.data.dummyDigest}")).status, 404
        )
        self.assertEqual((await self.send("GET", f"/v2/{NAMESPACE}/manifests/latest")).status, 404)

    @asyncTest
    async def test_chunked_three_chunks_of_1024_with_last_chunk_in_put(self) -> None:
        blob = os.urandom(3 * 1024 - 5)
        location = (await self.startUpload()).locationPath()
        for start in (0, 1024):
            answer = await self.patchChunk(location, blob[start : start + 1024], start)
            self.assertEqual(answer.status, 202, answer.body)
            location = answer.locationPath()
        last = blob[2048:]
        answer = await self.send(
            "PUT",
            location,
            last,
            {"Content-Type": OCTETS, "Content-Range": f"2048-{len(blob) - 1}"},
            {"digest": sha256(blob)},
        )
        self.assertEqual(answer.status, 201, answer.body)
        served = await self.send("GET", answer.locationPath())
        self.assertEqual(served.body, blob)

    @asyncTest
    async def test_bad_digest_at_the_end_of_chunked_and_streamed_uploads_is_400(self) -> None:
        blob = os.urandom(100)
        wrong = sha256(blob + b"oh no")
        started = await self.startUpload()
        chunked = await self.patchChunk(started.locationPath(), blob, 0)
        answer = await self.send("PUT", chunked.locationPath(), None, query={"digest": wrong})
        self.assertEqual(answer.status, 400)
        self.assertIn("DIGEST_INVALID", answer.errorCodes())
        started = await self.startUpload()
        streamed = await self.send("PATCH", started.locationPath(), blob, {"Content-Type": OCTETS})
        answer = await self.send("PUT", streamed.locationPath(), None, query={"digest": wrong})
        self.assertEqual(answer.status, 400)
        started = await self.startUpload()
        answer = await self.send(
            "PUT", started.locationPath(), blob, {"Content-Type": OCTETS}, {"digest": wrong}
        )
        self.assertEqual(answer.status, 400)
        for digest in (wrong, sha256(blob)):
            self.assertEqual((await self.send("HEAD", f"/v2/{NAMESPACE}/blobs/{digest}")).status, 404)

    @asyncTest
    async def test_tags_list_with_last_alone(self) -> None:
        expected = await self.pushDiscoveryTags()
        answer = await self.tags(last=expected[1])
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.json()["tags"], expected[2:])

    @asyncTest
    async def test_sha512_mount_from_other_repository_is_201(self) -> None:
        blob = os.urandom(512)
        digest = "sha512:" + hashlib.sha512(blob).hexdigest()
        started = await self.startUpload(CROSS_NAMESPACE)
        pushed = await self.send(
            "PUT", started.locationPath(), blob, {"Content-Type": OCTETS}, {"digest": digest}
        )
        self.assertEqual(pushed.status, 201, pushed.body)
        answer = await self.send(
            "POST", f"/v2/{NAMESPACE}/blobs/uploads/", query={"mount": digest, "from": CROSS_NAMESPACE}
        )
        self.assertEqual(answer.status, 201, answer.body)
        served = await self.send("GET", answer.locationPath())
        self.assertEqual((served.status, served.body), (200, blob))
        deleted = await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{digest}")
        self.assertEqual(deleted.status, 202)
        self.assertEqual((await self.send("HEAD", f"/v2/{NAMESPACE}/blobs/{digest}")).status, 404)
        self.assertEqual((await self.send("HEAD", f"/v2/{CROSS_NAMESPACE}/blobs/{digest}")).status, 200)

    # -- the four workflows in one repository, in the suite's order

    @asyncTest
    async def test_workflows_in_suite_order(self) -> None:
        data = self.data
        # Pull: setup, then teardown deleting manifests before blobs.
        await self.pushImage(0, "tagtest0")
        await self.pushImage(1, sha256(data.manifests[1]))
        for content in data.manifests[:2]:
            self.assertSuccessOr(
                await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(content)}"), 405
            )
        for blob in (data.configs[0], data.configs[1], data.layer):
            self.assertSuccessOr(await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}"), 404, 405)

        # Push: streamed, monolithic, chunked, mount, manifests, teardown.
        started = await self.startUpload()
        patched = await self.send("PATCH", started.locationPath(), data.blobA, {"Content-Type": OCTETS})
        self.assertEqual(patched.status, 202)
        put = await self.send("PUT", patched.locationPath(), None, query={"digest": sha256(data.blobA)})
        self.assertEqual(put.status, 201)
        await self.pushBlob(data.configs[1])
        await self.pushBlob(data.layer)
        mounted = await self.send(
            "POST",
            f"/v2/{CROSS_NAMESPACE}/blobs/uploads/",
            query={"mount": sha256(data.blobA), "from": NAMESPACE},
        )
        self.assertEqual(mounted.status, 201)
        for i in range(4):
            self.assertEqual((await self.putManifest(f"test{i}", data.manifests[1])).status, 201)
        self.assertEqual((await self.putManifest("emptylayer", data.emptyLayerManifest)).status, 201)
        for reference in (sha256(data.manifests[1]), sha256(data.emptyLayerManifest)):
            self.assertSuccessOr(await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{reference}"), 405)
        for blob in (data.configs[1], data.layer):
            self.assertSuccessOr(await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}"), 404, 405)

        # Content discovery.
        tags = await self.pushDiscoveryTags()
        await self.pushReferrers()
        listed = await self.tags()
        self.assertEqual((listed.status, listed.json()["tags"]), (200, tags))
        half = await self.tags(n=str(len(tags) // 2))
        self.assertEqual(len(half.json()["tags"]), len(tags) // 2)
        self.assertEqual(len((await self.referrers(sha256(data.manifests[4]))).json()["manifests"]), 5)
        for reference in (
            sha256(data.refIndex),
            sha256(data.manifests[2]),
            sha256(data.manifests[4]),
            sha256(data.refAConfig),
            sha256(data.refALayer),
            "tagtest0",
            sha256(data.refBConfig),
            sha256(data.refBLayer),
            sha256(data.refCLayer),
        ):
            self.assertSuccessOr(
                await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{reference}"), 404, 405
            )
        for blob in (data.configs[2], data.layer):
            self.assertSuccessOr(await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}"), 405)
        for blob in (data.configs[4], data.refBlobA, data.refBlobB, data.emptyJSON):
            self.assertSuccessOr(await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}"), 404, 405)

        # Content management.
        await self.pushImage(3, "tagtest0")
        before = await self.tags()
        self.assertEqual(before.status, 200, before.body)
        self.assertEqual(before.json()["tags"], ["tagtest0"])
        self.assertEqual((await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/tagtest0")).status, 202)
        deleted = await self.send("DELETE", f"/v2/{NAMESPACE}/manifests/{sha256(data.manifests[3])}")
        self.assertIn(deleted.status, (202, 404))
        after = await self.tags()
        self.assertEqual(after.status, 200, after.body)
        self.assertLess(len(after.json()["tags"] or []), 1)
        for blob in (data.configs[3], data.layer):
            self.assertIn(
                (await self.send("DELETE", f"/v2/{NAMESPACE}/blobs/{sha256(blob)}")).status, (202, 404)
            )
        self.assertEqual(
            (await self.send("GET", f"/v2/{NAMESPACE}/blobs/{sha256(data.configs[3])}")).status, 404
        )


class InMemoryConformanceTests(ConformanceWorkflowsMixin, TestCase):
    """The workflows over the in-memory driver."""

    def makeDriver(self) -> InMemoryDriver:
        return InMemoryDriver()


class FilesystemConformanceTests(ConformanceWorkflowsMixin, TestCase):
    """The workflows over the filesystem driver, in a fresh directory per test."""

    def makeDriver(self) -> FilesystemDriver:
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        return FilesystemDriver(root)


class DeletesDisabledTests(LoopbackRegistry, TestCase):
    """
    With storage.delete.enabled off (distribution's default), the teardowns of the pull, push and
    discovery workflows accept 405; the content management workflow does not (it wants 202 or 404
    from a manifest delete by digest), so the suite must be run with deletes enabled.
    """

    deleteEnabled = False

    def makeDriver(self) -> InMemoryDriver:
        return InMemoryDriver()

    @asyncTest
    async def test_deletes_answer_405_unsupported(self) -> None:
        await self.pushImage(0, "tagtest0")
        for path in (
            f"/v2/{NAMESPACE}/manifests/tagtest0",
            f"/v2/{NAMESPACE}/manifests/{sha256(self.data.manifests[0])}",
            f"/v2/{NAMESPACE}/blobs/{sha256(self.data.configs[0])}",
        ):
            answer = await self.send("DELETE", path)
            self.assertEqual(answer.status, 405, path)
            self.assertEqual(answer.errorCodes(), ["UNSUPPORTED"])
        kept = await self.send("GET", f"/v2/{NAMESPACE}/manifests/tagtest0")
        self.assertEqual(kept.status, 200)

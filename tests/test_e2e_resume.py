"""
End-to-end: resumable blob uploads against real C{twistd registryd} processes over raw HTTP.

An upload outlives the process that started it (restart, or two processes on one root and one
C{http.secret}), a wrong digest leaves nothing behind, a client that vanishes mid-body can resume,
and a large C{Transfer-Encoding: chunked} PATCH streams in as podman sends layers.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.processes import RegistryProcess
from tests.support.uploads import (
    MiB,
    PatternBlob,
    abandonedRequest,
    fileDigest,
    rangeEnd,
    registrydWithSecret,
    relocate,
    send,
    streamDigest,
    wrongDigest,
)

SECRET = "e2e-resume-shared-secret-0123456789"
REPOSITORY = "e2e/resume"


class ResumableUploadTests(RegistryTestCase):
    """Blob uploads that span requests, processes and broken connections."""

    def setUp(self) -> None:
        self.root = self.workDirectory() / "root"

    def startWithSecret(self, port: int | None = None) -> RegistryProcess:
        """Start registryd on the shared root with the shared secret; stopped when the test ends."""
        return self._started(registrydWithSecret(self.workDirectory(), self.root, SECRET, port))

    def blobsDirectory(self) -> Path:
        """Where the filesystem driver keeps blob data."""
        return self.root / "docker" / "registry" / "v2" / "blobs"

    def uploadsDirectory(self) -> Path:
        """Where the repository's uploads in progress live."""
        return self.root / "docker" / "registry" / "v2" / "repositories" / REPOSITORY / "_uploads"

    def startUpload(self, registry: RegistryProcess) -> str:
        """POST a new upload session; return its Location."""
        response = send(f"{registry.url}/v2/{REPOSITORY}/blobs/uploads/", "POST", {"Content-Length": "0"})
        self.assertEqual(response.status, 202, registry.logTail())
        return response.headers["Location"]

    def patch(self, location: str, blob: PatternBlob, start: int, end: int) -> str:
        """PATCH bytes [start, end) of the blob, streamed, with Content-Range; return the next Location."""
        response = send(
            location,
            "PATCH",
            {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}",
                "Content-Length": str(end - start),
            },
            blob.chunks(start, end),
        )
        self.assertEqual(response.status, 202, response.body)
        self.assertEqual(rangeEnd(response), end - 1)
        return response.headers["Location"]

    def status(self, location: str) -> http.Response:
        """GET the upload's status (204 with Range)."""
        response = send(location, "GET")
        self.assertEqual(response.status, 204, response.body)
        return response

    def finish(self, location: str, digest: str) -> http.Response:
        """PUT ?digest= with an empty body."""
        separator = "&" if "?" in location else "?"
        return send(f"{location}{separator}digest={digest}", "PUT", {"Content-Length": "0"})

    def assertBlobServed(self, registry: RegistryProcess, blob: PatternBlob) -> None:
        """The registry serves the blob with the original's digest and length, and stores it so on disk."""
        url = f"{registry.url}/v2/{REPOSITORY}/blobs/{blob.digest()}"
        self.assertEqual(streamDigest(url), (200, blob.digest(), blob.size), registry.logTail())
        hexadecimal = blob.digest().split(":", 1)[1]
        stored = self.blobsDirectory() / "sha256" / hexadecimal[:2] / hexadecimal / "data"
        self.assertEqual(fileDigest(stored), blob.digest())

    def test_upload_started_on_one_process_finishes_on_its_restarted_successor(self) -> None:
        """
        Chunks sent to process A survive A's SIGTERM: process B on the same root, secret and port
        reports the right Range at A's Location, takes the remaining chunks and completes the blob.
        """
        blob = PatternBlob(seed=1, size=5 * MiB + 12345)
        first = self.startWithSecret()
        location = self.startUpload(first)
        cut = 3 * MiB + 777
        location = self.patch(location, blob, 0, 2 * MiB)
        location = self.patch(location, blob, 2 * MiB, cut)
        self.assertIn(first.stop(), (0, -15), first.logTail())

        second = self.startWithSecret(port=first.port)
        self.assertEqual(rangeEnd(self.status(location)), cut - 1)
        location = self.patch(location, blob, cut, blob.size)
        response = self.finish(location, blob.digest())
        self.assertEqual(response.status, 201, second.logTail())
        self.assertEqual(response.headers["Docker-Content-Digest"], blob.digest())
        self.assertBlobServed(second, blob)
        self.assertEqual(list(self.uploadsDirectory().iterdir()), [])

    def test_two_processes_on_one_root_take_alternate_chunks_of_one_upload(self) -> None:
        """Two registryd processes running at once, one root and secret: chunks alternate between them."""
        blob = PatternBlob(seed=2, size=6 * MiB + 4321)
        processes = [self.startWithSecret(), self.startWithSecret()]
        location = self.startUpload(processes[0])
        bounds = [0, 1 * MiB, 2 * MiB + 1, 3 * MiB, 4 * MiB + 99, 5 * MiB, blob.size]
        for number, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
            target = processes[number % 2]
            here = relocate(location, target)
            self.assertEqual(rangeEnd(self.status(here)), max(start - 1, 0))
            location = self.patch(here, blob, start, end)
        # The process that did not take the last chunk completes the upload.
        finisher = processes[len(bounds) % 2]
        response = self.finish(relocate(location, finisher), blob.digest())
        self.assertEqual(response.status, 201, finisher.logTail())
        for process in processes:
            self.assertBlobServed(process, blob)

    def test_wrong_digest_at_put_is_refused_and_leaves_nothing(self) -> None:
        """PUT with a digest the bytes do not have: 400 DIGEST_INVALID, no blob stored, the upload gone."""
        blob = PatternBlob(seed=3, size=2 * MiB + 5)
        registry = self.startWithSecret()
        location = self.startUpload(registry)
        location = self.patch(location, blob, 0, blob.size)
        wrong = wrongDigest(blob.digest())
        response = self.finish(location, wrong)
        self.assertEqual(response.status, 400, registry.logTail())
        self.assertEqual(response.errorCodes(), ["DIGEST_INVALID"])
        stored = [path for path in self.blobsDirectory().rglob("*") if path.is_file()]
        self.assertEqual(stored, [])
        for digest in (wrong, blob.digest()):
            self.assertEqual(send(f"{registry.url}/v2/{REPOSITORY}/blobs/{digest}", "HEAD").status, 404)
        gone = send(location, "GET")
        self.assertEqual(gone.status, 404)
        self.assertEqual(gone.errorCodes(), ["BLOB_UPLOAD_UNKNOWN"])
        self.assertEqual(list(self.uploadsDirectory().iterdir()), [])

    def test_client_gone_mid_patch_leaves_a_resumable_upload(self) -> None:
        """
        A client drops its connection halfway through a PATCH body: the registry keeps serving, the
        blob is not visible, and the upload continues from the size GET reports.
        """
        blob = PatternBlob(seed=4, size=8 * MiB)
        registry = self.startWithSecret()
        location = self.startUpload(registry)
        sent = abandonedRequest(
            location,
            "PATCH",
            {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
            blob.chunks(0, 3 * MiB),
        )
        self.assertEqual(sent, 3 * MiB)
        self.assertEqual(http.request("GET", f"{registry.url}/v2/").status, 200, registry.logTail())
        self.assertTrue(registry.running())
        head = send(f"{registry.url}/v2/{REPOSITORY}/blobs/{blob.digest()}", "HEAD")
        self.assertEqual(head.status, 404)

        # The server may still be storing the last bytes it took in; wait until the size settles.
        previous, response = None, self.status(location)
        deadline = time.monotonic() + 20
        while rangeEnd(response) != previous and time.monotonic() < deadline:
            previous = rangeEnd(response)
            time.sleep(0.3)
            response = self.status(location)
        kept = rangeEnd(response) + 1
        self.assertGreater(kept, 1, "nothing of the abandoned body was kept")
        self.assertLessEqual(kept, sent)

        location = self.patch(response.headers["Location"], blob, kept, blob.size)
        response = self.finish(location, blob.digest())
        self.assertEqual(response.status, 201, registry.logTail())
        self.assertBlobServed(registry, blob)

    def test_chunked_transfer_encoding_patch_of_64_mib_streams_in(self) -> None:
        """One PATCH with Transfer-Encoding: chunked, no length, 64 MiB from a generator, as podman pushes."""
        blob = PatternBlob(seed=5, size=64 * MiB)
        registry = self.startWithSecret()
        location = self.startUpload(registry)
        response = send(
            location, "PATCH", {"Content-Type": "application/octet-stream"}, blob.chunks(), chunked=True
        )
        self.assertEqual(response.status, 202, registry.logTail())
        self.assertEqual(rangeEnd(response), blob.size - 1)
        response = self.finish(response.headers["Location"], blob.digest())
        self.assertEqual(response.status, 201, registry.logTail())
        head = send(f"{registry.url}/v2/{REPOSITORY}/blobs/{blob.digest()}", "HEAD")
        self.assertEqual(int(head.headers["Content-Length"]), blob.size)
        self.assertBlobServed(registry, blob)

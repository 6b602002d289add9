"""
Several registryd replicas on one object store: two registryd processes on different ports, one
Ceph radosgw bucket, one Redis blob descriptor cache and one http.secret, as behind a load
balancer. Uploads move between them, pushes to one are pullable from the other at once,
racing pushes of one layer end with one blob, and deletes are seen by both.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import treq
from twisted.internet.defer import Deferred, gatherResults

from registryd.registry.descriptorcache import descriptorKey, repositoryKey
from tests.support.cases import RegistryTestCase
from tests.support.processes import RegistryProcess
from tests.support.radosgw import Radosgw, sharedRadosgw
from tests.support.redis import RedisServer
from tests.support.s3 import createBucketNow, listKeys, newBucketName, signedRequest
from tests.support.s3cases import registrydOnS3
from tests.support.skopeo import Skopeo, compareLayouts
from tests.support.uploads import MiB, PatternBlob, relocate, send, streamDigest

SECRET = "replicas-share-this-secret"
REPOSITORY = "replicas/app"
LAYOUT = "registry/docker/registry/v2"


def withDigest(location: str, digest: str) -> str:
    """An upload URL with the digest query parameter that completes it."""
    return location + ("&" if "?" in location else "?") + f"digest={digest}"


class ReplicaTests(RegistryTestCase):
    """Two registryd processes sharing a radosgw bucket, a Redis and a secret."""

    def setUp(self) -> None:
        self.store: Radosgw = sharedRadosgw()
        self.bucket = newBucketName()
        createBucketNow(self.store, self.bucket)
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        self.first, self.second = (self.startReplica(name) for name in ("first", "second"))

    def startReplica(self, name: str) -> RegistryProcess:
        work = self.workDirectory() / name
        process = registrydOnS3(
            work,
            self.store,
            self.bucket,
            {"cache": {"blobdescriptor": "redis"}, "redirect": {"disable": True}},
            secret=SECRET,
            redis={"addr": self.redis.addr},
        )
        return self._started(process)

    def blobURL(self, registry: RegistryProcess, digest: str) -> str:
        return f"{registry.url}/v2/{REPOSITORY}/blobs/{digest}"

    def assertServedByBoth(self, blob: PatternBlob) -> None:
        """Both replicas stream the whole blob with the right digest."""
        for registry in (self.first, self.second):
            status, digest, length = streamDigest(self.blobURL(registry, blob.digest()))
            self.assertEqual((status, digest, length), (200, blob.digest(), blob.size), registry.logTail())

    def storedKeys(self) -> list[str]:
        return listKeys(self.store, self.bucket)

    def test_chunked_upload_started_on_one_finished_on_the_other(self) -> None:
        """POST and PATCH on the first, PATCH and PUT on the second: one blob both serve."""
        blob = PatternBlob(seed=61, size=13 * MiB + 4321)
        # Cuts off part boundaries (5 MiB parts), so the second replica resumes mid-part.
        cuts = [0, 7 * MiB + 17, blob.size]
        started = send(f"{self.first.url}/v2/{REPOSITORY}/blobs/uploads/", "POST")
        self.assertEqual(started.status, 202, self.first.logTail())
        location = started.headers["Location"]
        for registry, start, end in ((self.first, cuts[0], cuts[1]), (self.second, cuts[1], cuts[2])):
            patched = send(
                relocate(location, registry),
                "PATCH",
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{end - 1}",
                    "Content-Length": str(end - start),
                },
                blob.chunks(start, end),
            )
            self.assertEqual(patched.status, 202, registry.logTail())
            self.assertEqual(patched.headers["Range"], f"0-{end - 1}")
            location = patched.headers["Location"]
        finished = send(withDigest(relocate(location, self.second), blob.digest()), "PUT")
        self.assertEqual(finished.status, 201, self.second.logTail())
        self.assertEqual(finished.headers["Docker-Content-Digest"], blob.digest())
        self.assertServedByBoth(blob)
        self.assertEqual([k for k in self.storedKeys() if "/_uploads/" in k], [])

    def test_push_to_one_is_pullable_from_the_other_at_once(self) -> None:
        source, _, _ = self.buildLayout(seed=5)
        Skopeo(self.first).copy(f"oci:{source}:v1", Skopeo(self.first).reference(REPOSITORY, "v1"))
        out = self.workDirectory() / "out"
        second = Skopeo(self.second)
        second.copy(second.reference(REPOSITORY, "v1"), f"oci:{out}:pulled")
        self.assertEqual(compareLayouts(source, "v1", out, "pulled"), [], self.second.logTail())
        self.assertEqual(second.listTags(REPOSITORY), ["v1"])

    async def _push(self, registry: RegistryProcess, data: bytes, digest: str) -> tuple[int, str]:
        """POST, PATCH the whole layer, PUT with its digest; the PUT's status and digest header."""
        started = await treq.post(f"{registry.url}/v2/{REPOSITORY}/blobs/uploads/", persistent=False)
        await started.content()
        location = relocate(started.headers.getRawHeaders("Location")[0], registry)
        patched = await treq.patch(
            location, data=data, headers={"Content-Type": "application/octet-stream"}, persistent=False
        )
        await patched.content()
        location = relocate(patched.headers.getRawHeaders("Location")[0], registry)
        finished = await treq.put(withDigest(location, digest), persistent=False)
        await finished.content()
        return finished.code, (finished.headers.getRawHeaders("Docker-Content-Digest") or [""])[0]

    async def test_concurrent_pushes_of_one_layer_end_with_one_blob(self) -> None:
        """Four uploads of the same layer through each replica at once: all succeed, one blob stays."""
        blob = PatternBlob(seed=62, size=11 * MiB + 99)
        data = b"".join(blob.chunks(chunkSize=MiB))
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        racers = [
            Deferred.fromCoroutine(self._push(registry, data, digest))
            for _ in range(4)
            for registry in (self.first, self.second)
        ]
        results = await gatherResults(racers, consumeErrors=True)
        self.assertEqual(results, [(201, digest)] * 8, self.first.logTail() + self.second.logTail())
        self.assertServedByBoth(blob)
        keys = self.storedKeys()
        self.assertEqual(
            [k for k in keys if k.startswith(f"{LAYOUT}/blobs/") and k.endswith("/data")],
            [f"{LAYOUT}/blobs/sha256/{digest[7:9]}/{digest[7:]}/data"],
        )
        self.assertEqual([k for k in keys if "/_uploads/" in k], [])
        self.assertEqual(self.pendingMultipartUploads(), [])

    def pendingMultipartUploads(self) -> list[Any]:
        body = signedRequest(self.store, "GET", f"/{self.bucket}?uploads")
        return re.findall(r"<Key>([^<]*)</Key>", body.decode())

    def test_delete_through_one_is_not_served_by_the_other(self) -> None:
        """A blob deleted through the first replica is gone from the second, cache or not."""
        blob = PatternBlob(seed=63, size=300 * 1024)
        data = b"".join(blob.chunks())
        started = send(f"{self.first.url}/v2/{REPOSITORY}/blobs/uploads/", "POST")
        location = relocate(started.headers["Location"], self.first)
        pushed = send(
            withDigest(location, blob.digest()),
            "PUT",
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            data,
        )
        self.assertEqual(pushed.status, 201, self.first.logTail())
        # Both replicas stat the blob, so the shared cache knows it.
        for registry in (self.second, self.first, self.second):
            self.assertEqual(send(self.blobURL(registry, blob.digest()), "HEAD").status, 200)
        cached = self.redis.command("SISMEMBER", repositoryKey(REPOSITORY), blob.digest())
        self.assertEqual((self.redis.command("EXISTS", descriptorKey(blob.digest())), cached), (1, 1))
        deleted = send(self.blobURL(self.first, blob.digest()), "DELETE")
        self.assertEqual(deleted.status, 202, self.first.logTail())
        for registry in (self.second, self.first):
            self.assertEqual(send(self.blobURL(registry, blob.digest()), "HEAD").status, 404)
            got = send(self.blobURL(registry, blob.digest()), "GET")
            self.assertEqual(got.status, 404, registry.logTail())
            self.assertIn("BLOB_UNKNOWN", got.body.decode())
        self.assertEqual(self.redis.command("SISMEMBER", repositoryKey(REPOSITORY), blob.digest()), 0)

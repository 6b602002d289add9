"""
End-to-end: python-dxf, a second real client, against a real C{twistd registryd} process.

python-dxf uses the registry as a blob store: monolithic C{PUT} uploads from a file (Content-Length)
and from an iterator (C{Transfer-Encoding: chunked}), aliases as Docker v2.2 manifests, paginated
tag and catalog listings, cross-repository mounts and deletes.
"""

from __future__ import annotations

import hashlib
import random

from tests.support.cases import RegistryTestCase
from tests.support.layouts import MiB
from tests.support.tools import requireModule


def chunks(data: bytes, size: int = 256 * 1024):
    """Yield C{data} in pieces, so requests sends it with chunked transfer encoding."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class DXFTests(RegistryTestCase):
    """python-dxf against registryd."""

    def setUp(self) -> None:
        self.dxf = requireModule("dxf", "python-dxf")
        self.requests = requireModule("requests", "requests")
        self.registry = self.startRegistryd(self.workDirectory() / "root")
        self.random = random.Random(11)

    def client(self, repository: str):
        """A python-dxf client for C{repository} over plain HTTP."""
        return self.dxf.DXF(self.registry.host, repository, insecure=True, timeout=60)

    def pushFile(self, client, size: int) -> tuple[str, bytes]:
        """Push C{size} random bytes from a file; return the digest and the bytes."""
        data = self.random.randbytes(size)
        path = self.workDirectory() / "blob"
        path.write_bytes(data)
        return client.push_blob(str(path)), data

    def pulled(self, client, digest: str) -> bytes:
        """The whole blob C{digest} as python-dxf downloads it."""
        return b"".join(client.pull_blob(digest, chunk_size=MiB))

    def test_push_pull_and_alias(self) -> None:
        """Blobs pushed from a file and as a chunked stream come back identical under an alias."""
        client = self.client("dxf/store")
        fromFile, fileData = self.pushFile(client, 5 * MiB + 17)
        streamData = self.random.randbytes(3 * MiB + 5)
        streamDigest = "sha256:" + hashlib.sha256(streamData).hexdigest()
        pushed = client.push_blob(data=chunks(streamData), digest=streamDigest)
        self.assertEqual(pushed, streamDigest)
        self.assertEqual(fromFile, "sha256:" + hashlib.sha256(fileData).hexdigest())
        self.assertEqual(client.blob_size(fromFile), len(fileData))
        self.assertEqual(client.blob_size(streamDigest), len(streamData))
        client.set_alias("v1", fromFile, streamDigest)
        self.assertEqual(client.get_alias("v1"), [fromFile, streamDigest])
        self.assertEqual(self.pulled(client, fromFile), fileData)
        self.assertEqual(self.pulled(client, streamDigest), streamData)

    def test_paginated_tags_and_catalog(self) -> None:
        """Listing tags and repositories a page at a time (Link headers) yields every one once."""
        names = ["dxf/a", "dxf/b", "dxf/c/d"]
        tags = [f"t{number}" for number in range(5)]
        for name in names:
            client = self.client(name)
            digest, _ = self.pushFile(client, 1000)
            for tag in tags:
                client.set_alias(tag, digest)
        self.assertEqual(sorted(self.client("dxf/a").list_aliases(batch_size=2)), tags)
        base = self.dxf.DXFBase(self.registry.host, insecure=True, timeout=60)
        self.assertEqual(base.list_repos(batch_size=2), names)

    def test_mount_and_delete(self) -> None:
        """A blob mounted into another repository is served there; deleted aliases and blobs are gone."""
        source = self.client("dxf/source")
        digest, data = self.pushFile(source, 2 * MiB)
        target = self.client("dxf/target")
        self.assertEqual(target.mount_blob("dxf/source", digest), digest)
        self.assertEqual(self.pulled(target, digest), data)
        target.set_alias("v1", digest)
        target.del_alias("v1")
        error = self.assertRaises(self.requests.exceptions.HTTPError, target.get_alias, "v1")
        self.assertEqual(error.response.status_code, 404)
        target.del_blob(digest)
        error = self.assertRaises(self.requests.exceptions.HTTPError, target.blob_size, digest)
        self.assertEqual(error.response.status_code, 404)
        # The source repository keeps its link.
        self.assertEqual(source.blob_size(digest), len(data))

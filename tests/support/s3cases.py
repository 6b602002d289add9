"""
The s3 driver's tests against any S3 server, as mixins: C{tests/test_storage_s3.py} runs them on
moto, C{tests/test_storage_s3_radosgw.py} on Ceph radosgw. A test case names its server with
C{s3Server()}.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from registryd.storage.s3 import createDriver
from registryd.storage.s3.config import MiB
from registryd.testing.driversuite import StorageDriverTestsMixin
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydCommand,
    registrydEnvironment,
    writeConfig,
)
from tests.support.s3 import S3Server, clientEnvironment, createBucket, newBucketName, parameters


class S3ServerMixin:
    """A trial TestCase mixin making s3 drivers on fresh buckets of C{s3Server()}."""

    def s3Server(self) -> S3Server:
        """The server to test against (started on first use)."""
        raise NotImplementedError(f"{type(self).__name__} must define s3Server()")

    async def s3Driver(self, **extra: Any) -> Any:
        """A driver on a fresh bucket of the server, closed after the test."""
        server = self.s3Server()
        driver = createDriver(reactor, parameters(server, newBucketName(), **extra))
        self.addCleanup(driver.close)  # type: ignore[attr-defined]
        await createBucket(driver)
        return driver


class S3DriverSuiteMixin(S3ServerMixin, StorageDriverTestsMixin):
    """The shared driver suite, bucket root, 5 MiB parts."""

    def makeDriver(self) -> Deferred:
        return Deferred.fromCoroutine(self.s3Driver(chunksize=5 * MiB))


class S3RootDirectorySuiteMixin(S3ServerMixin, StorageDriverTestsMixin):
    """The shared driver suite under a rootdirectory, with a sibling prefix that must stay invisible."""

    async def _make(self) -> Any:
        driver = await self.s3Driver(rootdirectory="/registry/root")
        await driver.client.send("PUT", "registry/rootsibling", body=b"not ours")
        await driver.client.send("PUT", "elsewhere", body=b"not ours")
        return driver

    def makeDriver(self) -> Deferred:
        return Deferred.fromCoroutine(self._make())


def pattern(size: int, seed: int) -> bytes:
    """The driver suite's deterministic test bytes."""
    return StorageDriverTestsMixin.pattern(None, size, seed=seed)  # type: ignore[arg-type]


class S3MultipartTestsMixin(S3ServerMixin):
    """What the s3 driver does beyond the shared suite: multipart writes and copies, presigned URLs."""

    timeout = 300
    #: Whether the server honours max-uploads (moto answers every upload at once).
    serverPagesUploads = True

    async def test_multipart_write_resumed_across_writers(self) -> None:
        """Parts go out as they fill; a close mid-part and several resumes keep every byte."""
        driver = await self.s3Driver(chunksize=5 * MiB)
        data = pattern(23 * MiB + 321, seed=7)
        cuts = [0, 7 * MiB + 5, 7 * MiB + 9, 16 * MiB, 16 * MiB + 1, len(data)]
        append = False
        for start, end in zip(cuts, cuts[1:], strict=False):
            writer = await driver.writer("/uploads/blob", append=append)
            self.assertEqual(writer.size, start)
            for i in range(start, end, MiB):
                await writer.write(data[i : min(i + MiB, end)])
            self.assertLessEqual(len(writer._buffer), 5 * MiB)
            if end == len(data):
                await writer.commit()
            else:
                await writer.close()
                uploads = await driver.multipartUploads("uploads/blob")
                self.assertEqual(len(uploads), 1)
                parts = await driver.listParts("uploads/blob", uploads[0][1], "/uploads/blob")
                self.assertEqual(sum(p.size for p in parts), end)
            append = True
        content = await driver.getContent("/uploads/blob")
        self.assertEqual(hashlib.sha256(content).digest(), hashlib.sha256(data).digest())
        self.assertEqual(await driver.multipartUploads("uploads/blob"), [])

    async def test_list_parts_pages(self) -> None:
        """ListParts is read page by page (the server pages at max-parts)."""
        driver = await self.s3Driver()
        uploadID = await driver.createMultipartUpload("paged", "/paged")
        for number in range(1, 4):
            await driver.uploadPart("paged", uploadID, number, bytes([number]) * 10, "/paged")
        original = driver.client.send
        pages = []

        async def pagedSend(method: str, key: Any, query: Any = None, **kwargs: Any) -> Any:
            if query and "uploadId" in query and method == "GET":
                query = dict(query, **{"max-parts": 1})
                pages.append(query.get("part-number-marker"))
            return await original(method, key, query, **kwargs)

        driver.client.send = pagedSend
        parts = await driver.listParts("paged", uploadID, "/paged")
        self.assertEqual([p.number for p in parts], [1, 2, 3])
        self.assertEqual([p.size for p in parts], [10, 10, 10])
        self.assertEqual(len(pages), 3, pages)
        await driver.abortMultipartUpload("paged", uploadID, "/paged")

    async def test_listings_page(self) -> None:
        """ListObjectsV2 and ListMultipartUploads are followed page by page (two keys, one upload a page)."""
        driver = await self.s3Driver()
        names = [f"/dir/{name}" for name in ("a", "b", "c/d", "c/e", "f")]
        for name in names:
            await driver.putContent(name, name.encode())
        for number in range(3):
            writer = await driver.writer(f"/dir/upload{number}")
            await writer.write(b"partial")
            await writer.close()
        original = driver.client.send
        pages: list[str] = []

        async def pagedSend(method: str, key: Any, query: Any = None, **kwargs: Any) -> Any:
            if method == "GET" and key is None and query and "list-type" in query:
                query = dict(query, **{"max-keys": 2})
                pages.append("objects")
            elif method == "GET" and key is None and query and "uploads" in query:
                query = dict(query, **{"max-uploads": 1})
                pages.append("uploads")
            return await original(method, key, query, **kwargs)

        driver.client.send = pagedSend
        self.assertEqual(await driver.list("/dir"), ["/dir/a", "/dir/b", "/dir/c", "/dir/f"])
        uploads = await driver.multipartUploads("dir/")
        self.assertEqual(sorted(u[0] for u in uploads), ["dir/upload0", "dir/upload1", "dir/upload2"])
        visited: list[str] = []
        await driver.walk("/dir", lambda info: visited.append(info.path))
        self.assertEqual(visited, ["/dir/a", "/dir/b", "/dir/c", "/dir/c/d", "/dir/c/e", "/dir/f"])
        self.assertGreaterEqual(pages.count("objects"), 2 + 3)
        if self.serverPagesUploads:
            self.assertGreaterEqual(pages.count("uploads"), 3)
        await driver.delete("/dir")
        self.assertEqual(await driver.multipartUploads("dir/"), [])
        self.assertEqual(await driver.list("/"), [])

    async def test_move_large_object_uses_multipart_copy(self) -> None:
        driver = await self.s3Driver(
            multipartcopythresholdsize=5 * MiB,
            multipartcopychunksize=5 * MiB,
            multipartcopymaxconcurrency=2,
        )
        data = pattern(12 * MiB + 3, seed=9)
        writer = await driver.writer("/big/source")
        await writer.write(data)
        await writer.commit()
        sent = []
        original = driver.client.send

        async def recordingSend(method: str, key: Any, query: Any = None, **kwargs: Any) -> Any:
            sent.append((method, dict(query or {}), dict(kwargs.get("headers") or {})))
            return await original(method, key, query, **kwargs)

        driver.client.send = recordingSend
        await driver.move("/big/source", "/big/dest")
        copies = [
            h for m, q, h in sent if m == "PUT" and "partNumber" in q and "x-amz-copy-source-range" in h
        ]
        self.assertEqual(len(copies), 3)
        moved = await driver.getContent("/big/dest")
        self.assertEqual(hashlib.sha256(moved).digest(), hashlib.sha256(data).digest())
        self.assertEqual(await driver.list("/big"), ["/big/dest"])

    async def test_redirect_url_is_presigned_get(self) -> None:
        """The redirect URL is a presigned GET the server honours, fetched here with treq."""
        driver = await self.s3Driver()
        await driver.putContent("/blob/data", b"redirected bytes")
        url = await driver.redirectURL("GET", "/blob/data")
        self.assertIn("X-Amz-Signature=", url)
        response = await treq.get(url, persistent=False)
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), b"redirected bytes")

    async def test_delete_aborts_uploads_below(self) -> None:
        driver = await self.s3Driver()
        await driver.putContent("/_uploads/u1/startedat", b"now")
        writer = await driver.writer("/_uploads/u1/data")
        await writer.write(b"partial")
        await writer.close()
        await driver.delete("/_uploads/u1")
        self.assertEqual(await driver.multipartUploads(""), [])


def registrydOnS3(
    workDirectory: Path,
    server: S3Server,
    bucket: str,
    storage: dict | None = None,
    secret: str | None = None,
    **configExtra: Any,
) -> RegistryProcess:
    """
    A registryd process (not started) storing under /registry in C{bucket} of C{server}, deletes
    enabled, 5 MiB parts; C{storage} adds to the storage section, C{secret} is its http.secret,
    C{configExtra} adds to the config.
    """
    port = freePort()
    if secret is not None:
        configExtra["http"] = {"addr": f"127.0.0.1:{port}", "secret": secret}
    section = {
        "s3": parameters(server, bucket, rootdirectory="/registry", chunksize="5M"),
        "delete": {"enabled": True},
        **(storage or {}),
    }
    config = writeConfig(
        workDirectory, workDirectory / "unused", port, extra={"storage": section, **configExtra}
    )
    env = clientEnvironment(registrydEnvironment())
    return RegistryProcess(
        registrydCommand(config),
        port,
        workDirectory / "registryd.log",
        cwd=workDirectory,
        env=env,
        name="registryd",
    )

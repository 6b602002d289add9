"""
The s3 driver against a real moto S3 server on loopback: the shared driver suite, parameter
checks, multipart writes resumed across writers, multipart copies, presigned redirects.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.request import urlopen

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from registryd.config.errors import ConfigError
from registryd.storage.s3 import createDriver
from registryd.storage.s3.config import MiB
from registryd.storage.s3.streams import partSize
from registryd.testing.driversuite import StorageDriverTestsMixin
from tests.support.moto import createBucket, motoServer, newBucketName, parameters


async def s3Driver(testCase: TestCase, **extra: Any) -> Any:
    """A driver on a fresh bucket of the shared moto server, closed after the test."""
    server = motoServer()
    driver = createDriver(reactor, parameters(server, newBucketName(), **extra))
    testCase.addCleanup(driver.close)
    await createBucket(driver)
    return driver


class S3DriverSuiteTests(StorageDriverTestsMixin, TestCase):
    """The shared driver suite, bucket root."""

    def makeDriver(self) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(s3Driver(self, chunksize=5 * MiB))


class S3DriverRootDirectorySuiteTests(StorageDriverTestsMixin, TestCase):
    """The shared driver suite under a rootdirectory, with a sibling prefix that must stay invisible."""

    async def _make(self) -> Any:
        driver = await s3Driver(self, rootdirectory="/registry/root")
        await driver.client.send("PUT", "registry/rootsibling", body=b"not ours")
        await driver.client.send("PUT", "elsewhere", body=b"not ours")
        return driver

    def makeDriver(self) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self._make())


def params(**extra: Any) -> dict[str, Any]:
    """Minimal valid parameters plus extra (no server needed to check them)."""
    section = {"accesskey": "a", "secretkey": "b", "region": "us-east-1", "bucket": "my-bucket"}
    section.update(extra)
    return section


class S3ParameterTests(TestCase):
    """A bad parameter stops start-up naming storage.s3.<param>."""

    def assertRefused(self, parameters: dict[str, Any], key: str, name: str = "s3") -> None:
        with self.assertRaises(ConfigError) as caught:
            createDriver(reactor, parameters, name=name)
        self.assertEqual(caught.exception.keyPath, ("storage", name, key), str(caught.exception))

    def driver(self, **extra: Any) -> Any:
        driver = createDriver(reactor, params(**extra))
        self.addCleanup(driver.close)
        return driver

    def test_required_bucket_and_region(self) -> None:
        self.assertRefused({"accesskey": "a", "secretkey": "b", "region": "us-east-1"}, "bucket")
        self.assertRefused({"accesskey": "a", "secretkey": "b", "bucket": "my-bucket"}, "region")

    def test_unknown_parameter(self) -> None:
        self.assertRefused(params(chunk_size=1), "chunk_size")

    def test_every_documented_parameter_is_accepted(self) -> None:
        driver = self.driver(
            regionendpoint="http://127.0.0.1:9000",
            redirectendpoint="https://cdn.example.com",
            forcepathstyle=True,
            encrypt=True,
            keyid="kms-key",
            secure=False,
            skipverify=True,
            v4auth=True,
            chunksize="8M",
            multipartcopychunksize=6 * MiB,
            multipartcopymaxconcurrency=4,
            multipartcopythresholdsize="64M",
            rootdirectory="/a/b",
            storageclass="REDUCED_REDUNDANCY",
            useragent="registryd-test",
            objectacl="bucket-owner-full-control",
            loglevel="debug",
        )
        s = driver.settings
        self.assertEqual((s.chunkSize, s.copyChunkSize, s.copyThresholdSize), (8 * MiB, 6 * MiB, 64 * MiB))
        self.assertEqual((s.rootDirectory, s.endpoint, s.pathStyle), ("a/b", "http://127.0.0.1:9000", True))
        self.assertEqual(driver._key("/x"), "a/b/x")
        headers = driver._objectHeaders()
        self.assertEqual(headers["x-amz-server-side-encryption"], "aws:kms")
        self.assertEqual(headers["x-amz-server-side-encryption-aws-kms-key-id"], "kms-key")
        self.assertEqual(headers["x-amz-storage-class"], "REDUCED_REDUNDANCY")
        self.assertEqual(headers["x-amz-acl"], "bucket-owner-full-control")

    def test_aws_endpoints(self) -> None:
        self.assertEqual(self.driver().client.url("k"), "https://my-bucket.s3.us-east-1.amazonaws.com/k")
        self.assertEqual(
            self.driver(usedualstack=True, forcepathstyle=True).client.url("k"),
            "https://s3.dualstack.us-east-1.amazonaws.com/my-bucket/k",
        )
        self.assertEqual(
            self.driver(accelerate=True, secure=False).client.url(None),
            "http://my-bucket.s3-accelerate.amazonaws.com/",
        )
        self.assertEqual(
            self.driver(usefipsendpoint=True).settings.endpoint, "https://s3-fips.us-east-1.amazonaws.com"
        )

    def test_bad_values(self) -> None:
        self.assertRefused(params(chunksize=4 * MiB), "chunksize")
        self.assertRefused(params(chunksize="lots"), "chunksize")
        self.assertRefused(params(multipartcopychunksize=1024), "multipartcopychunksize")
        self.assertRefused(params(multipartcopythresholdsize="6G"), "multipartcopythresholdsize")
        self.assertRefused(params(multipartcopymaxconcurrency=0), "multipartcopymaxconcurrency")
        self.assertRefused(params(bucket="Not_A_Bucket"), "bucket")
        self.assertRefused(params(region="moon"), "region")
        self.assertRefused(params(secure="maybe"), "secure")
        self.assertRefused(params(storageclass="GOLD"), "storageclass")
        self.assertRefused(params(objectacl="everyone"), "objectacl")
        self.assertRefused(params(loglevel="loud"), "loglevel")
        self.assertRefused(params(rootdirectory="/a/../b"), "rootdirectory")
        self.assertRefused(params(regionendpoint="ftp://host"), "regionendpoint")
        self.assertRefused(params(redirectendpoint="https://cdn.example.com/path"), "redirectendpoint")
        self.assertRefused(params(redirectendpoint="cdn.example.com"), "redirectendpoint")
        self.assertRefused(params(keyid="k"), "keyid")
        self.assertRefused(params(regionendpoint="http://h:1", accelerate=True), "accelerate")
        self.assertRefused(params(accelerate=True, forcepathstyle=True), "accelerate")
        self.assertRefused({"accesskey": "a", "region": "us-east-1", "bucket": "my-bucket"}, "secretkey")

    def test_alias_names_its_own_key_path(self) -> None:
        from registryd.storage.s3.s3aws import createDriver as aliasCreate

        with self.assertRaises(ConfigError) as caught:
            aliasCreate(reactor, params(chunksize=1))
        self.assertEqual(caught.exception.keyPath, ("storage", "s3aws", "chunksize"))

    def test_v4auth_off_signs_with_signature_version_2(self) -> None:
        driver = self.driver(v4auth=False)
        headers = driver.client._sign("GET", driver.client.url("k"), {}, b"")
        self.assertTrue(headers["Authorization"].startswith("AWS a:"), headers)
        self.assertIn("Signature=", driver.client.presign("k"))

    def test_part_size_grows_past_ten_thousand_chunks(self) -> None:
        chunk = 5 * MiB
        self.assertEqual(partSize(chunk, 1), chunk)
        self.assertEqual(partSize(chunk, 1000), chunk)
        self.assertEqual(partSize(chunk, 1001), 2 * chunk)
        total = sum(partSize(chunk, n) for n in range(1, 10001))
        self.assertGreater(total, 5 * (1 << 40) // 2)
        self.assertLessEqual(max(partSize(10 * MiB, n) for n in range(1, 10001)), 5 << 30)


class S3MultipartTests(TestCase):
    """Behaviour beyond the shared suite, against moto."""

    timeout = 300

    async def test_multipart_write_resumed_across_writers(self) -> None:
        """Parts go out as they fill; a close mid-part and several resumes keep every byte."""
        driver = await s3Driver(self, chunksize=5 * MiB)
        data = StorageDriverTestsMixin.pattern(None, 23 * MiB + 321, seed=7)  # type: ignore[arg-type]
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
        """ListParts is read page by page (moto pages at max-parts)."""
        driver = await s3Driver(self)
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
        self.assertEqual(len(pages), 3, pages)
        await driver.abortMultipartUpload("paged", uploadID, "/paged")

    async def test_move_large_object_uses_multipart_copy(self) -> None:
        driver = await s3Driver(
            self,
            multipartcopythresholdsize=5 * MiB,
            multipartcopychunksize=5 * MiB,
            multipartcopymaxconcurrency=2,
        )
        data = StorageDriverTestsMixin.pattern(None, 12 * MiB + 3, seed=9)  # type: ignore[arg-type]
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
        driver = await s3Driver(self)
        await driver.putContent("/blob/data", b"redirected bytes")
        url = await driver.redirectURL("GET", "/blob/data")
        self.assertIn("X-Amz-Signature=", url)
        body = await deferToThread(lambda: urlopen(url, timeout=10).read())
        self.assertEqual(body, b"redirected bytes")

    async def test_delete_aborts_uploads_below(self) -> None:
        driver = await s3Driver(self)
        await driver.putContent("/_uploads/u1/startedat", b"now")
        writer = await driver.writer("/_uploads/u1/data")
        await writer.write(b"partial")
        await writer.close()
        await driver.delete("/_uploads/u1")
        self.assertEqual(await driver.multipartUploads(""), [])

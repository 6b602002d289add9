"""
The oss driver: the shared driver suite against a moto S3 server on loopback (OSS speaks the
S3 API, so the oss driver's endpoint points at moto), parameter checks and endpoint derivation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from registryd.config.errors import ConfigError
from registryd.storage.oss import OSSDriver, createDriver
from registryd.storage.s3.config import MiB
from registryd.testing.driversuite import StorageDriverTestsMixin
from tests.support.moto import ACCESS_KEY, SECRET_KEY, motoServer, newBucketName


def params(**extra: Any) -> dict[str, Any]:
    """Minimal valid oss parameters plus extra (no server needed to check them)."""
    section: dict[str, Any] = {
        "accesskeyid": "id",
        "accesskeysecret": "secret",
        "region": "oss-cn-beijing",
        "bucket": "my-bucket",
    }
    section.update(extra)
    return section


async def ossDriver(testCase: TestCase, **extra: Any) -> Any:
    """An oss driver on a fresh bucket of the shared moto server, closed after the test."""
    server = motoServer()
    section = params(
        accesskeyid=ACCESS_KEY,
        accesskeysecret=SECRET_KEY,
        bucket=newBucketName(),
        endpoint=server.endpoint,
        secure=False,
    )
    section.update(extra)
    driver = createDriver(reactor, section)
    testCase.addCleanup(driver.close)
    # Outside us-east-1, moto (like S3) wants the bucket's region named when it is created.
    configuration = (
        "<CreateBucketConfiguration><LocationConstraint>"
        f"{driver.settings.region}</LocationConstraint></CreateBucketConfiguration>"
    )
    await driver.client.send("PUT", None, body=configuration.encode())
    return driver


class OSSDriverSuiteTests(StorageDriverTestsMixin, TestCase):
    """The shared driver suite through the oss driver, bucket root, encryption on."""

    def makeDriver(self) -> Any:
        return Deferred.fromCoroutine(ossDriver(self, chunksize=5 * MiB, encrypt=True))


class OSSDriverRootDirectorySuiteTests(StorageDriverTestsMixin, TestCase):
    """The shared driver suite under a rootdirectory, with a sibling prefix that must stay invisible."""

    async def _make(self) -> Any:
        driver = await ossDriver(self, rootdirectory="/registry/root")
        await driver.client.send("PUT", "registry/rootsibling", body=b"not ours")
        await driver.client.send("PUT", "elsewhere", body=b"not ours")
        return driver

    def makeDriver(self) -> Any:
        return Deferred.fromCoroutine(self._make())


class OSSParameterTests(TestCase):
    """A bad parameter stops start-up naming storage.oss.<param>; endpoints derive as distribution's do."""

    def assertRefused(self, parameters: dict[str, Any], key: str) -> None:
        with self.assertRaises(ConfigError) as caught:
            createDriver(reactor, parameters)
        self.assertEqual(caught.exception.keyPath, ("storage", "oss", key), str(caught.exception))

    def driver(self, **extra: Any) -> OSSDriver:
        driver = createDriver(reactor, params(**extra))
        self.addCleanup(driver.close)
        return driver

    def test_required_parameters(self) -> None:
        for key in ("accesskeyid", "accesskeysecret", "region", "bucket"):
            section = params()
            del section[key]
            self.assertRefused(section, key)
            self.assertRefused(params(**{key: ""}), key)

    def test_unknown_parameter(self) -> None:
        self.assertRefused(params(accesskey="a"), "accesskey")
        self.assertRefused(params(regionendpoint="http://127.0.0.1:1"), "regionendpoint")

    def test_bad_values(self) -> None:
        self.assertRefused(params(region="cn-beijing"), "region")
        self.assertRefused(params(region="us-east-1"), "region")
        self.assertRefused(params(bucket="My_Bucket"), "bucket")
        self.assertRefused(params(bucket="dotted.bucket"), "bucket")
        self.assertRefused(params(internal="yes"), "internal")
        self.assertRefused(params(encrypt=1), "encrypt")
        self.assertRefused(params(secure="maybe"), "secure")
        self.assertRefused(params(chunksize=4 * MiB), "chunksize")
        self.assertRefused(params(chunksize="lots"), "chunksize")
        self.assertRefused(params(chunksize="6G"), "chunksize")
        self.assertRefused(params(rootdirectory="/a/../b"), "rootdirectory")
        self.assertRefused(params(endpoint="ftp://oss.example.com"), "endpoint")
        self.assertRefused(params(endpoint="https://oss.example.com/path"), "endpoint")
        self.assertRefused(params(endpoint="my-bucket.oss-cn-beijing.aliyuncs.com"), "endpoint")
        with self.assertRaises(ConfigError) as caught:
            createDriver(reactor, ["not", "a", "mapping"])  # type: ignore[arg-type]
        self.assertEqual(caught.exception.keyPath, ("storage", "oss"))

    def test_defaults(self) -> None:
        s = self.driver().settings
        self.assertEqual((s.name, s.bucket, s.chunkSize, s.rootDirectory), ("oss", "my-bucket", 10 * MiB, ""))
        self.assertEqual((s.accessKey, s.secretKey, s.encrypt, s.v4auth), ("id", "secret", False, True))

    def test_every_documented_parameter_is_accepted(self) -> None:
        driver = self.driver(
            endpoint="oss.example.com",
            internal=True,
            encrypt="true",
            secure="false",
            chunksize="8M",
            rootdirectory="/a/b/",
        )
        s = driver.settings
        self.assertEqual((s.endpoint, s.pathStyle, s.encrypt), ("http://oss.example.com", False, True))
        self.assertEqual((s.chunkSize, s.rootDirectory), (8 * MiB, "a/b"))
        self.assertEqual(driver._key("/x"), "a/b/x")

    def test_public_endpoint_is_virtual_hosted(self) -> None:
        driver = self.driver()
        self.assertEqual(driver.settings.endpoint, "https://oss-cn-beijing.aliyuncs.com")
        self.assertEqual(driver.client.url("k/v"), "https://my-bucket.oss-cn-beijing.aliyuncs.com/k/v")

    def test_internal_endpoint(self) -> None:
        driver = self.driver(internal=True, secure=False, region="oss-ap-southeast-1")
        self.assertEqual(
            driver.client.url(None), "http://my-bucket.oss-ap-southeast-1-internal.aliyuncs.com/"
        )

    def test_given_endpoint_wins_over_region_and_internal(self) -> None:
        driver = self.driver(endpoint="https://oss-cn-hangzhou.aliyuncs.com", internal=True)
        self.assertEqual(driver.client.url("k"), "https://my-bucket.oss-cn-hangzhou.aliyuncs.com/k")

    def test_endpoint_at_an_address_is_path_style(self) -> None:
        driver = self.driver(endpoint="127.0.0.1:9000", secure=False)
        self.assertTrue(driver.settings.pathStyle)
        self.assertEqual(driver.client.url("k"), "http://127.0.0.1:9000/my-bucket/k")
        self.assertEqual(
            self.driver(endpoint="http://localhost:9000").client.url("k"), "http://localhost:9000/my-bucket/k"
        )

    def test_requests_are_signed_with_sigv4_for_the_region_id(self) -> None:
        driver = self.driver()
        headers = driver.client._sign("GET", driver.client.url("k"), {}, b"")
        authorization = headers["Authorization"]
        self.assertTrue(authorization.startswith("AWS4-HMAC-SHA256 Credential=id/"), authorization)
        self.assertIn("/cn-beijing/s3/aws4_request", authorization)
        self.assertIn("X-Amz-Signature=", driver.client.presign("k"))

    def test_object_headers_use_oss_names(self) -> None:
        plain = self.driver()._objectHeaders()
        self.assertEqual(plain["x-oss-object-acl"], "private")
        self.assertNotIn("x-oss-server-side-encryption", plain)
        self.assertFalse([name for name in plain if name.startswith("x-amz-")], plain)
        encrypted = self.driver(encrypt=True)._objectHeaders()
        self.assertEqual(encrypted["x-oss-server-side-encryption"], "AES256")

    def test_registered_as_a_plugin(self) -> None:
        # The repository's plugin file, not an installed copy that may be older.
        location = Path(__file__).resolve().parents[1] / "twisted" / "plugins" / "registryd_storage.py"
        spec = importlib.util.spec_from_file_location("registryd_storage_under_test", location)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.assertEqual((module.oss.name, module.oss.module), ("oss", "registryd.storage.oss"))
        driver = module.oss.create(reactor, params())
        self.addCleanup(driver.close)
        self.assertIsInstance(driver, OSSDriver)


class OSSRoundTripTests(TestCase):
    """Behaviour beyond the shared suite, against moto: multipart writes go out as parts fill."""

    timeout = 300

    async def test_multipart_write_resumed_across_writers(self) -> None:
        driver = await ossDriver(self, chunksize=5 * MiB, encrypt=True)
        data = StorageDriverTestsMixin.pattern(None, 11 * MiB + 17, seed=3)  # type: ignore[arg-type]
        writer = await driver.writer("/uploads/blob")
        await writer.write(data[: 6 * MiB])
        await writer.close()
        uploads = await driver.multipartUploads("uploads/blob")
        self.assertEqual(len(uploads), 1)
        writer = await driver.writer("/uploads/blob", append=True)
        self.assertEqual(writer.size, 6 * MiB)
        await writer.write(data[6 * MiB :])
        await writer.commit()
        self.assertEqual(await driver.getContent("/uploads/blob"), data)
        self.assertEqual(await driver.multipartUploads("uploads/blob"), [])

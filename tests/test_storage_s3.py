"""
The s3 driver against a real moto S3 server on loopback: the shared driver suite, parameter
checks, multipart writes resumed across writers, multipart copies, presigned redirects.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from registryd.config.errors import ConfigError
from registryd.storage.s3 import createDriver
from registryd.storage.s3.config import MiB
from registryd.storage.s3.streams import partSize
from tests.support.moto import MotoServer, motoServer
from tests.support.s3cases import S3DriverSuiteMixin, S3MultipartTestsMixin, S3RootDirectorySuiteMixin


class MotoMixin:
    """Tests against the run's moto server."""

    def s3Server(self) -> MotoServer:
        return motoServer()


class S3DriverSuiteTests(MotoMixin, S3DriverSuiteMixin, TestCase):
    """The shared driver suite, bucket root."""


class S3DriverRootDirectorySuiteTests(MotoMixin, S3RootDirectorySuiteMixin, TestCase):
    """The shared driver suite under a rootdirectory, with a sibling prefix that must stay invisible."""


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

    def test_sub_resources_without_value_are_bare_in_urls(self) -> None:
        """SigV2 signs ?uploads as written: radosgw refuses a signature over uploads= (radosgw suite)."""
        url = self.driver().client.url("k", {"uploads": "", "prefix": "a b", "delete": None})
        self.assertEqual(url, "https://my-bucket.s3.us-east-1.amazonaws.com/k?delete&prefix=a%20b&uploads")

    def test_part_size_grows_past_ten_thousand_chunks(self) -> None:
        chunk = 5 * MiB
        self.assertEqual(partSize(chunk, 1), chunk)
        self.assertEqual(partSize(chunk, 1000), chunk)
        self.assertEqual(partSize(chunk, 1001), 2 * chunk)
        total = sum(partSize(chunk, n) for n in range(1, 10001))
        self.assertGreater(total, 5 * (1 << 40) // 2)
        self.assertLessEqual(max(partSize(10 * MiB, n) for n in range(1, 10001)), 5 << 30)


class S3MultipartTests(MotoMixin, S3MultipartTestsMixin, TestCase):
    """Behaviour beyond the shared suite, against moto."""

    serverPagesUploads = False

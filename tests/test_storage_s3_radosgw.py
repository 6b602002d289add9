"""
The s3 driver against Ceph radosgw (a real distributed object store) on loopback: the shared
driver suite, multipart writes resumed across writers, ListParts pages, multipart copies, and
presigned redirect URLs that radosgw checks.
"""

from __future__ import annotations

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from registryd.storage.s3 import createDriver
from registryd.storage.s3.client import S3Error
from registryd.storage.s3.config import MiB
from registryd.testing.driversuite import StorageDriverTestsMixin
from tests.support.radosgw import Radosgw, sharedRadosgw
from tests.support.s3 import parameters
from tests.support.s3cases import (
    S3DriverSuiteMixin,
    S3MultipartTestsMixin,
    S3RootDirectorySuiteMixin,
    S3ServerMixin,
)


class RadosgwMixin:
    """Tests against the run's radosgw (started on first use, ≈20 s)."""

    timeout = 300

    def s3Server(self) -> Radosgw:
        return sharedRadosgw()


class RadosgwDriverSuiteTests(RadosgwMixin, S3DriverSuiteMixin, TestCase):
    """The shared driver suite, bucket root."""


class RadosgwRootDirectorySuiteTests(RadosgwMixin, S3RootDirectorySuiteMixin, TestCase):
    """The shared driver suite under a rootdirectory, with a sibling prefix that must stay invisible."""


class RadosgwMultipartTests(RadosgwMixin, S3MultipartTestsMixin, TestCase):
    """Multipart writes and copies, ListParts pages and presigned URLs on radosgw."""


class RadosgwSignatureTests(RadosgwMixin, S3ServerMixin, TestCase):
    """radosgw checks signatures (moto does not): a wrong one is refused, so signing is really tested."""

    async def test_tampered_presigned_url_is_refused(self) -> None:
        driver = await self.s3Driver()
        await driver.putContent("/blob/data", b"secret bytes")
        url = await driver.redirectURL("GET", "/blob/data")
        tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        response = await treq.get(tampered, persistent=False)
        body = await response.content()
        self.assertEqual(response.code, 403, body)
        self.assertIn(b"SignatureDoesNotMatch", body)

    async def test_wrong_secret_key_is_refused(self) -> None:
        driver = await self.s3Driver()
        wrong = createDriver(
            reactor, parameters(self.s3Server(), driver.settings.bucket, secretkey="not-the-secret")
        )
        self.addCleanup(wrong.close)
        with self.assertRaises(S3Error) as caught:
            await wrong.putContent("/blob/data", b"bytes")
        self.assertEqual(caught.exception.status, 403)


class RadosgwSignatureV2SuiteTests(RadosgwMixin, S3ServerMixin, StorageDriverTestsMixin, TestCase):
    """The shared driver suite signed with AWS signature version 2 (v4auth: false), which radosgw checks."""

    def makeDriver(self) -> Deferred:
        return Deferred.fromCoroutine(self.s3Driver(chunksize=5 * MiB, v4auth=False))


class RadosgwZonegroupRegionSuiteTests(RadosgwMixin, S3ServerMixin, StorageDriverTestsMixin, TestCase):
    """The shared driver suite with region set to radosgw's zonegroup name, as Ceph users configure it."""

    def makeDriver(self) -> Deferred:
        return Deferred.fromCoroutine(self.s3Driver(chunksize=5 * MiB, region="default"))

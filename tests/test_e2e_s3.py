"""
End-to-end: skopeo pushes to and pulls from `twistd registryd` configured with `storage: s3`,
against a moto S3 server and against Ceph radosgw on loopback; blob GETs are answered with
presigned redirects to the store, or streamed by registryd with redirects disabled.
"""

from __future__ import annotations

from http.client import HTTPConnection
from typing import Any

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.moto import motoServer
from tests.support.processes import RegistryProcess
from tests.support.radosgw import sharedRadosgw
from tests.support.s3 import S3Server, createBucketNow, listKeys, newBucketName
from tests.support.s3cases import registrydOnS3
from tests.support.skopeo import Skopeo, compareLayouts


class S3SkopeoTestsMixin:
    """skopeo against registryd on the S3 server C{s3Server()}."""

    def s3Server(self) -> S3Server:
        raise NotImplementedError(f"{type(self).__name__} must define s3Server()")

    def startOnS3(self, redirectDisabled: bool = False) -> RegistryProcess:
        self.server = self.s3Server()
        self.bucket = newBucketName()
        createBucketNow(self.server, self.bucket)
        process = registrydOnS3(
            self.workDirectory(), self.server, self.bucket, {"redirect": {"disable": redirectDisabled}}
        )
        return self._started(process)

    def roundTrip(self, redirectDisabled: bool) -> tuple[RegistryProcess, Any]:
        registry = self.startOnS3(redirectDisabled)
        skopeo = Skopeo(registry)
        source, image, _ = self.buildLayout()
        skopeo.copy(f"oci:{source}:v1", skopeo.reference("e2e/s3", "v1"))
        out = self.workDirectory() / "out"
        skopeo.copy(skopeo.reference("e2e/s3", "v1"), f"oci:{out}:pulled")
        self.assertEqual(compareLayouts(source, "v1", out, "pulled"), [], registry.logTail())
        keys = listKeys(self.server, self.bucket)
        self.assertTrue(all(key.startswith("registry/docker/registry/v2/") for key in keys), keys[:5])
        layer = image.layers[2]
        self.assertIn(
            f"registry/docker/registry/v2/blobs/sha256/{layer.digest[7:9]}/{layer.digest[7:]}/data", keys
        )
        return registry, layer

    def test_skopeo_round_trip_through_presigned_redirects(self) -> None:
        """A multi-layer image (one layer over 20 MiB: several parts) goes in and out byte for byte."""
        registry, layer = self.roundTrip(redirectDisabled=False)
        connection = HTTPConnection("127.0.0.1", registry.port, timeout=30)
        self.addCleanup(connection.close)
        connection.request("GET", f"/v2/e2e/s3/blobs/{layer.digest}")
        response = connection.getresponse()
        self.assertEqual(response.status, 307)
        location = response.getheader("Location", "")
        self.assertTrue(location.startswith(self.server.endpoint), location)
        self.assertIn("X-Amz-Signature=", location)

    def test_skopeo_round_trip_with_redirect_disabled(self) -> None:
        """With storage.redirect.disable, registryd streams blobs from S3 itself."""
        registry, layer = self.roundTrip(redirectDisabled=True)
        response = http.request("GET", f"{registry.url}/v2/e2e/s3/blobs/{layer.digest}")
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.body), layer.size)


class S3SkopeoTests(S3SkopeoTestsMixin, RegistryTestCase):
    """skopeo against registryd on S3 (moto)."""

    def s3Server(self) -> S3Server:
        return motoServer()


class RadosgwSkopeoTests(S3SkopeoTestsMixin, RegistryTestCase):
    """skopeo against registryd on S3 (Ceph radosgw, a real distributed object store)."""

    def s3Server(self) -> S3Server:
        return sharedRadosgw()

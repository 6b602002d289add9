"""
End-to-end: skopeo pushes to and pulls from `twistd registryd` configured with `storage: s3`
against a moto S3 server on loopback; blob GETs are answered with presigned redirects to moto.
"""

from __future__ import annotations

from http.client import HTTPConnection
from typing import Any

import yaml

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.moto import (
    createBucketNow,
    listKeys,
    motoServer,
    newBucketName,
    parameters,
    serverEnvironment,
)
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydCommand,
    registrydEnvironment,
    writeConfig,
)
from tests.support.skopeo import Skopeo, compareLayouts


class S3SkopeoTests(RegistryTestCase):
    """skopeo against registryd on S3 (moto)."""

    def startOnS3(self, redirectDisabled: bool = False) -> RegistryProcess:
        self.server = motoServer()
        self.bucket = newBucketName()
        createBucketNow(self.server, self.bucket)
        work = self.workDirectory()
        port = freePort()
        config = writeConfig(work, work / "unused", port)
        document = yaml.safe_load(config.read_text())
        document["storage"] = {
            "s3": parameters(self.server, self.bucket, rootdirectory="/registry", chunksize="5M"),
            "delete": {"enabled": True},
            "redirect": {"disable": redirectDisabled},
        }
        config.write_text(yaml.safe_dump(document))
        env = registrydEnvironment()
        env.pop("AWS_CA_BUNDLE", None)
        env.update({k: v for k, v in serverEnvironment().items() if k == "PATH"})
        process = RegistryProcess(
            registrydCommand(config), port, work / "registryd.log", cwd=work, env=env, name="registryd"
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

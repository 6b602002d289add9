"""
End-to-end: skopeo pushes to and pulls from C{twistd registryd} storing everything in Swift.

With C{secretkey}, blob downloads are answered with redirects to temporary URLs, so skopeo fetches
layers from the Swift proxy itself; with C{storage.redirect.disable} registryd streams them.
"""

from __future__ import annotations

import http.client
import uuid

from tests.support.cases import RegistryTestCase
from tests.support.skopeo import Skopeo, compareLayouts
from tests.support.swift import PASSWORD, USERNAME, sharedSwift


class SwiftSkopeoTests(RegistryTestCase):
    """skopeo against registryd on the swift driver."""

    def startOnSwift(self, redirect: bool) -> None:
        swift = sharedSwift()
        storage = {
            "swift": {
                "authurl": swift.authURL,
                "username": USERNAME,
                "password": PASSWORD,
                "container": f"e2e-{uuid.uuid4().hex[:20]}",
                "prefix": "/registry",
                "chunksize": "1M",
                "secretkey": "e2e-temp-url-key",
            },
            "delete": {"enabled": True},
            "redirect": {"disable": not redirect},
        }
        self.registry = self.startRegistryd(self.workDirectory() / "unused", storage=storage)
        self.skopeo = Skopeo(self.registry)
        self.source, self.image, _ = self.buildLayout()

    def roundTrip(self) -> None:
        self.skopeo.copy(f"oci:{self.source}:v1", self.skopeo.reference("e2e/swift", "v1"))
        out = self.workDirectory() / "out"
        self.skopeo.copy(self.skopeo.reference("e2e/swift", "v1"), f"oci:{out}:pulled")
        problems = compareLayouts(self.source, "v1", out, "pulled")
        self.assertEqual(problems, [], f"copy differs from the original:\n{self.registry.logTail()}")

    def test_round_trip_with_temp_url_redirects(self) -> None:
        """Pushed through registryd, pulled with layers fetched from Swift by temp URL: byte-identical."""
        self.startOnSwift(redirect=True)
        self.roundTrip()
        layer = self.image.layers[0]
        connection = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=60)
        self.addCleanup(connection.close)
        connection.request("GET", f"/v2/e2e/swift/blobs/{layer.digest}")
        response = connection.getresponse()
        response.read()
        self.assertEqual(response.status, 307)
        location = response.getheader("Location")
        self.assertTrue(location.startswith(sharedSwift().proxyURL + "/v1/"), location)
        self.assertIn("temp_url_sig=", location)

    def test_round_trip_streamed_by_registryd(self) -> None:
        """With redirects disabled, registryd streams the layers from Swift: byte-identical."""
        self.startOnSwift(redirect=False)
        self.roundTrip()

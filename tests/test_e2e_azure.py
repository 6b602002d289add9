"""
End-to-end: skopeo pushes to and pulls from C{twistd registryd} storing everything in Azurite.

Blob downloads are answered with redirects to SAS URLs signed by the driver, so skopeo fetches
layers from Azurite itself; with C{storage.redirect.disable} registryd streams them.
"""

from __future__ import annotations

import http.client
import uuid

from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME, sharedAzurite
from tests.support.cases import RegistryTestCase
from tests.support.skopeo import Skopeo, compareLayouts


class AzureSkopeoTests(RegistryTestCase):
    """skopeo against registryd on the azure driver."""

    def startOnAzurite(self, redirect: bool) -> None:
        azurite = sharedAzurite()
        storage = {
            "azure": {
                "accountname": ACCOUNT_NAME,
                "accountkey": ACCOUNT_KEY,
                "container": f"e2e-{uuid.uuid4().hex[:20]}",
                "serviceurl": azurite.serviceURL,
                "rootdirectory": "/registry",
            },
            "delete": {"enabled": True},
            "redirect": {"disable": not redirect},
        }
        self.registry = self.startRegistryd(self.workDirectory() / "unused", storage=storage)
        self.skopeo = Skopeo(self.registry)
        self.source, self.image, _ = self.buildLayout()

    def roundTrip(self) -> None:
        self.skopeo.copy(f"oci:{self.source}:v1", self.skopeo.reference("e2e/azure", "v1"))
        out = self.workDirectory() / "out"
        self.skopeo.copy(self.skopeo.reference("e2e/azure", "v1"), f"oci:{out}:pulled")
        problems = compareLayouts(self.source, "v1", out, "pulled")
        self.assertEqual(problems, [], f"copy differs from the original:\n{self.registry.logTail()}")

    def test_round_trip_with_sas_redirects(self) -> None:
        """Pushed through registryd, pulled with layers fetched from Azurite by SAS URL: byte-identical."""
        self.startOnAzurite(redirect=True)
        self.roundTrip()
        layer = self.image.layers[0]
        connection = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=60)
        self.addCleanup(connection.close)
        connection.request("GET", f"/v2/e2e/azure/blobs/{layer.digest}")
        response = connection.getresponse()
        response.read()
        self.assertEqual(response.status, 307)
        location = response.getheader("Location")
        self.assertTrue(location.startswith(sharedAzurite().serviceURL + "/"), location)
        self.assertIn("sig=", location)

    def test_round_trip_streamed_by_registryd(self) -> None:
        """With redirects disabled, registryd streams the layers from Azurite: byte-identical."""
        self.startOnAzurite(redirect=False)
        self.roundTrip()

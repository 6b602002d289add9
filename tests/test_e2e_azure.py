"""
End-to-end: skopeo pushes to and pulls from C{twistd registryd} storing everything in Azurite.

Blob downloads are answered with redirects to SAS URLs signed by the driver, so skopeo fetches
layers from Azurite itself; with C{storage.redirect.disable} registryd streams them.
"""

from __future__ import annotations

import uuid

from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME, sharedAzurite
from tests.support.cases import ObjectStoreRoundTripCase


class AzureSkopeoTests(ObjectStoreRoundTripCase):
    """skopeo against registryd on the azure driver."""

    repository = "e2e/azure"

    def startOnAzurite(self, redirect: bool) -> None:
        driver = {
            "azure": {
                "accountname": ACCOUNT_NAME,
                "accountkey": ACCOUNT_KEY,
                "container": f"e2e-{uuid.uuid4().hex[:20]}",
                "serviceurl": sharedAzurite().serviceURL,
                "rootdirectory": "/registry",
            }
        }
        self.startOnStorage(driver, redirect)

    def test_round_trip_with_sas_redirects(self) -> None:
        """Pushed through registryd, pulled with layers fetched from Azurite by SAS URL: byte-identical."""
        self.startOnAzurite(redirect=True)
        self.roundTrip()
        location = self.firstLayerRedirect()
        self.assertTrue(location.startswith(sharedAzurite().serviceURL + "/"), location)
        self.assertIn("sig=", location)

    def test_round_trip_streamed_by_registryd(self) -> None:
        """With redirects disabled, registryd streams the layers from Azurite: byte-identical."""
        self.startOnAzurite(redirect=False)
        self.roundTrip()

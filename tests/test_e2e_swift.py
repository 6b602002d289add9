"""
End-to-end: skopeo pushes to and pulls from C{twistd registryd} storing everything in Swift.

With C{secretkey}, blob downloads are answered with redirects to temporary URLs, so skopeo fetches
layers from the Swift proxy itself; with C{storage.redirect.disable} registryd streams them.
"""

from __future__ import annotations

import uuid

from tests.support.cases import ObjectStoreRoundTripCase
from tests.support.swift import PASSWORD, USERNAME, sharedSwift


class SwiftSkopeoTests(ObjectStoreRoundTripCase):
    """skopeo against registryd on the swift driver."""

    repository = "e2e/swift"

    def startOnSwift(self, redirect: bool) -> None:
        driver = {
            "swift": {
                "authurl": sharedSwift().authURL,
                "username": USERNAME,
                "password": PASSWORD,
                "container": f"e2e-{uuid.uuid4().hex[:20]}",
                "prefix": "/registry",
                "chunksize": "1M",
                "secretkey": "e2e-temp-url-key",
            }
        }
        self.startOnStorage(driver, redirect)

    def test_round_trip_with_temp_url_redirects(self) -> None:
        """Pushed through registryd, pulled with layers fetched from Swift by temp URL: byte-identical."""
        self.startOnSwift(redirect=True)
        self.roundTrip()
        location = self.firstLayerRedirect()
        self.assertTrue(location.startswith(sharedSwift().proxyURL + "/v1/"), location)
        self.assertIn("temp_url_sig=", location)

    def test_round_trip_streamed_by_registryd(self) -> None:
        """With redirects disabled, registryd streams the layers from Swift: byte-identical."""
        self.startOnSwift(redirect=False)
        self.roundTrip()

"""Test-case plumbing for end-to-end tests: registries started per test and stopped on cleanup."""

from __future__ import annotations

import http.client
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.support.layouts import Image, MiB, OCILayout
from tests.support.processes import RegistryProcess, distributionProcess, registrydProcess
from tests.support.skopeo import Skopeo, compareLayouts
from tests.support.tools import requireTool

#: Uncompressed layer sizes of the multi-layer test image: small ones and one over 20 MiB, so uploads
#: span many socket reads and driver writes.
LAYER_SIZES = [512 * 1024, 3 * MiB, 21 * MiB, 64 * 1024]


class RegistryTestCase(TestCase):
    """A trial test case that can run real registry processes, stopped when the test ends."""

    timeout = 600

    def workDirectory(self) -> Path:
        """A fresh absolute directory under trial's temporary directory."""
        path = Path(self.mktemp()).resolve()
        path.mkdir(parents=True)
        return path

    def _started(self, process: RegistryProcess) -> RegistryProcess:
        self.addCleanup(process.stop)
        process.start()
        return process

    def startRegistryd(self, root: Path, **configExtra: dict) -> RegistryProcess:
        """Start registryd under twistd, serving C{root}."""
        return self._started(registrydProcess(self.workDirectory(), root, **configExtra))

    def startDistribution(self, root: Path) -> RegistryProcess:
        """Start Debian's distribution registry serving C{root}; skip (fail under CI) when it is missing."""
        binary = requireTool("docker-registry")
        return self._started(distributionProcess(self.workDirectory(), root, binary))

    def buildLayout(self, seed: int = 1) -> tuple[Path, Image, list[Image]]:
        """
        An OCI layout holding a multi-layer image tagged C{v1} and a two-platform index tagged C{multi}.
        Returns the layout's path, the image and the index's two images.
        """
        path = self.workDirectory() / "source"
        layout = OCILayout(path, seed=seed)
        image = layout.addImage(LAYER_SIZES, tag="v1")
        platforms = [
            layout.addImage([200 * 1024, 50 * 1024], architecture=architecture, tagged=False)
            for architecture in ("amd64", "arm64")
        ]
        layout.addIndex(platforms, tag="multi")
        return path, image, platforms


class ObjectStoreRoundTripCase(RegistryTestCase):
    """skopeo round trips through registryd on an object-store driver, into L{repository}."""

    repository = "e2e/store"

    def startOnStorage(self, driver: dict, redirect: bool) -> None:
        """Start registryd on C{driver} (a storage section) with deletes on and redirects as asked."""
        storage = {**driver, "delete": {"enabled": True}, "redirect": {"disable": not redirect}}
        self.registry = self.startRegistryd(self.workDirectory() / "unused", storage=storage)
        self.skopeo = Skopeo(self.registry)
        self.source, self.image, _ = self.buildLayout()

    def roundTrip(self) -> None:
        """Push the image with skopeo, pull it back, and check the copy is byte-identical."""
        self.skopeo.copy(f"oci:{self.source}:v1", self.skopeo.reference(self.repository, "v1"))
        out = self.workDirectory() / "out"
        self.skopeo.copy(self.skopeo.reference(self.repository, "v1"), f"oci:{out}:pulled")
        problems = compareLayouts(self.source, "v1", out, "pulled")
        self.assertEqual(problems, [], f"copy differs from the original:\n{self.registry.logTail()}")

    def firstLayerRedirect(self) -> str:
        """GET the image's first layer from registryd; assert a 307 and return its Location."""
        layer = self.image.layers[0]
        connection = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=60)
        self.addCleanup(connection.close)
        connection.request("GET", f"/v2/{self.repository}/blobs/{layer.digest}")
        response = connection.getresponse()
        response.read()
        self.assertEqual(response.status, 307)
        return response.getheader("Location")

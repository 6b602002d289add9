"""Test-case plumbing for end-to-end tests: registries started per test and stopped on cleanup."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.support.layouts import Image, MiB, OCILayout
from tests.support.processes import RegistryProcess, distributionProcess, registrydProcess
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

"""
End-to-end: C{middleware.storage: redirect} in front of the filesystem driver. registryd answers
blob GETs with 307s to a separate static web server over the storage root, and skopeo pulls
the layers from there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.cases import ObjectStoreRoundTripCase
from tests.support.processes import freePort, runRegistryd, writeConfig
from tests.support.servers import listening, logTail, spawn, stopProcess, waitUntilReady
from tests.support.skopeo import Skopeo


class StaticFileServer:
    """C{twist web --path} serving a directory on 127.0.0.1, its access log in C{logPath}."""

    def __init__(self, directory: Path, logPath: Path) -> None:
        self.port = freePort()
        self.logPath = logPath
        command = [sys.executable, "-m", "twisted", "web", "--path", str(directory)]
        command += ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        self.process = spawn(command, logPath)
        waitUntilReady(
            self.process,
            lambda: listening(self.port),
            30,
            0.1,
            lambda status: RuntimeError(f"twist web exited with {status}: {logTail(logPath, 20)}"),
            lambda: RuntimeError(f"twist web did not listen: {logTail(logPath, 20)}"),
            self.stop,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stopProcess(self.process, 10)


class RedirectMiddlewareSkopeoTests(ObjectStoreRoundTripCase):
    """skopeo pulls layers from the redirect middleware's base URL, not from registryd."""

    repository = "e2e/redirected"

    def startWithRedirects(self) -> StaticFileServer:
        root = self.workDirectory() / "root"
        root.mkdir()
        files = StaticFileServer(root, self.workDirectory() / "static.log")
        self.addCleanup(files.stop)
        middleware = {"storage": [{"name": "redirect", "options": {"baseurl": files.url}}]}
        self.registry = self.startRegistryd(root, middleware=middleware)
        self.skopeo = Skopeo(self.registry)
        self.source, self.image, _ = self.buildLayout()
        return files

    def test_layers_are_fetched_from_the_base_url(self) -> None:
        files = self.startWithRedirects()
        self.roundTrip()
        location = self.firstLayerRedirect()
        layer = self.image.layers[0].digest.split(":", 1)[1]
        self.assertEqual(location, f"{files.url}/docker/registry/v2/blobs/sha256/{layer[:2]}/{layer}/data")
        served = files.logPath.read_text()
        for layer in self.image.layers:
            hexDigest = layer.digest.split(":", 1)[1]
            self.assertIn(f"GET /docker/registry/v2/blobs/sha256/{hexDigest[:2]}/{hexDigest}/data", served)
        self.assertIn(" 307 ", self.registry.logTail())

    def test_unknown_storage_middleware_stops_start_up(self) -> None:
        """A middleware registryd does not have is named in the one-line start-up error."""
        work = self.workDirectory()
        config = writeConfig(
            work, work / "root", freePort(), extra={"middleware": {"storage": [{"name": "rewrite"}]}}
        )
        result = runRegistryd(work, config, 60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("middleware.storage.0.name", result.stdout + result.stderr)

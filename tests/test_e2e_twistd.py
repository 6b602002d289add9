"""
End-to-end: C{twistd registryd} as an operator runs it — no config file with C{REGISTRY_*} overrides,
and a bad config that must stop start-up with one line naming the key.
"""

from __future__ import annotations

import signal
import socket

from tests.support.cases import RegistryTestCase
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydCommand,
    registrydEnvironment,
    runRegistryd,
    writeConfig,
)
from tests.support.skopeo import Skopeo


class TwistdTests(RegistryTestCase):
    """The twistd plugin's command line and configuration, seen from outside the process."""

    def test_environment_overrides_without_config_file(self) -> None:
        """Without --config, REGISTRY_HTTP_ADDR and REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY are obeyed."""
        work = self.workDirectory()
        root = work / "root"
        port = freePort()
        env = registrydEnvironment()
        env["REGISTRY_HTTP_ADDR"] = f"127.0.0.1:{port}"
        env["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"] = str(root)
        registry = RegistryProcess(registrydCommand(None), port, work / "registryd.log", cwd=work, env=env)
        self.addCleanup(registry.stop)
        registry.start()
        source, image, _ = self.buildLayout()
        skopeo = Skopeo(registry)
        skopeo.copy(f"oci:{source}:v1", skopeo.reference("env/app", "v1"))
        current = root / "docker/registry/v2/repositories/env/app/_manifests/tags/v1/current/link"
        self.assertEqual(current.read_bytes(), image.manifest.digest.encode())
        # twistd re-raises the signal it stopped on, so a clean stop by SIGTERM reads as -SIGTERM.
        self.assertIn(registry.stop(), (0, -signal.SIGTERM), registry.logTail())

    def test_unknown_key_stops_startup_naming_it(self) -> None:
        """A config with an unknown key makes twistd exit non-zero with a message naming the key path."""
        work = self.workDirectory()
        config = writeConfig(
            work, work / "root", freePort(), extra={"http": {"addr": ":0", "bogusoption": 1}}
        )
        result = runRegistryd(work, config, 60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("http.bogusoption", result.stdout + result.stderr)

    def test_port_in_use_stops_startup_naming_the_address(self) -> None:
        """A listener that cannot open its port makes twistd exit non-zero, not run serving nothing."""
        work = self.workDirectory()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = writeConfig(work, work / "root", port)
            result = runRegistryd(work, config, 60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"http.addr: cannot listen on 127.0.0.1:{port}", result.stdout + result.stderr)

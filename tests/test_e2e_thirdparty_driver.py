"""
A third party's storage driver, shipped as its own distribution, serves a real registry.

The throw-away distribution of L{tests.plugins.thirdparty} is pip-installed into a
directory of its own; `twistd registryd` started with that directory on its path and a
config naming the driver pushes and pulls a blob through it.
"""

from __future__ import annotations

import hashlib
import os

import yaml

from tests.plugins.thirdparty import DRIVER_NAME, installThirdPartyDriver
from tests.support.cases import RegistryTestCase
from tests.support.http import request
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydCommand,
    registrydEnvironment,
    writeConfig,
)


class ThirdPartyDriverServesTests(RegistryTestCase):
    """`storage: {testmemory: {...}}` in config.yml selects the installed third-party driver."""

    def startWithDriver(self, driverSection: dict) -> RegistryProcess:
        work = self.work = self.workDirectory()
        site = installThirdPartyDriver(str(work / "thirdparty"))
        port = freePort()
        config = writeConfig(work, work / "unused", port)
        document = yaml.safe_load(config.read_text())
        document["storage"] = {DRIVER_NAME: driverSection, "delete": {"enabled": True}}
        config.write_text(yaml.safe_dump(document))
        env = registrydEnvironment()
        env["PYTHONPATH"] = site + os.pathsep + env["PYTHONPATH"]
        process = RegistryProcess(
            registrydCommand(config), port, work / "registryd.log", cwd=work, env=env, name="registryd"
        )
        return process

    def test_blob_pushed_and_pulled_through_third_party_driver(self) -> None:
        """A monolithic upload lands in the third-party driver and comes back byte for byte."""
        process = self.startWithDriver({"label": "e2e"})
        process.start()
        self.addCleanup(process.stop)
        content = os.urandom(300_000)
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        pushed = request("POST", f"{process.url}/v2/third/party/blobs/uploads/?digest={digest}", body=content)
        self.assertEqual(pushed.status, 201, pushed.body)
        pulled = request("GET", f"{process.url}/v2/third/party/blobs/{digest}")
        self.assertEqual(pulled.status, 200)
        self.assertEqual(pulled.body, content)
        self.assertIn(f"with {DRIVER_NAME} storage", process.logTail(200))
        self.assertFalse((self.work / "unused").exists())

    def test_bad_parameter_of_third_party_driver_stops_start_up(self) -> None:
        """The third party's own parameter check stops start-up naming the key path."""
        process = self.startWithDriver({"label": 42})
        with self.assertRaises(Exception) as caught:
            process.start(timeout=30)
        self.assertIn(f"storage.{DRIVER_NAME}.label", str(caught.exception))

"""The garbage collection command over a real config (subprocess), its config keys and the scheduled run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from registryd.config import ConfigError, parseDocument
from registryd.config.storage import GarbageCollectionConfig
from registryd.gc import ScheduledGarbageCollection
from registryd.registry import layout, uploads
from registryd.registry.core import Registry
from registryd.service import makeService
from registryd.storage.filesystem import FilesystemDriver
from registryd.storage.inmemory import InMemoryDriver
from tests.support.processes import registrydEnvironment
from tests.test_gc import RealisticRegistry, blob, laterClock, storedBlobDigests
from tests.test_registry_helpers import sha256


def document(gc: Any = None, **storage: Any) -> dict[str, Any]:
    maintenance = {} if gc is None else {"gc": gc}
    return {
        "version": 0.1,
        "storage": {"inmemory": None, "maintenance": maintenance, **storage},
        "http": {"addr": "127.0.0.1:0"},
    }


class GarbageCollectionConfigTests(TestCase):
    def test_off_by_default(self) -> None:
        self.assertEqual(parseDocument(document()).storage.gc, GarbageCollectionConfig())
        self.assertFalse(GarbageCollectionConfig().enabled)

    def test_every_key(self) -> None:
        gc = {
            "enabled": True,
            "interval": "12h",
            "dryrun": True,
            "deleteuntagged": True,
            "graceperiod": "30m",
        }
        self.assertEqual(
            parseDocument(document(gc)).storage.gc,
            GarbageCollectionConfig(True, 12 * 3600.0, True, True, 1800.0),
        )

    def test_unknown_key_is_refused_by_path(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parseDocument(document({"enabled": True, "grace": "1h"}))
        self.assertEqual(caught.exception.keyPath, ("storage", "maintenance", "gc", "grace"))

    def test_bad_values_name_their_key(self) -> None:
        for gc, key in [
            ({"interval": "0s"}, "interval"),
            ({"graceperiod": "soon"}, "graceperiod"),
            ({"deleteuntagged": "yes"}, "deleteuntagged"),
        ]:
            with self.assertRaises(ConfigError) as caught:
                parseDocument(document(gc))
            self.assertEqual(caught.exception.keyPath, ("storage", "maintenance", "gc", key))


class ScheduledGarbageCollectionTests(TestCase):
    def test_the_daemon_schedules_it_when_enabled(self) -> None:
        top = makeService(parseDocument(document({"enabled": True})), reactor=laterClock())
        self.assertIsInstance(top.getServiceNamed("storage.maintenance.gc"), ScheduledGarbageCollection)
        top = makeService(parseDocument(document()), reactor=laterClock())
        self.assertRaises(KeyError, top.getServiceNamed, "storage.maintenance.gc")
        readOnly = document({"enabled": True})
        readOnly["storage"]["maintenance"]["readonly"] = {"enabled": True}
        top = makeService(parseDocument(readOnly), reactor=laterClock())
        self.assertRaises(KeyError, top.getServiceNamed, "storage.maintenance.gc")

    async def test_collects_after_the_first_delay_then_every_interval(self) -> None:
        self.addCleanup(uploads._states.clear)
        driver = InMemoryDriver()
        await RealisticRegistry(Registry(driver, deleteEnabled=True)).build()
        orphan = sha256(blob("orphan"))
        clock = laterClock()
        config = GarbageCollectionConfig(enabled=True, interval=3600.0, gracePeriod=60.0)
        service = ScheduledGarbageCollection(Registry(driver), config, clock, firstDelay=10.0)
        service.startService()
        self.addCleanup(service.stopService)
        clock.advance(9)
        self.assertIn(orphan, await storedBlobDigests(driver))
        clock.advance(1)
        self.assertNotIn(orphan, await storedBlobDigests(driver))
        # The next pass an interval later collects what became garbage meanwhile.
        app = Registry(driver, deleteEnabled=True).repository("library/app")
        await app.manifests.delete((await app.manifests.get("v2")).digest)
        clock.advance(3599)
        self.assertIn(sha256(blob("b1")), await storedBlobDigests(driver))
        clock.advance(1)
        self.assertNotIn(sha256(blob("b1")), await storedBlobDigests(driver))


class GarbageCollectCommandTests(TestCase):
    """C{registryd garbage-collect CONFIG} in its own process over a filesystem registry."""

    async def setUp(self) -> None:
        self.addCleanup(uploads._states.clear)
        self.root = Path(self.mktemp()).absolute()
        driver = FilesystemDriver(str(self.root))
        self.addCleanup(driver.stop)
        self.driver = driver
        self.built = RealisticRegistry(Registry(driver, deleteEnabled=True))
        await self.built.build()
        self.config = self.root.parent / "config.yml"
        config = {
            "version": 0.1,
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "maintenance": {"gc": {"graceperiod": "0s"}},
            },
        }
        self.config.write_text(yaml.safe_dump(config))

    async def command(self, *arguments: str) -> tuple[str, str, int]:
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "registryd.cli", "garbage-collect", *arguments],
            env=registrydEnvironment(),
        )
        return out.decode(), err.decode(), code

    async def test_dry_run_then_collect(self) -> None:
        garbage = self.built.blobsOf("orphan", "cD", "d1") | {self.built.digests["D"]}
        before = await storedBlobDigests(self.driver)
        out, err, code = await self.command("--dry-run", str(self.config))
        self.assertEqual((code, err), (0, ""), out)
        self.assertEqual(await storedBlobDigests(self.driver), before)
        for digest in garbage:
            self.assertIn(f"blob {digest} eligible for deletion (", out)
        self.assertIn("4 blobs eligible for deletion", out.splitlines()[-1])

        out, err, code = await self.command(str(self.config), "--delete-untagged")
        self.assertEqual((code, err), (0, ""), out)
        self.assertEqual(await storedBlobDigests(self.driver) & garbage, set())
        self.assertIn(f"library/app: removed untagged manifest {self.built.digests['U']}", out)
        self.assertIn(f"deleted blob {sha256(blob('orphan'))} (", out)
        self.assertFalse(
            await layout.exists(self.driver, layout.layerLinkPath("other/tool", sha256(blob("d1"))))
        )

    async def test_quiet_prints_nothing(self) -> None:
        out, err, code = await self.command("-q", str(self.config))
        self.assertEqual((out, err, code), ("", "", 0))
        self.assertNotIn(sha256(blob("orphan")), await storedBlobDigests(self.driver))

    async def test_a_bad_config_is_one_line_naming_the_key(self) -> None:
        self.config.write_text(yaml.safe_dump({"version": 0.1, "storage": {"filesystem": {"root": "/x"}}}))
        out, err, code = await self.command(str(self.config))
        self.assertEqual(code, 1)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("storage.filesystem.root", err)
        self.assertIn(sha256(blob("orphan")), await storedBlobDigests(self.driver))

    async def test_usage_errors(self) -> None:
        out, err, code = await self.command()
        self.assertEqual(code, 2)
        self.assertIn("usage: registryd garbage-collect", err)

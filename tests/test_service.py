"""Tests for registryd.service: the assembled service answers HTTP; health check, purger, prefix, drain."""

from __future__ import annotations

import json
import socket
from io import StringIO
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from registryd.config import ConfigError, parseDocument
from registryd.config.health import StorageDriverHealthConfig
from registryd.config.log import LogConfig, makeObserver
from registryd.config.storage import UploadPurgingConfig
from registryd.service import (
    PrefixResource,
    StorageHealthCheck,
    UploadPurger,
    makeService,
    parseStartedAt,
)
from registryd.storage.inmemory import InMemoryDriver
from registryd.storage.interfaces import StorageDriverError


def configuration(**http: Any) -> Any:
    """An in-memory registry on a free loopback port, with extra http settings."""
    return parseDocument(
        {
            "version": "0.1",
            "storage": {"inmemory": None, "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": "127.0.0.1:0", "secret": "test", **http},
            "health": {"storagedriver": {"enabled": True, "interval": "1s"}},
        }
    )


class ServiceTests(TestCase):
    """The whole service on a real socket."""

    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    def get(self, url: str) -> Deferred:
        return treq.get(url, pool=self.pool)

    async def _start(self, config: Any) -> str:
        service = makeService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = await service.getServiceNamed("http")._waitingForPort
        return f"http://127.0.0.1:{port.getHost().port}"

    def test_get_v2_answers(self) -> Deferred:
        async def run() -> None:
            base = await self._start(configuration(headers={"X-Content-Type-Options": ["nosniff"]}))
            response = await self.get(f"{base}/v2/")
            await treq.content(response)
            self.assertEqual(response.code, 200)
            self.assertEqual(
                response.headers.getRawHeaders("Docker-Distribution-API-Version"), ["registry/2.0"]
            )
            self.assertEqual(response.headers.getRawHeaders("X-Content-Type-Options"), ["nosniff"])

        return ensureDeferred(run())

    def test_prefix(self) -> Deferred:
        async def run() -> None:
            base = await self._start(configuration(prefix="/my/nested/registry/"))
            response = await self.get(f"{base}/my/nested/registry/v2/")
            await treq.content(response)
            self.assertEqual(response.code, 200)
            for elsewhere in ("/v2/", "/my/v2/", "/my/nested/v2/", "/other/nested/registry/v2/"):
                response = await self.get(base + elsewhere)
                await treq.content(response)
                self.assertEqual(response.code, 404, elsewhere)

        return ensureDeferred(run())

    def test_unknown_driver_lists_installed(self) -> None:
        config = parseDocument({"version": "0.1", "storage": {"nosuchdriver": {}}})
        error = self.assertRaises(ConfigError, makeService, config, reactor)
        self.assertEqual(error.keyPath, ("storage", "nosuchdriver"))
        self.assertIn("inmemory", str(error))
        self.assertIn("filesystem", str(error))

    def test_stop_closes_idle_connections(self) -> Deferred:
        async def run() -> None:
            service = makeService(configuration(draintimeout="5s"), reactor)
            service.startService()
            port = await service.getServiceNamed("http")._waitingForPort
            client = socket.create_connection(("127.0.0.1", port.getHost().port))
            self.addCleanup(client.close)
            await deferLater(reactor, 0.05, lambda: None)
            self.assertEqual(len(service.getServiceNamed("http").connections), 1)
            await service.stopService()
            await deferLater(reactor, 0.1, lambda: None)
            client.setblocking(False)
            self.assertEqual(client.recv(1), b"")  # closed, not "would block"

        return ensureDeferred(run())


class _FlakyDriver:
    name = "flaky"

    def __init__(self) -> None:
        self.failing = False
        self.stats = 0

    def stat(self, path: str) -> Deferred:
        self.stats += 1
        if self.failing:
            return fail(StorageDriverError("flaky", path, "backend down"))
        return succeed(None)


class StorageHealthCheckTests(TestCase):
    """health.storagedriver: unhealthy after threshold failures in a row."""

    def test_threshold(self) -> None:
        clock, driver = Clock(), _FlakyDriver()
        check = StorageHealthCheck(driver, StorageDriverHealthConfig(True, 10.0, 3), clock)
        check.startService()
        self.addCleanup(check.stopService)
        self.assertEqual(driver.stats, 1)
        self.assertIsNone(check.problem())
        driver.failing = True
        clock.advance(10)
        clock.advance(10)
        self.assertIsNone(check.problem())
        clock.advance(10)
        self.assertIn("backend down", check.problem())
        driver.failing = False
        clock.advance(10)
        self.assertIsNone(check.problem())
        self.assertEqual(driver.stats, 5)

    def test_hanging_stat_fails(self) -> None:
        clock = Clock()

        class Hanging:
            name = "hanging"

            def stat(self, path: str) -> Deferred:
                return Deferred()

        check = StorageHealthCheck(Hanging(), StorageDriverHealthConfig(True, 5.0, 1), clock)
        check.startService()
        self.addCleanup(check.stopService)
        clock.advance(5)
        self.assertIsNotNone(check.problem())

    def test_empty_storage_is_healthy(self) -> None:
        check = StorageHealthCheck(InMemoryDriver(), StorageDriverHealthConfig(True, 5.0, 1), Clock())
        self.successResultOf(check.check())
        self.assertIsNone(check.problem())


REPOSITORIES = "/docker/registry/v2/repositories"
UPLOADS = REPOSITORIES + "/{name}/_uploads/{uuid}"


class UploadPurgerTests(TestCase):
    """storage.maintenance.uploadpurging: uploads older than age go, younger stay."""

    def setUp(self) -> None:
        self.driver = InMemoryDriver()
        self.now = parseStartedAt("2024-05-10T00:00:00Z")
        for name, uuid, started in [
            ("library/old", "u1", "2024-05-01T00:00:00Z"),
            ("library/old", "u2", "2024-05-09T12:00:00.123456789+00:00"),
            ("a/b/c", "u3", "2024-04-01T00:00:00Z"),
        ]:
            path = UPLOADS.format(name=name, uuid=uuid)
            self.successResultOf(self.driver.putContent(path + "/startedat", started.encode()))
            self.successResultOf(self.driver.putContent(path + "/data", b"partial"))
        self.successResultOf(
            self.driver.putContent(
                "/docker/registry/v2/repositories/library/old/_layers/sha256/ab/link", b"x"
            )
        )

    def purge(self, dryRun: bool) -> list[str]:
        purger = UploadPurger(self.driver, UploadPurgingConfig(True, 7 * 86400.0, 86400.0, dryRun), Clock())
        return self.successResultOf(ensureDeferred(purger.purge(now=self.now)))

    def exists(self, name: str, uuid: str) -> bool:
        d = self.driver.stat(UPLOADS.format(name=name, uuid=uuid) + "/data")
        return self.successResultOf(d.addCallbacks(lambda _: True, lambda _: False))

    def test_purges_old_uploads(self) -> None:
        purged = self.purge(dryRun=False)
        self.assertEqual(
            sorted(purged),
            [UPLOADS.format(name="a/b/c", uuid="u3"), UPLOADS.format(name="library/old", uuid="u1")],
        )
        self.assertFalse(self.exists("library/old", "u1"))
        self.assertFalse(self.exists("a/b/c", "u3"))
        self.assertTrue(self.exists("library/old", "u2"))

    def test_dry_run_deletes_nothing(self) -> None:
        self.assertEqual(len(self.purge(dryRun=True)), 2)
        self.assertTrue(self.exists("library/old", "u1"))

    def test_empty_storage(self) -> None:
        purger = UploadPurger(InMemoryDriver(), UploadPurgingConfig(), Clock())
        self.assertEqual(self.successResultOf(ensureDeferred(purger.purge())), [])

    def test_schedule(self) -> None:
        clock = Clock()
        clock.advance(self.now)
        purger = UploadPurger(self.driver, UploadPurgingConfig(True, 7 * 86400.0, 3600.0, False), clock, 60)
        purger.startService()
        self.addCleanup(purger.stopService)
        self.assertTrue(self.exists("library/old", "u1"))
        clock.advance(60)
        self.assertFalse(self.exists("library/old", "u1"))


class PrefixResourceTests(TestCase):
    """http.prefix: the API is found under the prefix only."""

    def test_moves_prefix_to_prepath(self) -> None:
        inner = Resource()
        prefixed = PrefixResource("/my/registry/", inner)
        request = DummyRequest([b"registry", b"v2", b""])
        request.prepath = [b"my"]
        self.assertIs(prefixed.getChildWithDefault(b"my", request), inner)
        self.assertEqual((request.prepath, request.postpath), ([b"my", b"registry"], [b"v2", b""]))

    def test_other_paths_are_not_found(self) -> None:
        prefixed = PrefixResource("/my/registry/", Resource())
        child = prefixed.getChildWithDefault(b"my", DummyRequest([b"other", b"v2"]))
        self.assertEqual(child.code, 404)


class LogObserverTests(TestCase):
    """log.level filters, log.fields are added, json writes one object per line."""

    def emit(self, config: LogConfig) -> str:
        out = StringIO()
        observer = makeObserver(config, out)
        logger = Logger(namespace="registryd.test", observer=observer)
        logger.debug("quiet {what}", what="detail")
        logger.info("pushed {repository}", repository="library/busybox")
        return out.getvalue()

    def test_text_with_fields_and_level(self) -> None:
        text = self.emit(LogConfig(level="info", fields={"service": "registry"}))
        self.assertNotIn("quiet", text)
        self.assertEqual(len(text.splitlines()), 1)
        self.assertTrue(text.rstrip("\n").endswith("pushed library/busybox service=registry"), text)

    def test_json_one_object_per_line(self) -> None:
        lines = self.emit(
            LogConfig(level="debug", formatter="json", fields={"service": "registry"})
        ).splitlines()
        self.assertEqual(len(lines), 2)
        record = json.loads(lines[1])
        self.assertEqual(record["msg"], "pushed library/busybox")
        self.assertEqual(record["level"], LogLevel.info.name)
        self.assertEqual(record["service"], "registry")

    def test_logstash(self) -> None:
        record = json.loads(self.emit(LogConfig(formatter="logstash")).splitlines()[0])
        self.assertEqual(record["message"], "pushed library/busybox")
        self.assertIn("@timestamp", record)

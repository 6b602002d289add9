"""Tests for registryd.health: file, http and tcp checks, thresholds, and how failures reach the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from registryd.api.app import RegistryAPI
from registryd.api.settings import APISettings
from registryd.config import ConfigError
from registryd.config.health import (
    FileHealthConfig,
    HealthConfig,
    HTTPHealthConfig,
    StorageDriverHealthConfig,
    TCPHealthConfig,
    parseHealth,
)
from registryd.health import (
    FileHealthCheck,
    HealthChecks,
    HTTPHealthCheck,
    PeriodicCheck,
    TCPHealthCheck,
    healthChecksFor,
)
from registryd.registry.core import Registry
from registryd.storage.inmemory import InMemoryDriver


class ConfigTests(TestCase):
    """health.file, health.http and health.tcp read as distribution defines them; mistakes name the key."""

    def test_all_sections(self) -> None:
        config = parseHealth(
            {
                "file": [{"file": "/srv/out-of-rotation", "interval": "5s"}],
                "http": [
                    {
                        "uri": "http://db.example/ping",
                        "headers": {"Authorization": ["Basic x"]},
                        "statuscode": 204,
                        "timeout": "3s",
                        "interval": "10s",
                        "threshold": 3,
                    }
                ],
                "tcp": [{"addr": "redis.example:6379", "timeout": "2s", "threshold": 2}],
            }
        )
        self.assertEqual(config.files, (FileHealthConfig("/srv/out-of-rotation", 5.0, 1),))
        self.assertEqual(
            config.http,
            (HTTPHealthConfig("http://db.example/ping", {"Authorization": ["Basic x"]}, 204, 3.0, 10.0, 3),),
        )
        self.assertEqual(
            config.tcp, (TCPHealthConfig("redis.example:6379", "redis.example", 6379, 2.0, 10.0, 2),)
        )

    def test_defaults(self) -> None:
        config = parseHealth({"http": [{"uri": "https://x/"}], "tcp": [{"addr": "x:1"}]})
        self.assertEqual(config.http[0].statusCode, 200)
        self.assertIsNone(config.http[0].timeout)
        self.assertEqual((config.tcp[0].interval, config.tcp[0].threshold), (10.0, 1))

    def test_mistakes_name_the_key(self) -> None:
        for section, keyPath in [
            ({"file": [{"interval": "1s"}]}, ("health", "file[0]", "file")),
            ({"file": {"file": "/x"}}, ("health", "file")),
            ({"http": [{"uri": "http://x", "statuscode": 999}]}, ("health", "http[0]", "statuscode")),
            ({"http": [{"uri": "x"}]}, ("health", "http[0]", "uri")),
            ({"http": [{"uri": "http://x", "headers": {"A": [1]}}]}, ("health", "http[0]", "headers", "A")),
            ({"http": [{"uri": "http://x", "timeout": "-1s"}]}, ("health", "http[0]", "timeout")),
            ({"tcp": [{"addr": "x:1"}, {"addr": "nohost"}]}, ("health", "tcp[1]", "addr")),
            ({"tcp": [{"addr": ":80"}]}, ("health", "tcp[0]", "addr")),
            ({"tcp": [{"addr": "x:1", "every": "1s"}]}, ("health", "tcp[0]", "every")),
        ]:
            error = self.assertRaises(ConfigError, parseHealth, section)
            self.assertEqual(error.keyPath, keyPath, section)


class _Scripted(PeriodicCheck):
    """A check whose probes answer from a list: None passes, a string fails with it."""

    checkName = "scripted"

    def __init__(self, outcomes: list[str | None], threshold: int, clock: Clock) -> None:
        super().__init__(10.0, threshold, None, clock)
        self.outcomes = outcomes

    def probe(self) -> Deferred:
        outcome = self.outcomes.pop(0)
        d: Deferred = Deferred()
        if outcome is None:
            d.callback(None)
        else:
            d.errback(RuntimeError(outcome))
        return d


class ThresholdTests(TestCase):
    """A check fails after threshold failures in a row; one pass clears it."""

    def test_threshold_and_recovery(self) -> None:
        clock = Clock()
        check = _Scripted([None, "a", "b", "c", None], 3, clock)
        check.startService()
        self.addCleanup(check.stopService)
        self.assertIsNone(check.problem())
        clock.advance(10)
        clock.advance(10)
        self.assertIsNone(check.problem())
        clock.advance(10)
        self.assertEqual(check.problem(), "c")
        clock.advance(10)
        self.assertIsNone(check.problem())

    def test_a_pass_resets_the_count(self) -> None:
        clock = Clock()
        check = _Scripted(["a", None, "b"], 2, clock)
        check.startService()
        self.addCleanup(check.stopService)
        clock.advance(10)
        clock.advance(10)
        self.assertIsNone(check.problem())

    def test_a_probe_that_hangs_times_out(self) -> None:
        clock = Clock()

        class Hanging(PeriodicCheck):
            def probe(self) -> Deferred:
                return Deferred()

        check = Hanging(10.0, 1, 3.0, clock)
        d = check.check()
        clock.advance(3)
        self.successResultOf(d)
        self.assertEqual(check.problem(), "timed out after 3s")


class FileCheckTests(TestCase):
    """health.file fails while the file exists."""

    def test_file(self) -> Deferred:
        async def run() -> None:
            path = Path(self.mktemp())
            check = FileHealthCheck(FileHealthConfig(str(path), 10.0, 1), reactor)
            await check.check()
            self.assertIsNone(check.problem())
            path.write_text("out of rotation")
            await check.check()
            self.assertEqual(check.problem(), f"file {path} exists")
            path.unlink()
            await check.check()
            self.assertIsNone(check.problem())

        return ensureDeferred(run())


class _Status(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.code = 200
        self.seen: list[Any] = []

    def render(self, request: Any) -> bytes:
        self.seen.append((request.method, request.getHeader(b"x-probe")))
        request.setResponseCode(self.code)
        return b""


class NetworkCheckTests(TestCase):
    """health.http and health.tcp against real loopback servers."""

    async def _listen(self, factory: Any) -> int:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.listening[port.getHost().port] = port
        self.addCleanup(self._closed, port.getHost().port)
        return port.getHost().port

    def setUp(self) -> None:
        self.listening: dict[int, Any] = {}

    async def _closed(self, port: int) -> None:
        """Stop listening on port: nothing answers there afterwards."""
        listening = self.listening.pop(port, None)
        if listening is not None:
            await listening.stopListening()

    def test_http_status_and_headers(self) -> Deferred:
        async def run() -> None:
            status = _Status()
            port = await self._listen(Site(status))
            config = HTTPHealthConfig(
                f"http://127.0.0.1:{port}/ping", {"X-Probe": ["yes"]}, 204, 5.0, 10.0, 1
            )
            check = HTTPHealthCheck(config, reactor)
            status.code = 204
            await check.check()
            self.assertIsNone(check.problem())
            self.assertEqual(status.seen, [(b"HEAD", b"yes")])
            status.code = 500
            await check.check()
            self.assertEqual(check.problem(), f"HEAD http://127.0.0.1:{port}/ping answered 500, expected 204")

        return ensureDeferred(run())

    def test_http_unreachable(self) -> Deferred:
        async def run() -> None:
            port = await self._listen(Factory.forProtocol(Protocol))
            await self._closed(port)
            check = HTTPHealthCheck(HTTPHealthConfig(f"http://127.0.0.1:{port}/", timeout=5.0), reactor)
            await check.check()
            self.assertIn(f"HEAD http://127.0.0.1:{port}/ failed", check.problem() or "")

        return ensureDeferred(run())

    def test_tcp(self) -> Deferred:
        async def run() -> None:
            port = await self._listen(Factory.forProtocol(Protocol))
            config = TCPHealthConfig(f"127.0.0.1:{port}", "127.0.0.1", port, 5.0)
            check = TCPHealthCheck(config, reactor)
            await check.check()
            self.assertIsNone(check.problem())
            await self._closed(port)
            await check.check()
            self.assertIn(f"connection to 127.0.0.1:{port} failed", check.problem() or "")

        return ensureDeferred(run())


class CombinedTests(TestCase):
    """HealthChecks names failing checks, and the API answers 503 UNAVAILABLE while one fails."""

    def test_checks_for_config(self) -> None:
        config = HealthConfig(
            storageDriver=StorageDriverHealthConfig(enabled=True),
            files=(FileHealthConfig("/a"),),
            http=(HTTPHealthConfig("http://b/"),),
            tcp=(TCPHealthConfig("c:1", "c", 1),),
        )
        checks = healthChecksFor(config, InMemoryDriver(), Clock())
        self.assertEqual(
            [c.checkName for c in checks.checks], ["storagedriver_inmemory", "/a", "http://b/", "c:1"]
        )
        self.assertEqual(healthChecksFor(HealthConfig(), InMemoryDriver(), Clock()).checks, [])

    def test_api_unavailable_while_a_check_fails(self) -> Deferred:
        async def run() -> None:
            clock = Clock()
            checks = HealthChecks()
            check = _Scripted(["down for maintenance", None], 1, clock)
            checks.add(check)
            api = RegistryAPI(Registry(InMemoryDriver()), APISettings(health=checks.problem))
            client = StubTreq(api.resource())
            await check.check()
            self.assertEqual(checks.failing(), {"scripted": "down for maintenance"})
            response = await client.get("http://registry/v2/")
            body = json.loads(await response.content())
            self.assertEqual(response.code, 503)
            self.assertEqual(body["errors"][0]["code"], "UNAVAILABLE")
            self.assertIn("scripted: down for maintenance", json.dumps(body))
            await check.check()
            self.assertEqual(checks.failing(), {})
            response = await client.get("http://registry/v2/")
            await response.content()
            self.assertEqual(response.code, 200)

        return ensureDeferred(run())


class StopTests(TestCase):
    """Stopping a check cancels a probe in flight, which is not counted as a failure."""

    def test_stop_cancels_the_probe(self) -> None:
        probes: list[Deferred] = []

        class Slow(PeriodicCheck):
            def probe(self) -> Deferred:
                d: Deferred = Deferred()
                probes.append(d)
                return d

        clock = Clock()
        check = Slow(10.0, 1, None, clock)
        check.startService()
        check.stopService()
        self.assertTrue(probes[0].called)
        self.assertIsNone(check.problem())
        self.assertEqual(clock.getDelayedCalls(), [])

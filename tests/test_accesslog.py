"""
The access log: one combined-log line per request with request id, user, repository, status,
bytes and duration; JSON fields in the json formats; log.accesslog.disabled; a client that
goes away mid-request; and the log section end to end under twistd (--logfile, journald).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from io import StringIO
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from registryd.auth.interfaces import REQUEST_IDENTITY, Identity
from registryd.config import parseDocument
from registryd.config.log import LogConfig, makeObserver
from registryd.service import makeService
from registryd.web.accesslog import UNMATCHED, RequestRecord, combinedLine, jsonFields, routeOf
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydCommand,
    registrydEnvironment,
    writeConfig,
)


def record(**changes: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "requestID": "6f1c",
        "remote": "127.0.0.1",
        "user": "alice",
        "method": "GET",
        "uri": "/v2/app/manifests/v1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytesSent": 1234,
        "bytesReceived": 0,
        "duration": 0.0042,
        "route": "manifest.get",
        "repository": "app",
        "referer": None,
        "userAgent": "skopeo/1.13",
    }
    values.update(changes)
    return RequestRecord(**values)


class LineTests(TestCase):
    """The combined-log line and the JSON fields of one request."""

    def test_combined_line(self) -> None:
        self.assertEqual(
            combinedLine(record(), 1735830245.0),
            '127.0.0.1 - alice [02/Jan/2025:15:04:05 +0000] "GET /v2/app/manifests/v1 HTTP/1.1" 200 1234 "-"'
            ' "skopeo/1.13" id=6f1c repository=app route=manifest.get duration=0.004 in=0',
        )

    def test_absent_values_are_dashes(self) -> None:
        line = combinedLine(record(user=None, repository=None, bytesSent=0, duration=None, userAgent=None), 0)
        self.assertTrue(line.startswith("127.0.0.1 - - [01/Jan/1970:00:00:00 +0000]"), line)
        self.assertIn(' 200 - "-" "-" id=6f1c repository=- route=manifest.get duration=- in=0', line)

    def test_one_line_whatever_the_client_sends(self) -> None:
        line = combinedLine(record(userAgent='evil"\nagent', user="a b"), 0)
        self.assertNotIn("\n", line)
        self.assertIn('"evil\\"\\x0aagent"', line)
        self.assertIn(" - a\\x20b [", line)

    def test_json_fields(self) -> None:
        out = StringIO()
        observer = makeObserver(LogConfig(formatter="json", fields={"service": "registry"}), out, environ={})
        from registryd.web.accesslog import log

        log.observer = observer
        self.addCleanup(setattr, log, "observer", globalLogPublisher)
        from registryd.web.accesslog import logAccess

        logAccess(record(), 0)
        line = json.loads(out.getvalue())
        self.assertEqual(line["service"], "registry")
        self.assertEqual(line["namespace"], "registryd.access")
        self.assertEqual(line["msg"], combinedLine(record(), 0))
        for key, value in jsonFields(record()).items():
            self.assertEqual(line[key], value, key)
        self.assertEqual((line["request_id"], line["user"], line["status"]), ("6f1c", "alice", 200))

    def test_text_line_is_the_combined_line(self) -> None:
        out = StringIO()
        observer = makeObserver(LogConfig(fields={"env": "staging"}), out, environ={})
        from registryd.web.accesslog import log, logAccess

        log.observer = observer
        self.addCleanup(setattr, log, "observer", globalLogPublisher)
        logAccess(record(), 0)
        self.assertEqual(out.getvalue(), combinedLine(record(), 0) + " env=staging\n")


class RouteOfTests(TestCase):
    """The route a request matched, as the route itself noted it, without matching the URL again."""

    def test_noted_route(self) -> None:
        class Noted:
            registryRoute = ("blob.get", "team/app")

        self.assertEqual(routeOf(Noted()), ("blob.get", "team/app"))

    def test_nothing_noted_nothing_matched(self) -> None:
        self.assertEqual(routeOf(object()), (UNMATCHED, None))


class ServedRequestTests(TestCase):
    """Requests over a real socket each leave one access event carrying what the log promises."""

    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.events: list[dict] = []
        self.waiting: list[tuple[Any, Deferred]] = []

        def observe(event: dict) -> None:
            if event.get("log_namespace") != "registryd.access":
                return
            self.events.append(event)
            for match, d in list(self.waiting):
                if match(event):
                    self.waiting.remove((match, d))
                    d.callback(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def accessEvent(self, match: Any) -> Deferred:
        """A Deferred firing with the first access event (seen or to come) that matches."""
        for event in self.events:
            if match(event):
                return succeed(event)
        d: Deferred = Deferred()
        self.waiting.append((match, d))
        return d

    async def _start(self, **log: Any) -> str:
        config = parseDocument(
            {
                "version": "0.1",
                "log": log,
                "storage": {"inmemory": None, "maintenance": {"uploadpurging": {"enabled": False}}},
                "http": {"addr": "127.0.0.1:0", "secret": "test"},
            }
        )
        service = makeService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = await service.getServiceNamed("http")._waitingForPort
        return f"http://127.0.0.1:{port.getHost().port}"

    def test_one_event_per_request(self) -> Deferred:
        async def run() -> None:
            base = await self._start()
            blob = b"some layer"
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            response = await treq.post(
                f"{base}/v2/team/app/blobs/uploads/?digest={digest}", data=blob, pool=self.pool
            )
            await treq.content(response)
            self.assertEqual(response.code, 201)
            response = await treq.get(f"{base}/v2/team/app/blobs/{digest}", pool=self.pool)
            self.assertEqual(await treq.content(response), blob)
            push = await self.accessEvent(lambda e: e["registryd_fields"]["method"] == "POST")
            pull = await self.accessEvent(lambda e: e["registryd_fields"]["route"] == "blob.get")
            self.assertEqual(len(self.events), 2)
            fields = push["registryd_fields"]
            self.assertEqual(
                (fields["status"], fields["repository"], fields["route"], fields["bytes_received"]),
                (201, "team/app", "uploads.start", len(blob)),
            )
            self.assertGreaterEqual(fields["duration"], 0)
            self.assertEqual(len(fields["request_id"]), 36)
            self.assertNotEqual(fields["request_id"], pull["registryd_fields"]["request_id"])
            self.assertEqual(pull["registryd_fields"]["bytes_sent"], len(blob))
            self.assertIn(f'"GET /v2/team/app/blobs/{digest} HTTP/1.1" 200 {len(blob)} ', pull["accessLine"])

        return ensureDeferred(run())

    def test_disabled(self) -> Deferred:
        async def run() -> None:
            base = await self._start(accesslog={"disabled": True})
            response = await treq.get(f"{base}/v2/", pool=self.pool)
            await treq.content(response)
            self.assertEqual(response.code, 200)
            self.assertEqual(self.events, [])

        return ensureDeferred(run())

    def test_client_gone_mid_upload_is_logged_499(self) -> Deferred:
        async def run() -> None:
            base = await self._start()
            response = await treq.post(f"{base}/v2/app/blobs/uploads/", pool=self.pool)
            await treq.content(response)
            location = response.headers.getRawHeaders("Location")[0]
            path = location.split(base, 1)[-1]
            host, port = base.removeprefix("http://").split(":")
            client = socket.create_connection((host, int(port)))
            client.sendall(
                f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10
            )
            client.close()
            event = await self.accessEvent(lambda e: e["registryd_fields"]["route"] == "upload.patch")
            self.assertEqual(event["registryd_fields"]["status"], 499)
            self.assertEqual(event["registryd_fields"]["repository"], "app")

        return ensureDeferred(run())

    def test_user_is_the_identity_name(self) -> None:
        from twisted.web.test.requesthelper import DummyRequest

        from registryd.web.accesslog import recordOf

        request = DummyRequest([b""])
        request.uri = b"/v2/"
        setattr(request, REQUEST_IDENTITY, Identity("alice", "htpasswd"))
        self.assertEqual(recordOf(request, 1.0, 3.5).user, "alice")
        self.assertEqual(recordOf(request, 1.0, 3.5).duration, 2.5)


class TwistdLoggingTests(TestCase):
    """The log section end to end in a real twistd process."""

    timeout = 120

    def _registryd(
        self, log: dict, extraArguments: list[str], env: dict[str, str] | None = None
    ) -> tuple[Path, Any]:
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        port = freePort()
        config = writeConfig(work, work / "root", port, extra={"log": log})
        command = registrydCommand(config)
        at = command.index("-n") + 1
        command[at:at] = extraArguments
        environ = registrydEnvironment()
        environ.update(env or {})
        registry = RegistryProcess(command, port, work / "stdout.log", cwd=work, env=environ)
        self.addCleanup(registry.stop)
        return work, registry

    def test_logfile_json(self) -> None:
        work, registry = self._registryd(
            {"formatter": "json", "fields": {"service": "registry"}}, ["--logfile", "registryd.json.log"]
        )
        registry.start()
        with socket.create_connection(("127.0.0.1", registry.port)) as client:
            client.sendall(b"GET /v2/_catalog HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while client.recv(65536):
                pass
        registry.stop()
        lines = (work / "registryd.json.log").read_text().splitlines()
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        self.assertTrue(all(r["service"] == "registry" for r in records))
        access = [r for r in records if r["namespace"] == "registryd.access"]
        catalog = [r for r in access if r["route"] == "catalog"]
        self.assertEqual(len(catalog), 1, lines)
        self.assertEqual(catalog[0]["status"], 200)
        self.assertIn('"GET /v2/_catalog HTTP/1.1" 200', catalog[0]["msg"])

    def test_journald_one_line_per_event_with_priority(self) -> None:
        work, registry = self._registryd({"level": "debug"}, [])
        registry.logPath.touch()
        info = os.stat(registry.logPath)
        registry.env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        registry.start()
        registry.stop()
        lines = registry.logPath.read_text().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[2-7]>", lines)
        # The readiness probe's GET /v2/ is in the access log as a plain combined line.
        self.assertTrue([line for line in lines if line.startswith("<6>127.0.0.1 - - [")], lines)


class JournalTests(TestCase):
    """Under systemd (stdout is JOURNAL_STREAM), each event is one line led by its priority."""

    def test_traceback_stays_on_one_line(self) -> None:
        from twisted.logger import Logger

        path = Path(self.mktemp())
        with open(path, "w") as out:
            info = os.fstat(out.fileno())
            observer = makeObserver(
                LogConfig(), out, environ={"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
            )
            logger = Logger(namespace="registryd.test", observer=observer)
            try:
                raise ZeroDivisionError("division by zero")
            except ZeroDivisionError:
                logger.failure("it broke")
            logger.warn("two\nlines")
        lines = path.read_text().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith("<2>[registryd.test] it broke\\nTraceback"), lines[0])
        self.assertIn("ZeroDivisionError", lines[0])
        self.assertEqual(lines[1], "<4>[registryd.test] two\\nlines")

    def test_other_streams_are_not_the_journal(self) -> None:
        out = StringIO()
        observer = makeObserver(LogConfig(), out, environ={"JOURNAL_STREAM": "1:2"})
        from twisted.logger import Logger

        Logger(namespace="registryd.test", observer=observer).info("hello")
        self.assertIn("[registryd.test#info] hello", out.getvalue())

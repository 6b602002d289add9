"""
C{http.workers}: a real twistd registryd with three processes on one listening socket
(the main one and two workers), driven over HTTP and skopeo, and its supervision: a killed
worker comes back, SIGHUP reaches the workers, SIGTERM or the main's death ends them all.

Which process answered is read from the access log: a worker's lines carry C{worker=N}.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from twisted.trial.unittest import TestCase

from registryd.config import ConfigError, load
from registryd.config.configuration import parseDocument
from registryd.workers import checkWorkers
from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.certificates import Authority
from tests.support.processes import RegistryProcess, freePort, registrydOn, runRegistryd, writeConfig
from tests.support.pushes import Pusher
from tests.support.skopeo import Skopeo, compareLayouts
from tests.test_e2e_tls import TLSRegistryProcess
from tests.test_e2e_tls import request as tlsRequest

WORKERS = 3
_ACCESS = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.[01]" (?P<status>\d+) .*?(?: worker=(?P<worker>\d+))?$'
)


def accessLines(logPath: Path) -> list[tuple[str, str, str, str]]:
    """(process, method, path, status) of every access-log line: process is C{main} or the worker's number."""
    lines = []
    for line in logPath.read_text(errors="replace").splitlines():
        match = _ACCESS.search(line)
        if match is not None and "route=" in line:
            lines.append((match["worker"] or "main", match["method"], match["path"], match["status"]))
    return lines


def childPids(pid: int) -> set[int]:
    """The pids of a process's living children (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def waitFor(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll until condition() is true; fail naming what was awaited (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class WorkersConfigTests(TestCase):
    """Reading http.workers, and what it cannot be combined with."""

    def configOf(self, http: dict, **sections: object) -> object:
        document = {
            "version": 0.1,
            "storage": {"inmemory": {}},
            "http": {"addr": ":5000", **http},
            **sections,
        }
        return parseDocument(document)

    def test_default_is_one_process(self) -> None:
        self.assertEqual(self.configOf({}).http.workers, 1)

    def test_workers_read(self) -> None:
        self.assertEqual(self.configOf({"workers": 3}).http.workers, 3)

    def test_zero_or_text_refused_naming_the_key(self) -> None:
        for value in (0, "three", True):
            with self.assertRaises(ConfigError) as caught:
                self.configOf({"workers": value})
            self.assertIn("http.workers", str(caught.exception))

    def test_environment_override(self) -> None:
        config = load(None, {"REGISTRY_HTTP_WORKERS": "4", "HOME": self.mktemp()})
        self.assertEqual(config.http.workers, 4)

    def test_notifications_refused_with_workers(self) -> None:
        endpoint = {"name": "hook", "url": "http://127.0.0.1:1/events"}
        config = self.configOf({"workers": 2}, notifications={"endpoints": [endpoint]})
        with self.assertRaises(ConfigError) as caught:
            checkWorkers(config)
        self.assertIn("http.workers", str(caught.exception))
        self.assertIn("notifications", str(caught.exception))

    def test_notifications_with_one_worker_or_disabled_endpoints_accepted(self) -> None:
        endpoint = {"name": "hook", "url": "http://127.0.0.1:1/events"}
        checkWorkers(self.configOf({"workers": 1}, notifications={"endpoints": [endpoint]}))
        disabled = {**endpoint, "disabled": True}
        checkWorkers(self.configOf({"workers": 2}, notifications={"endpoints": [disabled]}))


class WorkersTests(RegistryTestCase):
    """A twistd registryd with C{http.workers: 3}."""

    def setUp(self) -> None:
        self.root = self.workDirectory() / "root"
        self.registry = self.startWorkers(self.root)
        self.pusher = Pusher(self.registry.url)
        waitFor(lambda: self.workersServing() == {"1", "2"}, "the workers to serve")

    def workersServing(self) -> set[str]:
        """The workers that logged their listener's start."""
        lines = self.registry.logPath.read_text(errors="replace").splitlines()
        return {
            m.group(1) for line in lines if "starting on" in line and (m := re.search(r"worker=(\d+)$", line))
        }

    def startWorkers(self, root: Path, **sections: object) -> RegistryProcess:
        port = freePort()
        work = self.workDirectory()
        extra = {"http": {"addr": f"127.0.0.1:{port}", "workers": WORKERS}, **sections}
        config = writeConfig(work, root, port, extra=extra)
        return self._started(registrydOn(work, config, port))

    def workerPids(self) -> set[int]:
        return childPids(self.registry.pid)

    def processesServing(self, method: str, path: str) -> set[str]:
        """The processes whose access log shows a request of that method and path."""
        return {p for p, m, where, _ in accessLines(self.registry.logPath) if m == method and where == path}

    def spreadOver(self, send: Callable[[], object], method: str, path: str, count: int = 2) -> None:
        """Send requests (each on a new connection) until at least count processes served them."""
        sent = 0
        while len(self.processesServing(method, path)) < count:
            self.assertLess(sent, 400, f"{sent} requests all went to {self.processesServing(method, path)}")
            send()
            sent += 1

    def test_requests_spread_over_processes(self) -> None:
        """Connections are accepted by more than one process, and every one is answered."""
        statuses: list[int] = []
        self.spreadOver(
            lambda: statuses.append(http.request("GET", self.registry.url + "/v2/").status), "GET", "/v2/", 3
        )
        self.assertEqual(set(statuses), {200})
        self.assertEqual(len(self.workerPids()), WORKERS - 1)

    def test_uploads_in_parts_over_several_processes(self) -> None:
        """POST, PATCH and PUT of one upload may land on different processes: the upload completes."""
        for attempt in range(40):
            data = os.urandom(64 * 1024 + attempt)
            before = len(accessLines(self.registry.logPath))
            digest = self.pusher.blob("workers/uploads", data)
            lines = accessLines(self.registry.logPath)[before:]
            served = {p for p, _, path, _ in lines if "/blobs/uploads/" in path}
            response = http.request("GET", f"{self.registry.url}/v2/workers/uploads/blobs/{digest}")
            self.assertEqual((response.status, response.body), (200, data))
            if len(served) >= 2:
                return
        self.fail("no upload's requests were served by two processes")

    def test_skopeo_push_and_pull_round_trip(self) -> None:
        skopeo = Skopeo(self.registry)
        source, _, _ = self.buildLayout()
        skopeo.copy(f"oci:{source}:v1", skopeo.reference("workers/app", "v1"))
        out = self.workDirectory() / "out"
        skopeo.copy(skopeo.reference("workers/app", "v1"), f"oci:{out}:pulled")
        self.assertEqual(compareLayouts(source, "v1", out, "pulled"), [], self.registry.logTail())

    def test_moved_tag_is_seen_at_once_by_every_process(self) -> None:
        """After a tag moves through one process, no process answers with the old manifest."""
        first = self.pusher.image("workers/tags", "moving", [b"first layer"])
        path = "/v2/workers/tags/manifests/moving"

        def get() -> str:
            response = http.request("GET", self.registry.url + path, headers={"Accept": http.MANIFEST_ACCEPT})
            self.assertEqual(response.status, 200)
            return response.headers["Docker-Content-Digest"]

        seen: list[str] = []
        self.spreadOver(lambda: seen.append(get()), "GET", path, WORKERS)
        self.assertEqual(set(seen), {first.digest})
        second = self.pusher.image("workers/tags", "moving", [b"second layer"])
        self.assertNotEqual(first.digest, second.digest)
        before = len(accessLines(self.registry.logPath))
        after = [get() for _ in range(60)]
        self.assertEqual(set(after), {second.digest})
        answeredBy = {p for p, m, where, _ in accessLines(self.registry.logPath)[before:] if where == path}
        self.assertGreaterEqual(len(answeredBy), 2, "the reads after the move all went to one process")

    def test_deleted_blob_is_gone_for_every_process_with_inmemory_cache(self) -> None:
        """storage.cache.blobdescriptor inmemory is per process: with workers it is not used."""
        self.registry.stop()
        storage = {
            "filesystem": {"rootdirectory": str(self.root)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        }
        self.registry = self.startWorkers(self.root, storage=storage)
        self.pusher = Pusher(self.registry.url)
        waitFor(lambda: self.workersServing() == {"1", "2"}, "the workers to serve")
        digest = self.pusher.blob("workers/cached", b"cached blob")
        path = f"/v2/workers/cached/blobs/{digest}"
        url = self.registry.url + path
        self.spreadOver(
            lambda: self.assertEqual(http.request("HEAD", url).status, 200), "HEAD", path, WORKERS
        )
        self.assertEqual(http.request("DELETE", url).status, 202)
        before = len(accessLines(self.registry.logPath))
        self.assertEqual({http.request("HEAD", url).status for _ in range(60)}, {404})
        answeredBy = {p for p, m, where, _ in accessLines(self.registry.logPath)[before:] if m == "HEAD"}
        self.assertGreaterEqual(len(answeredBy), 2, "the HEADs after the delete all went to one process")

    def test_killed_worker_is_restarted(self) -> None:
        before = self.workerPids()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        waitFor(
            lambda: victim not in self.workerPids() and len(self.workerPids()) == WORKERS - 1, "a new worker"
        )
        self.assertEqual(len(self.workerPids() - before), 1)
        self.assertIn("restarting", self.registry.logTail(200))
        for _ in range(20):
            self.assertEqual(http.request("GET", self.registry.url + "/v2/").status, 200)

    def test_sighup_reaches_the_workers(self) -> None:
        os.kill(self.registry.pid, signal.SIGHUP)

        def reloaded() -> bool:
            lines = [line for line in self.registry.logPath.read_text().splitlines() if "reloading (" in line]
            return {m.group(1) for line in lines if (m := re.search(r"worker=(\d+)$", line))} == {"1", "2"}

        waitFor(reloaded, "both workers to log their reload")

    def test_sigterm_to_main_stops_every_worker(self) -> None:
        workers = self.workerPids()
        self.assertEqual(len(workers), WORKERS - 1)
        status = self.registry.stop()
        self.assertIn(status, (0, -signal.SIGTERM))
        self.assertEqual({pid for pid in workers if alive(pid)}, set())

    def test_workers_die_with_the_main_process(self) -> None:
        workers = self.workerPids()
        os.kill(self.registry.pid, signal.SIGKILL)
        waitFor(lambda: not any(alive(pid) for pid in workers), "the orphaned workers to exit")


class WorkersStartUpTests(RegistryTestCase):
    """What twistd refuses to start with."""

    def test_notifications_with_workers_refused_in_one_line(self) -> None:
        work = self.workDirectory()
        port = freePort()
        endpoint = {"name": "hook", "url": "http://127.0.0.1:1/events"}
        extra = {
            "http": {"addr": f"127.0.0.1:{port}", "workers": 2},
            "notifications": {"endpoints": [endpoint], "queue": {"path": str(work / "queue.sqlite")}},
        }
        config = writeConfig(work, work / "root", port, extra=extra)
        result = runRegistryd(work, config, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        output = (result.stdout + result.stderr).strip()
        self.assertIn("http.workers", output)
        self.assertNotIn("Traceback", output)
        self.assertEqual(json.dumps(output).count("http.workers"), 1)


class WorkersOverTLSTests(RegistryTestCase):
    """With C{http.tls}, the workers wrap the adopted socket in the same TLS as the main process."""

    def test_every_process_serves_verified_tls(self) -> None:
        ca = Authority("registryd workers CA")
        work = self.workDirectory()
        certificate, key = ca.intermediate().server().write(work / "tls", "server")
        context = ssl.create_default_context(cadata=ca.pem().decode("ascii"))
        port = freePort()
        tls = {"certificate": str(certificate), "key": str(key)}
        settings = {"addr": f"127.0.0.1:{port}", "workers": WORKERS, "tls": tls}
        config = writeConfig(work, work / "root", port, extra={"http": settings})
        registry = self._started(registrydOn(work, config, port, TLSRegistryProcess, context=context))
        served: set[str] = set()
        for _ in range(400):
            self.assertEqual(tlsRequest(registry.url + "/v2/", context=context).status, 200)
            served = {p for p, _, path, _ in accessLines(registry.logPath) if path == "/v2/"}
            if len(served) == WORKERS:
                break
        self.assertEqual(served, {"main", "1", "2"})

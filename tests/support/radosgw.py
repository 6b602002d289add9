"""
A Ceph radosgw on loopback for the s3 driver's tests against a real distributed object store.

Ceph 16 has no standalone rgw backend, so this is the lightest real cluster: one monitor, one
OSD on memstore (data in RAM, capped), and radosgw, with auth none, everything (configuration,
monitor store, OSD data, logs, sockets) below one temporary directory and on free ports. One
cluster serves the whole test run (each test uses its own bucket) and is stopped at exit.
C{.ci/run} installs the packages.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.processes import freePort
from tests.support.servers import (
    listening,
    logTail,
    sharedServer,
    spawn,
    stopProcess,
    systemPythonEnvironment,
)
from tests.support.tools import requireTool

ACCESS_KEY = "registryd-rgw-key"
SECRET_KEY = "registryd-rgw-secret"
_PACKAGES = "radosgw ceph-mon ceph-osd ceph-common"
#: memstore's cap on the OSD's data: it lives in RAM, and the tests store a few hundred MiB at most.
_MEMSTORE_BYTES = 2 << 30


class RadosgwStartError(Exception):
    """A step of bringing the cluster up failed; the message carries the logs' ends."""


class Radosgw:
    """ceph-mon, ceph-osd and radosgw below C{directory}; an S3 endpoint with one user."""

    accessKey = ACCESS_KEY
    secretKey = SECRET_KEY
    # radosgw takes any region in a SigV4 scope; the driver insists on a known one.
    region = "us-east-1"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.monPort = freePort()
        self.port = freePort()
        self.processes: dict[str, subprocess.Popen] = {}
        self.programs = {
            name: requireTool(name, _PACKAGES)
            for name in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
        }

    @property
    def endpoint(self) -> str:
        """The regionendpoint to configure."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.directory / "ceph.conf"

    def _configure(self) -> str:
        """Write ceph.conf; the cluster's fsid."""
        fsid = str(uuid.uuid4())
        d = self.directory
        for name in ("run", "log", "mon", "osd/osd.0", "rgw"):
            (d / name).mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "[global]\n"
            f"fsid = {fsid}\n"
            f"mon host = v2:127.0.0.1:{self.monPort}\n"
            "mon initial members = a\n"
            "auth cluster required = none\nauth service required = none\nauth client required = none\n"
            # With auth none there is no session key: the default "secure" mode to the monitor
            # refuses to connect (radosgw logs get_initial_auth_request returned -13).
            "ms mon client mode = crc\nms client mode = crc\n"
            "public network = 127.0.0.0/8\nms bind ipv6 = false\n"
            "osd pool default size = 1\nosd pool default min size = 1\n"
            "osd pool default pg num = 8\nosd pool default pgp num = 8\n"
            "mon allow pool size one = true\nmon allow pool delete = true\n"
            "osd objectstore = memstore\n"
            f"memstore device bytes = {_MEMSTORE_BYTES}\n"
            "osd crush chooseleaf type = 0\n"
            f"run dir = {d / 'run'}\n"
            f"log file = {d / 'log'}/$name.log\n"
            f"admin socket = {d / 'run'}/$name.asok\n"
            f"mon data = {d / 'mon'}/$name\n"
            f"osd data = {d / 'osd'}/$name\n"
            f"keyring = {d}/keyring\n"
            "\n[client.rgw.test]\n"
            f"rgw frontends = beast endpoint=127.0.0.1:{self.port}\n"
            f"rgw data = {d / 'rgw'}\n"
            "rgw dns name = 127.0.0.1\n"
        )
        return fsid

    def _run(self, tool: str, *arguments: str, timeout: float = 60) -> str:
        """Run one of Ceph's tools on this cluster; its output (RadosgwStartError on failure)."""
        command = [self.programs[tool], "-c", str(self.config), *arguments]
        try:
            done = subprocess.run(
                command,
                cwd=self.directory,
                env=systemPythonEnvironment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RadosgwStartError(f"{' '.join(command)} took over {timeout}s\n{self.logTail()}") from None
        if done.returncode != 0:
            raise RadosgwStartError(
                f"{' '.join(command)} exited with {done.returncode}: {done.stderr[-2000:]}\n{self.logTail()}"
            )
        return done.stdout

    def _spawn(self, name: str, *arguments: str) -> None:
        """Start a daemon in the foreground (so it is ours to stop), its output in log/NAME.out."""
        command = [self.programs[name], "-c", str(self.config), "-f", *arguments]
        self.processes[name] = spawn(
            command, self.directory / "log" / f"{name}.out", cwd=self.directory, env=systemPythonEnvironment()
        )

    def _waitFor(self, what: str, ready: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RadosgwStartError(f"{name} exited with {process.returncode}\n{self.logTail()}")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.25)
        raise RadosgwStartError(f"{what} not ready within {timeout}s\n{self.logTail()}")

    def _osdUp(self) -> bool:
        status = json.loads(self._run("ceph", "osd", "stat", "--format", "json"))
        return int(status.get("num_up_osds", 0)) >= 1

    def start(self, timeout: float = 120.0) -> None:
        """Bring up monitor, OSD and radosgw, and create the S3 user; stop everything on failure."""
        try:
            fsid = self._configure()
            monmap = str(self.directory / "monmap")
            monitor = f"v2:127.0.0.1:{self.monPort}"
            self._run("monmaptool", "--create", "--addv", "a", monitor, "--fsid", fsid, monmap)
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
            self._spawn("ceph-mon", "-i", "a")
            self._waitFor("ceph-mon", lambda: listening(self.monPort), timeout)
            osd = self._run("ceph", "osd", "create").strip()
            self._run("ceph-osd", "-i", osd, "--mkfs")
            self._run("ceph", "osd", "crush", "add-bucket", "localhost", "host")
            self._run("ceph", "osd", "crush", "move", "localhost", "root=default")
            self._run("ceph", "osd", "crush", "add", f"osd.{osd}", "1.0", "host=localhost")
            self._spawn("ceph-osd", "-i", osd)
            self._waitFor("ceph-osd", self._osdUp, timeout)
            self._spawn("radosgw", "-n", "client.rgw.test")
            self._waitFor("radosgw", lambda: listening(self.port), timeout)
            self._run(
                "radosgw-admin",
                "user",
                "create",
                "--uid=registryd",
                "--display-name=registryd tests",
                f"--access-key={ACCESS_KEY}",
                f"--secret-key={SECRET_KEY}",
            )
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        """Whether every daemon still runs."""
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def stop(self) -> None:
        """Stop radosgw, the OSD and the monitor (SIGTERM to each session, SIGKILL after 15 s)."""
        for name in ("radosgw", "ceph-osd", "ceph-mon"):
            process = self.processes.pop(name, None)
            if process is not None:
                stopProcess(process, 15, group=True)

    def logTail(self) -> str:
        """The ends of the daemons' logs, for failure messages."""
        tails = []
        for path in sorted((self.directory / "log").glob("*")):
            tails.append(f"--- {path.name}\n{logTail(path, 15)}")
        return "\n".join(tails)


def _startedRadosgw(directory: Path) -> Radosgw:
    radosgw = Radosgw(directory)
    radosgw.start()
    return radosgw


_failure: RadosgwStartError | None = None


def sharedRadosgw() -> Radosgw:
    """
    The test run's radosgw, started on first use (≈20 s); skips, or fails under CI, without Ceph.
    A cluster that failed to start is not tried again by every later test: they fail at once.
    """
    global _failure
    if _failure is not None:
        raise RadosgwStartError(f"radosgw failed to start earlier in this run: {_failure}")
    try:
        return sharedServer("radosgw", _startedRadosgw, Radosgw.alive)
    except RadosgwStartError as e:
        _failure = e
        raise

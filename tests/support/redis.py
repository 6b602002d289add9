"""A redis-server on loopback for the blob descriptor cache's tests, started and stopped by each test."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import freePort
from tests.support.tools import requireTool


class RedisServer:
    """redis-server in a temporary directory on a free port, without persistence."""

    def __init__(self, password: str | None = None) -> None:
        binary = requireTool("redis-server")
        self.port = freePort()
        self.directory = Path(tempfile.mkdtemp(prefix="registryd-redis-"))
        command = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        command += ["--dir", str(self.directory)]
        if password is not None:
            command += ["--requirepass", password]
        self.log = open(self.directory / "redis.log", "wb")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not listen within 15s")

    @property
    def addr(self) -> str:
        """The redis.addr to configure."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

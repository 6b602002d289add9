"""A redis-server on loopback for the blob descriptor cache's tests, started and stopped by each test."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from registryd.registry.resp import _Incomplete, encodeCommand, parseReply
from tests.support.processes import freePort
from tests.support.servers import listening, spawn, stopProcess, waitUntilReady
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
        self.process = spawn(command, self.directory / "redis.log")
        waitUntilReady(
            self.process,
            lambda: listening(self.port),
            15,
            0.05,
            lambda status: RuntimeError(f"redis-server exited with {status}"),
            lambda: RuntimeError("redis-server did not listen within 15s"),
            self.stop,
        )

    @property
    def addr(self) -> str:
        """The redis.addr to configure."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        stopProcess(self.process, 10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def command(self, *arguments: str | bytes | int) -> Any:
        """Send one command synchronously (to look at what the code under test stored); its reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            connection.sendall(encodeCommand(list(arguments)))
            buffer = b""
            while True:
                buffer += connection.recv(65536)
                try:
                    return parseReply(buffer)[0]
                except _Incomplete:
                    continue

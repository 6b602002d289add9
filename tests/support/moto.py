"""A moto S3 server on loopback for the s3 driver's tests: one per test run, a fresh bucket per test."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from tests.support.processes import freePort
from tests.support.s3 import (
    clientEnvironment,
    createBucket,
    createBucketNow,
    listKeys,
    newBucketName,
    parameters,
)
from tests.support.servers import listening, spawn, stopProcess, waitUntilReady
from tests.support.tools import requireModule

# The generic S3 helpers, re-exported for the tests written against moto first.
__all__ = [
    "ACCESS_KEY",
    "REGION",
    "SECRET_KEY",
    "MotoServer",
    "createBucket",
    "createBucketNow",
    "listKeys",
    "motoServer",
    "newBucketName",
    "parameters",
    "serverEnvironment",
]
serverEnvironment = clientEnvironment

ACCESS_KEY = "registryd-test-key"
SECRET_KEY = "registryd-test-secret"
REGION = "us-east-1"

_server: MotoServer | None = None


class MotoServer:
    """moto_server started in a temporary directory, stopped by pid when the test process ends."""

    accessKey = ACCESS_KEY
    secretKey = SECRET_KEY
    region = REGION

    def __init__(self) -> None:
        self.port = freePort()
        self.directory = tempfile.mkdtemp(prefix="registryd-moto-")
        env = clientEnvironment()
        self.process = spawn(
            # moto_server's own module, run by this Python: found even when a virtualenv's bin/
            # directory is not on PATH.
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            Path(self.directory) / "moto.log",
            cwd=self.directory,
            env=env,
        )
        waitUntilReady(
            self.process,
            lambda: listening(self.port),
            30,
            0.1,
            lambda status: RuntimeError(f"moto_server exited with {status}"),
            lambda: RuntimeError("moto_server did not listen within 30s"),
            self.stop,
        )

    @property
    def endpoint(self) -> str:
        """The regionendpoint to configure."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        stopProcess(self.process, 10)
        shutil.rmtree(self.directory, ignore_errors=True)


def motoServer() -> MotoServer:
    """The test run's moto server, started on first use (skips, or fails under CI, without moto)."""
    global _server
    requireModule("moto.server", "'moto[server]'")
    requireModule("flask", "'moto[server]'")
    if _server is None:
        _server = MotoServer()
        atexit.register(_server.stop)
    return _server

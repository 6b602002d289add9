"""A moto S3 server on loopback for the s3 driver's tests: one per test run, a fresh bucket per test."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.support.processes import freePort
from tests.support.servers import listening, spawn, stopProcess, waitUntilReady
from tests.support.tools import requireModule

ACCESS_KEY = "registryd-test-key"
SECRET_KEY = "registryd-test-secret"
REGION = "us-east-1"

_server: MotoServer | None = None


class MotoServer:
    """moto_server started in a temporary directory, stopped by pid when the test process ends."""

    def __init__(self) -> None:
        self.port = freePort()
        self.directory = tempfile.mkdtemp(prefix="registryd-moto-")
        env = serverEnvironment()
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


def serverEnvironment() -> dict[str, str]:
    """The environment for processes talking plain HTTP to moto: no CA bundle override, no AWS profile."""
    env = dict(os.environ)
    for key in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key, None)
    return env


def motoServer() -> MotoServer:
    """The test run's moto server, started on first use (skips, or fails under CI, without moto)."""
    global _server
    requireModule("moto.server", "'moto[server]'")
    requireModule("flask", "'moto[server]'")
    if _server is None:
        _server = MotoServer()
        atexit.register(_server.stop)
    return _server


def parameters(server: MotoServer, bucket: str, **extra: Any) -> dict[str, Any]:
    """The s3 driver's parameters for a bucket on the moto server."""
    section: dict[str, Any] = {
        "accesskey": ACCESS_KEY,
        "secretkey": SECRET_KEY,
        "region": REGION,
        "regionendpoint": server.endpoint,
        "forcepathstyle": True,
        "bucket": bucket,
        "secure": False,
    }
    section.update(extra)
    return section


def newBucketName() -> str:
    """A bucket name no other test uses."""
    return f"registryd-{uuid.uuid4().hex[:20]}"


async def createBucket(driver: Any) -> None:
    """Create the driver's bucket with a signed PUT (the driver expects it to exist)."""
    await driver.client.send("PUT", None)


def createBucketNow(server: MotoServer, bucket: str) -> None:
    """Create a bucket with a signed PUT, synchronously (for end-to-end tests outside the reactor)."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{server.endpoint}/{bucket}"
    request = AWSRequest(method="PUT", url=url, data=b"")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    prepared = urllib.request.Request(url, data=b"", method="PUT", headers=dict(request.headers.items()))
    with urllib.request.urlopen(prepared, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"creating bucket {bucket}: HTTP {response.status}")


def listKeys(server: MotoServer, bucket: str) -> list[str]:
    """Every key in a bucket (first thousand), with a signed ListObjectsV2."""
    import re
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{server.endpoint}/{bucket}?list-type=2"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    prepared = urllib.request.Request(url, method="GET", headers=dict(request.headers.items()))
    with urllib.request.urlopen(prepared, timeout=10) as response:
        return re.findall(r"<Key>([^<]*)</Key>", response.read().decode())

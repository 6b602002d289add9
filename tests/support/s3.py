"""
What the s3 driver's tests need from any S3 server on loopback (moto, Ceph radosgw): the driver's
parameters for a bucket, fresh bucket names, and bucket creation and listing signed by botocore.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
import uuid
from typing import Any, Protocol


class S3Server(Protocol):
    """An S3 endpoint started by the tests, and the one user's keys."""

    endpoint: str
    accessKey: str
    secretKey: str
    region: str


def parameters(server: S3Server, bucket: str, **extra: Any) -> dict[str, Any]:
    """The s3 driver's parameters for a bucket on C{server} (path-style, plain HTTP)."""
    section: dict[str, Any] = {
        "accesskey": server.accessKey,
        "secretkey": server.secretKey,
        "region": server.region,
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


#: What the machine's environment may hold that AWS libraries act on.
AWS_VARIABLES = ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def clientEnvironment(base: dict[str, str] | None = None) -> dict[str, str]:
    """
    The environment for processes talking plain HTTP to a test server: without the machine's
    AWS_CA_BUNDLE (AWS libraries would try to load it), AWS profile or keys; C{base} or this
    process's environment.
    """
    env = dict(os.environ if base is None else base)
    for key in AWS_VARIABLES:
        env.pop(key, None)
    return env


async def createBucket(driver: Any) -> None:
    """Create the driver's bucket with a signed PUT (the driver expects it to exist)."""
    await driver.client.send("PUT", None)


def signedRequest(server: S3Server, method: str, path: str, data: bytes | None = None) -> bytes:
    """Send one SigV4-signed request to C{server} synchronously (outside the reactor); its body."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{server.endpoint}{path}"
    request = AWSRequest(method=method, url=url, data=data)
    S3SigV4Auth(Credentials(server.accessKey, server.secretKey), "s3", server.region).add_auth(request)
    prepared = urllib.request.Request(url, data=data, method=method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {url}: HTTP {e.code} {e.read()[:500]!r}") from None


def createBucketNow(server: S3Server, bucket: str) -> None:
    """Create a bucket, synchronously (for end-to-end tests outside the reactor)."""
    signedRequest(server, "PUT", f"/{bucket}", b"")


def listKeys(server: S3Server, bucket: str) -> list[str]:
    """Every key in a bucket (first thousand), with a signed ListObjectsV2."""
    body = signedRequest(server, "GET", f"/{bucket}?list-type=2")
    return re.findall(r"<Key>([^<]*)</Key>", body.decode())

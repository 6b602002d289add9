"""
The oss storage driver: registry content in an Aliyun OSS bucket, through the s3 driver.

OSS answers the S3 API (SigV4-signed, plain request bodies), so this module only maps
distribution's oss parameters onto L{S3Settings} and sends OSS's own headers for an
object's ACL and server-side encryption; every request goes through the s3 driver's client,
multipart writers and streaming readers.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from registryd.config.errors import ConfigError
from registryd.storage.s3.config import (
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    MiB,
    S3Settings,
    _boolean,
    _endpointURL,
    _size,
    _string,
    _virtualHostable,
)
from registryd.storage.s3.driver import S3Driver

NAME = "oss"

PARAMETERS = (
    "accesskeyid",
    "accesskeysecret",
    "region",
    "endpoint",
    "internal",
    "encrypt",
    "secure",
    "chunksize",
    "rootdirectory",
    "bucket",
)

#: OSS region names as distribution takes them: oss-cn-beijing, oss-ap-southeast-1, …
_REGION = re.compile(r"^oss-[a-z]+(-[a-z0-9]+)+$")
#: OSS bucket names: 3 to 63 lower-case letters, digits and hyphens, no hyphen at either end.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")


def regionEndpoint(region: str, internal: bool, secure: bool) -> str:
    """OSS's own endpoint for a region: C{<region>[-internal].aliyuncs.com}, as distribution derives it."""
    host = f"{region}-internal.aliyuncs.com" if internal else f"{region}.aliyuncs.com"
    return ("https://" if secure else "http://") + host


def signingRegion(region: str) -> str:
    """The region OSS expects in a SigV4 credential scope: the region id without C{oss-} (cn-beijing)."""
    return region[len("oss-") :] if region.startswith("oss-") else region


def parseParameters(parameters: dict | None, name: str = NAME) -> S3Settings:
    """Read the oss section into the s3 driver's settings; a ConfigError names C{storage.oss.<param>}."""
    keyPath = ["storage", name]
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise ConfigError("must be a mapping of parameters", keyPath)
    for key in parameters:
        if key not in PARAMETERS:
            raise ConfigError(
                f"unknown parameter (known: {', '.join(sorted(PARAMETERS))})", keyPath + [str(key)]
            )

    accessKeyID = _string(parameters, "accesskeyid", keyPath)
    if accessKeyID is None:
        raise ConfigError("is required: the AccessKey ID used to sign requests", keyPath + ["accesskeyid"])
    accessKeySecret = _string(parameters, "accesskeysecret", keyPath)
    if accessKeySecret is None:
        raise ConfigError("is required: the AccessKey secret", keyPath + ["accesskeysecret"])

    region = _string(parameters, "region", keyPath)
    if region is None:
        raise ConfigError("is required (e.g. oss-cn-beijing)", keyPath + ["region"])
    if not _REGION.match(region):
        raise ConfigError(f"{region!r} is not an OSS region name (e.g. oss-cn-beijing)", keyPath + ["region"])

    bucket = _string(parameters, "bucket", keyPath)
    if bucket is None:
        raise ConfigError("is required: the bucket holding the registry's data", keyPath + ["bucket"])
    if not _BUCKET.match(bucket):
        raise ConfigError(f"{bucket!r} is not a valid OSS bucket name", keyPath + ["bucket"])

    secure = _boolean(parameters, "secure", True, keyPath)
    internal = _boolean(parameters, "internal", False, keyPath)
    given = _string(parameters, "endpoint", keyPath)
    if given is None:
        endpoint = regionEndpoint(region, internal, secure)
        pathStyle = False
    else:
        # A region-level host (the bucket is put in front of it) or any S3-compatible server;
        # IP addresses and localhost cannot carry a bucket name, so they get path-style URLs.
        endpoint = _endpointURL(given, secure, keyPath + ["endpoint"], bare=True)
        if (urlsplit(endpoint).hostname or "").startswith(bucket + "."):
            raise ConfigError(
                "names the region's host, without the bucket (e.g. oss-cn-beijing.aliyuncs.com)",
                keyPath + ["endpoint"],
            )
        pathStyle = not _virtualHostable(endpoint, bucket)

    root = (_string(parameters, "rootdirectory", keyPath) or "").strip("/")
    if root and any(not _COMPONENT.match(part) or part in (".", "..") for part in root.split("/")):
        raise ConfigError(
            f"{root!r} is not a key prefix made of [A-Za-z0-9._-] components", keyPath + ["rootdirectory"]
        )

    return S3Settings(
        name=name,
        bucket=bucket,
        region=signingRegion(region),
        endpoint=endpoint,
        pathStyle=pathStyle,
        accessKey=accessKeyID,
        secretKey=accessKeySecret,
        encrypt=_boolean(parameters, "encrypt", False, keyPath),
        chunkSize=_size(parameters, "chunksize", 10 * MiB, MIN_PART_SIZE, MAX_PART_SIZE, keyPath),
        rootDirectory=root,
        # OSS picks the bucket's storage class itself; no x-amz-storage-class is sent.
        storageClass="NONE",
    )


class OSSDriver(S3Driver):
    """The s3 driver with OSS's object headers: a private ACL and, with encrypt, AES256 at rest."""

    def _objectHeaders(self) -> dict[str, str]:
        headers = {"Content-Type": "application/octet-stream", "x-oss-object-acl": "private"}
        if self.settings.encrypt:
            headers["x-oss-server-side-encryption"] = "AES256"
        return headers


def createDriver(reactor: Any, parameters: dict | None) -> OSSDriver:
    """Build the driver from its configuration section; a ConfigError names the bad parameter."""
    from registryd.storage.s3.client import S3Client, staticCredentials

    settings = parseParameters(parameters)
    assert settings.accessKey is not None and settings.secretKey is not None
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    credentials = staticCredentials(settings.accessKey, settings.secretKey)
    return OSSDriver(settings, S3Client(reactor, settings, credentials))

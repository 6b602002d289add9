"""The s3 driver's parameters, as distribution documents them, read and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from registryd.config import parsers
from registryd.config.errors import ConfigError

MiB = 1 << 20
GiB = 1 << 30

#: S3's bounds on a multipart upload's parts.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10000
#: The largest object one CopyObject may copy.
MAX_COPY_OBJECT_SIZE = 5 * GiB

PARAMETERS = (
    "accesskey",
    "secretkey",
    "region",
    "regionendpoint",
    "redirectendpoint",
    "forcepathstyle",
    "bucket",
    "encrypt",
    "keyid",
    "secure",
    "skipverify",
    "v4auth",
    "chunksize",
    "multipartcopychunksize",
    "multipartcopymaxconcurrency",
    "multipartcopythresholdsize",
    "rootdirectory",
    "storageclass",
    "useragent",
    "usedualstack",
    "accelerate",
    "usefipsendpoint",
    "objectacl",
    "loglevel",
)

STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "OUTPOSTS",
    "NONE",
)
CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)
LOG_LEVELS = (
    "off",
    "debug",
    "debugwithsigning",
    "debugwithhttpbody",
    "debugwithrequestretries",
    "debugwithrequesterrors",
    "debugwitheventstreambody",
)

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class S3Settings:
    """Everything the driver needs to know, checked."""

    name: str
    bucket: str
    region: str
    endpoint: str
    """scheme://host[:port] requests go to."""
    pathStyle: bool
    redirectEndpoint: str | None = None
    accessKey: str | None = None
    secretKey: str | None = None
    encrypt: bool = False
    keyID: str | None = None
    skipVerify: bool = False
    v4auth: bool = True
    chunkSize: int = 10 * MiB
    copyChunkSize: int = 32 * MiB
    copyMaxConcurrency: int = 100
    copyThresholdSize: int = 32 * MiB
    rootDirectory: str = ""
    """The key prefix without slashes at either end ("" for the bucket's root)."""
    storageClass: str = "STANDARD"
    userAgent: str | None = None
    objectACL: str = "private"
    logLevel: str = "off"


def _boolean(parameters: dict, key: str, default: bool, keyPath: list[str]) -> bool:
    value = parameters.get(key)
    if value is None or value == "":
        return default
    return parsers.boolean(value, keyPath + [key])


def _string(parameters: dict, key: str, keyPath: list[str]) -> str | None:
    value = parameters.get(key)
    if value is None or value == "":
        return None
    return parsers.string(value, keyPath + [key]).strip() or None


def _size(parameters: dict, key: str, default: int, lowest: int, highest: int, keyPath: list[str]) -> int:
    value = parameters.get(key)
    if value is None or value == "":
        return default
    size = parsers.size(value, keyPath + [key])
    if not lowest <= size <= highest:
        raise ConfigError(f"must be between {lowest} and {highest} bytes, got {size}", keyPath + [key])
    return size


def _choice(parameters: dict, key: str, choices: tuple[str, ...], default: str, keyPath: list[str]) -> str:
    value = _string(parameters, key, keyPath)
    if value is None:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ConfigError(f"must be one of {', '.join(choices)}; got {value!r}", keyPath + [key])


def _endpointURL(value: str, secure: bool, keyPath: list[str], bare: bool) -> str:
    """scheme://host[:port] from an endpoint parameter; bare hosts take their scheme from secure."""
    if "://" not in value:
        value = ("https://" if secure else "http://") + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"must be an http:// or https:// URL with a host, got {value!r}", keyPath)
    if bare and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ConfigError("must not carry a path or query, only scheme and host", keyPath)
    return f"{parts.scheme}://{parts.netloc}"


def parseParameters(name: str, parameters: dict | None) -> S3Settings:
    """Read the driver's section; a ConfigError names C{storage.<name>.<parameter>} at fault."""
    keyPath = ["storage", name]
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise ConfigError("must be a mapping of parameters", keyPath)
    for key in parameters:
        if key not in PARAMETERS:
            raise ConfigError(
                f"unknown parameter (known: {', '.join(sorted(PARAMETERS))})", keyPath + [str(key)]
            )

    accessKey = _string(parameters, "accesskey", keyPath)
    secretKey = _string(parameters, "secretkey", keyPath)
    if (accessKey is None) != (secretKey is None):
        missing = "secretkey" if secretKey is None else "accesskey"
        raise ConfigError("accesskey and secretkey go together; give both or neither", keyPath + [missing])

    bucket = _string(parameters, "bucket", keyPath)
    if bucket is None:
        raise ConfigError("is required: the bucket holding the registry's data", keyPath + ["bucket"])
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(f"{bucket!r} is not a valid S3 bucket name", keyPath + ["bucket"])

    region = _string(parameters, "region", keyPath)
    if region is None:
        raise ConfigError("is required (e.g. us-east-1)", keyPath + ["region"])
    secure = _boolean(parameters, "secure", True, keyPath)
    forcePathStyle = _boolean(parameters, "forcepathstyle", False, keyPath)
    dualStack = _boolean(parameters, "usedualstack", False, keyPath)
    accelerate = _boolean(parameters, "accelerate", False, keyPath)
    fips = _boolean(parameters, "usefipsendpoint", False, keyPath)
    regionEndpoint = _string(parameters, "regionendpoint", keyPath)
    if regionEndpoint is not None:
        endpoint = _endpointURL(regionEndpoint, secure, keyPath + ["regionendpoint"], bare=False)
        for key, on in (("usedualstack", dualStack), ("accelerate", accelerate), ("usefipsendpoint", fips)):
            if on:
                raise ConfigError(
                    "chooses an AWS endpoint; it cannot be combined with regionendpoint", keyPath + [key]
                )
    else:
        if not _REGION.match(region):
            raise ConfigError(
                f"{region!r} is not an AWS region name (give regionendpoint for other S3 services)",
                keyPath + ["region"],
            )
        if accelerate and (forcePathStyle or fips):
            raise ConfigError(
                "transfer acceleration needs virtual-hosted addressing and no FIPS endpoint",
                keyPath + ["accelerate"],
            )
        if accelerate:
            host = "s3-accelerate.dualstack.amazonaws.com" if dualStack else "s3-accelerate.amazonaws.com"
        else:
            service = "s3-fips" if fips else "s3"
            host = (
                f"{service}.dualstack.{region}.amazonaws.com"
                if dualStack
                else f"{service}.{region}.amazonaws.com"
            )
        endpoint = ("https://" if secure else "http://") + host
    redirectEndpoint = _string(parameters, "redirectendpoint", keyPath)
    if redirectEndpoint is not None:
        if "://" not in redirectEndpoint:
            raise ConfigError("must include a scheme (http:// or https://)", keyPath + ["redirectendpoint"])
        redirectEndpoint = _endpointURL(redirectEndpoint, secure, keyPath + ["redirectendpoint"], bare=True)

    encrypt = _boolean(parameters, "encrypt", False, keyPath)
    keyID = _string(parameters, "keyid", keyPath)
    if keyID is not None and not encrypt:
        raise ConfigError(
            "a KMS key is only used with encrypt: true; set it or remove keyid", keyPath + ["keyid"]
        )

    v4auth = _boolean(parameters, "v4auth", True, keyPath)

    chunkSize = _size(parameters, "chunksize", 10 * MiB, MIN_PART_SIZE, MAX_PART_SIZE, keyPath)
    copyChunkSize = _size(
        parameters, "multipartcopychunksize", 32 * MiB, MIN_PART_SIZE, MAX_PART_SIZE, keyPath
    )
    copyThreshold = _size(
        parameters, "multipartcopythresholdsize", 32 * MiB, 0, MAX_COPY_OBJECT_SIZE, keyPath
    )
    concurrency = parameters.get("multipartcopymaxconcurrency")
    if concurrency is None or concurrency == "":
        concurrency = 100
    else:
        if isinstance(concurrency, str) and concurrency.strip().isdigit():
            concurrency = int(concurrency.strip())
        concurrency = parsers.integer(concurrency, keyPath + ["multipartcopymaxconcurrency"], minimum=1)

    root = _string(parameters, "rootdirectory", keyPath) or ""
    root = root.strip("/")
    if root and any(not _COMPONENT.match(part) or part in (".", "..") for part in root.split("/")):
        raise ConfigError(
            f"{root!r} is not a key prefix made of [A-Za-z0-9._-] components", keyPath + ["rootdirectory"]
        )

    return S3Settings(
        name=name,
        bucket=bucket,
        region=region,
        endpoint=endpoint,
        pathStyle=forcePathStyle or regionEndpoint is not None and not _virtualHostable(endpoint, bucket),
        redirectEndpoint=redirectEndpoint,
        accessKey=accessKey,
        secretKey=secretKey,
        encrypt=encrypt,
        keyID=keyID,
        skipVerify=_boolean(parameters, "skipverify", False, keyPath),
        v4auth=v4auth,
        chunkSize=chunkSize,
        copyChunkSize=copyChunkSize,
        copyMaxConcurrency=concurrency,
        copyThresholdSize=copyThreshold,
        rootDirectory=root,
        storageClass=_choice(parameters, "storageclass", STORAGE_CLASSES, "STANDARD", keyPath),
        userAgent=_string(parameters, "useragent", keyPath),
        objectACL=_choice(parameters, "objectacl", CANNED_ACLS, "private", keyPath),
        logLevel=_choice(parameters, "loglevel", LOG_LEVELS, "off", keyPath),
    )


def _virtualHostable(endpoint: str, bucket: str) -> bool:
    """Whether bucket.host can address the bucket at a custom endpoint (not IP addresses, dotted names)."""
    host = urlsplit(endpoint).hostname or ""
    return "." not in bucket and not re.match(r"^[0-9.]+$|^\[|^localhost$", host)

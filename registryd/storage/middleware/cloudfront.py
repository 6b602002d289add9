"""
The C{cloudfront} storage middleware: blob downloads are sent to a CloudFront distribution
in front of the storage, as URLs signed with a canned policy (CloudFront's RSA-SHA1 URL
signatures, as distribution's middleware makes with the AWS SDK's URL signer).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from twisted.internet.defer import Deferred, fail, succeed

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.storage.interfaces import IStorageDriver, StorageDriverError
from registryd.storage.middleware.base import DriverMiddleware
from registryd.storage.middleware.redirect import parseBaseURL
from registryd.storage.paths import checkPath

NAME = "cloudfront"
DEFAULT_DURATION = 20 * 60.0
_OPTIONS = (
    "baseurl",
    "privatekey",
    "keypairid",
    "duration",
    "ipfilteredby",
    "awsregion",
    "updatefrequency",
    "iprangesurl",
)
# CloudFront's URL-safe base64: '+', '=' and '/' are not safe in a query string.
_URL_SAFE = str.maketrans("+=/", "-_~")


def cannedPolicy(resource: str, expires: int) -> bytes:
    """The canned policy CloudFront checks a signature against: C{resource} readable until C{expires}."""
    policy = {
        "Statement": [{"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}]
    }
    return json.dumps(policy, separators=(",", ":")).encode("utf-8")


def cloudFrontBase64(data: bytes) -> str:
    """Base64 in CloudFront's query-safe alphabet."""
    return base64.b64encode(data).decode("ascii").translate(_URL_SAFE)


def signURL(url: str, expires: int, privateKey: rsa.RSAPrivateKey, keyPairID: str) -> str:
    """C{url} with the C{Expires}, C{Signature} and C{Key-Pair-Id} of a canned policy added."""
    signature = privateKey.sign(cannedPolicy(url, expires), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    separator = "&" if "?" in url else "?"
    return (
        f"{url}{separator}Expires={expires}&Signature={cloudFrontBase64(signature)}&Key-Pair-Id={keyPairID}"
    )


def objectKey(driver: IStorageDriver, path: str) -> str:
    """
    The name CloudFront's origin knows C{path} by: the object key of an object-store driver
    (root directory included, as distribution's S3BucketKey), else the path without its slash.
    """
    for method in ("_key", "_objectName"):  # the s3/oss driver's key; the other object stores' name
        keyOf = getattr(driver, method, None)
        if callable(keyOf):
            return keyOf(path)
    return path.lstrip("/")


class CloudFrontMiddleware(DriverMiddleware):
    """Answers every redirect with a CloudFront URL signed to expire C{duration} seconds from now."""

    def __init__(
        self,
        driver: IStorageDriver,
        baseURL: str,
        privateKey: rsa.RSAPrivateKey,
        keyPairID: str,
        duration: float = DEFAULT_DURATION,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(driver)
        self.baseURL = baseURL if baseURL.endswith("/") else baseURL + "/"
        self._privateKey = privateKey
        self.keyPairID = keyPairID
        self.duration = duration
        self._clock = clock or time.time

    def redirectURL(self, method: str, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
        except StorageDriverError:
            return fail()
        expires = int(self._clock() + self.duration)
        return succeed(
            signURL(self.baseURL + objectKey(self.driver, path), expires, self._privateKey, self.keyPairID)
        )


def _required(options: dict[str, Any], key: str, keyPath: parsers.KeyPath, what: str) -> str:
    if options.get(key) is None:
        raise ConfigError(f"required ({what})", [*keyPath, key])
    return parsers.string(options[key], [*keyPath, key])


def loadPrivateKey(path: str, keyPath: parsers.KeyPath) -> rsa.RSAPrivateKey:
    """The RSA private key in the PEM file at C{path}; ConfigError naming C{keyPath} when unusable."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", keyPath) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {e}", keyPath) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path} is not an RSA key (CloudFront key pairs are RSA)", keyPath)
    return key


def _duration(options: dict[str, Any], keyPath: parsers.KeyPath) -> float:
    value = options.get("duration")
    # distribution reads only a string with a unit; anything else leaves the default 20m.
    if not isinstance(value, str):
        return DEFAULT_DURATION
    seconds = parsers.duration(value, [*keyPath, "duration"])
    if seconds <= 0:
        raise ConfigError(f"must be more than zero, got {value!r}", [*keyPath, "duration"])
    return seconds


def create(
    driver: IStorageDriver, options: dict[str, Any], keyPath: parsers.KeyPath, clock: Any
) -> CloudFrontMiddleware:
    """The middleware from its C{options}; ConfigError naming C{<keyPath>.<option>}."""
    parsers.onlyKeys(options, _OPTIONS, keyPath)
    parseBaseURL(options, keyPath)
    baseURL = options["baseurl"]
    privateKeyFile = _required(options, "privatekey", keyPath, "the PEM file of the CloudFront key pair")
    keyPairID = _required(options, "keypairid", keyPath, "the CloudFront key pair ID")
    filtered = parsers.optional(options, "ipfilteredby", parsers.string, "none", keyPath).lower()
    if filtered in ("aws", "awsregion"):
        raise ConfigError(
            f"{filtered} is not supported by registryd (it needs AWS's IP ranges downloaded); use none",
            [*keyPath, "ipfilteredby"],
        )
    if filtered != "none":
        raise ConfigError(f"expected none, aws or awsregion, got {filtered!r}", [*keyPath, "ipfilteredby"])
    return CloudFrontMiddleware(
        driver,
        baseURL,
        loadPrivateKey(privateKeyFile, [*keyPath, "privatekey"]),
        keyPairID,
        _duration(options, keyPath),
        clock=getattr(clock, "seconds", None),
    )


__all__ = ["NAME", "CloudFrontMiddleware", "cannedPolicy", "cloudFrontBase64", "create", "signURL"]

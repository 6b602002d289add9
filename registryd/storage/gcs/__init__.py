"""
The Google Cloud Storage driver: content as objects in one bucket, over the JSON API with
OAuth2 service-account tokens (or the metadata server's), resumable uploads for writers
and V4 signed URLs for redirects.

Writers feed a resumable upload session one chunk (a multiple of 256 KiB) at a time;
C{close()} keeps the session and the unsent tail in a sidecar object (C{<name>#resumable})
so a later C{writer(path, append=True)} carries on; C{commit()} finalises the upload.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urlsplit

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.storage.gcs.auth import CredentialsError, ServiceAccount
from registryd.storage.gcs.driver import CHUNK_UNIT, DEFAULT_CHUNK_SIZE, NAME, GCSDriver
from registryd.storage.interfaces import StorageDriverError
from registryd.storage.paths import checkPath

__all__ = ["NAME", "GCSDriver", "createDriver"]

_PARAMETERS = ("bucket", "keyfile", "credentials", "rootdirectory", "chunksize", "endpoint")
_BUCKET = re.compile(r"^(?=.{3,222}$)[a-z0-9][a-z0-9._-]*[a-z0-9]$")


def createDriver(reactor: Any, parameters: dict | None) -> GCSDriver:
    """Build the driver from its configuration section, raising ConfigError naming a bad parameter."""
    keyPath = ["storage", NAME]
    section = parsers.mapping(parameters, keyPath)
    parsers.onlyKeys(section, _PARAMETERS, keyPath)

    def at(key: str) -> list[str]:
        return [*keyPath, key]

    bucket = section.get("bucket")
    if bucket is None:
        raise ConfigError("required", at("bucket"))
    bucket = parsers.string(bucket, at("bucket"))
    if not _BUCKET.match(bucket) or any(len(part) > 63 for part in bucket.split(".")):
        raise ConfigError("must be a bucket name: lowercase letters, digits, '-', '_' and '.'", at("bucket"))

    account = None
    if "credentials" in section and "keyfile" in section:
        raise ConfigError("give keyfile or credentials, not both", at("credentials"))
    if "credentials" in section:
        info = parsers.mapping(section["credentials"], at("credentials"), allowNone=False)
        account = _account(info, at("credentials"))
    elif "keyfile" in section:
        account = _account(
            _readKeyFile(parsers.string(section["keyfile"], at("keyfile")), at("keyfile")), at("keyfile")
        )

    endpoint = parsers.optional(section, "endpoint", parsers.string, "", keyPath) or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError("must be an http or https URL without query", at("endpoint"))

    anonymous = False
    if account is None:
        # Application Default Credentials: a key file named by the environment, else the
        # metadata server; an emulator (endpoint set) needs no credentials at all.
        adc = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if adc:
            account = _account(_readKeyFile(adc, at("keyfile")), at("keyfile"))
        elif endpoint is not None:
            anonymous = True

    rootDirectory = parsers.optional(section, "rootdirectory", parsers.string, "", keyPath)
    if rootDirectory.strip("/") and _checkPathOrNone("/" + rootDirectory.strip("/")) is None:
        raise ConfigError("must be a '/'-separated path of [A-Za-z0-9._-] names", at("rootdirectory"))
    chunkSize = parsers.optional(section, "chunksize", parsers.size, DEFAULT_CHUNK_SIZE, keyPath)
    if chunkSize < CHUNK_UNIT or chunkSize % CHUNK_UNIT:
        raise ConfigError("must be a positive multiple of 256 KiB (262144)", at("chunksize"))
    return GCSDriver(
        reactor,
        bucket,
        account=account,
        anonymous=anonymous,
        rootDirectory=rootDirectory,
        chunkSize=chunkSize,
        endpoint=endpoint,
    )


def _readKeyFile(path: str, keyPath: list[str]) -> dict:
    """The parsed JSON of a service account key file (read once, at start-up)."""
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", keyPath) from None
    except ValueError:
        raise ConfigError(f"{path} is not a JSON key file", keyPath) from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path} is not a JSON key file", keyPath)
    return info


def _account(info: dict, keyPath: list[str]) -> ServiceAccount:
    try:
        return ServiceAccount.fromInfo(info)
    except CredentialsError as e:
        raise ConfigError(str(e), keyPath) from None


def _checkPathOrNone(path: str) -> str | None:
    """path if it is a valid storage path, else None."""
    try:
        return checkPath(NAME, path)
    except StorageDriverError:
        return None

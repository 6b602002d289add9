"""
The Azure Blob Storage driver: content as block blobs in one container, over the Blob
service REST API with Shared Key authorization or Entra ID credentials (client_secret,
default), working against Azure and Azurite.

Writers stage one block per chunk as it fills (Put Block); C{close()} leaves the blocks
uncommitted, so a later writer finds them again with Get Block List and carries on;
C{commit()} makes them the blob (Put Block List). Readers stream one ranged GET.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import urlsplit

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.storage.azure.credentials import parseCredentials
from registryd.storage.azure.driver import DEFAULT_CHUNK_SIZE, DEFAULT_REALM, NAME, AzureDriver
from registryd.storage.interfaces import StorageDriverError
from registryd.storage.paths import checkPath

__all__ = ["NAME", "AzureDriver", "createDriver"]

_PARAMETERS = (
    "accountname",
    "accountkey",
    "container",
    "credentials",
    "realm",
    "serviceurl",
    "rootdirectory",
    "max_retries",
    "retry_delay",
    "chunksize",
)
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
_REALM = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def createDriver(reactor: Any, parameters: dict | None, tlsPolicy: Any = None) -> AzureDriver:
    """
    Build the driver from its configuration section, raising ConfigError naming a bad parameter.

    @param tlsPolicy: the agent's C{IPolicyForHTTPS}; the platform's trust by default.
    """
    keyPath = ["storage", NAME]
    section = parsers.mapping(parameters, keyPath)
    parsers.onlyKeys(section, _PARAMETERS, keyPath)

    def at(key: str) -> list[str]:
        return [*keyPath, key]

    credentials = parsers.optional(section, "credentials", lambda v, p: parsers.mapping(v, p), {}, keyPath)
    credential = parseCredentials(credentials, at("credentials"))

    accountName = section.get("accountname")
    if accountName is None:
        raise ConfigError("required", at("accountname"))
    accountName = parsers.string(accountName, at("accountname"))
    if not _ACCOUNT.match(accountName):
        raise ConfigError("must be 3 to 24 lowercase letters and digits", at("accountname"))
    accountKey = section.get("accountkey")
    if accountKey is None and credential is None:
        raise ConfigError("required with shared_key credentials", at("accountkey"))
    if credential is not None:
        # Bearer tokens authorize every request; an account key set as well is not used.
        accountKey = None
    else:
        accountKey = parsers.string(accountKey, at("accountkey"))
        try:
            if not base64.b64decode(accountKey, validate=True):
                raise ValueError("empty")
        except (binascii.Error, ValueError):
            raise ConfigError("must be the account key in base64", at("accountkey")) from None
    container = section.get("container")
    if container is None:
        raise ConfigError("required", at("container"))
    container = parsers.string(container, at("container"))
    if not _CONTAINER.match(container):
        raise ConfigError(
            "must be 3 to 63 lowercase letters, digits and single hyphens, starting and ending alphanumeric",
            at("container"),
        )
    realm = parsers.optional(section, "realm", parsers.string, DEFAULT_REALM, keyPath)
    if not _REALM.match(realm):
        raise ConfigError("must be a domain name such as core.windows.net", at("realm"))
    serviceURL = parsers.optional(section, "serviceurl", parsers.string, "", keyPath) or None
    if serviceURL is not None:
        parts = urlsplit(serviceURL)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError("must be an http or https URL without query", at("serviceurl"))
    rootDirectory = parsers.optional(section, "rootdirectory", parsers.string, "", keyPath)
    if rootDirectory.strip("/") and checkPathOrNone("/" + rootDirectory.strip("/")) is None:
        raise ConfigError("must be a '/'-separated path of [A-Za-z0-9._-] names", at("rootdirectory"))
    maxRetries = parsers.optional(section, "max_retries", lambda v, p: parsers.integer(v, p, -1), 5, keyPath)
    retryDelay = parsers.optional(section, "retry_delay", parsers.duration, 0.1, keyPath)
    chunkSize = parsers.optional(section, "chunksize", parsers.size, DEFAULT_CHUNK_SIZE, keyPath)
    if not (1 << 20) <= chunkSize <= (4000 << 20):
        raise ConfigError("must be between 1 MiB and 4000 MiB (Azure's block size limit)", at("chunksize"))
    return AzureDriver(
        reactor,
        accountName,
        accountKey,
        container,
        serviceURL=serviceURL,
        realm=realm,
        rootDirectory=rootDirectory,
        maxRetries=maxRetries,
        retryDelay=retryDelay,
        chunkSize=chunkSize,
        credential=credential,
        tlsPolicy=tlsPolicy,
    )


def checkPathOrNone(path: str) -> str | None:
    """path if it is a valid storage path, else None."""
    try:
        return checkPath(NAME, path)
    except StorageDriverError:
        return None

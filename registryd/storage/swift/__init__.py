"""
The OpenStack Swift driver: content as objects in one container, over Swift's REST API (treq),
authenticated with auth v1 (tempauth, swauth), Keystone v2 or Keystone v3.

Writers upload a segment each time C{chunksize} bytes fill; C{close()} keeps the segments and a
small record naming them, so a later writer lists them and carries on; C{commit()} writes a
Dynamic Large Object manifest. Readers stream one ranged GET. With C{secretkey}, downloads are
redirected to temporary URLs.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.storage.swift.auth import Credentials
from registryd.storage.swift.driver import DEFAULT_CHUNK_SIZE, NAME, SwiftDriver

__all__ = ["NAME", "SwiftDriver", "createDriver"]

_PARAMETERS = (
    "authurl",
    "username",
    "password",
    "tenant",
    "tenantid",
    "domain",
    "domainid",
    "tenantdomain",
    "tenantdomainid",
    "trustid",
    "region",
    "container",
    "prefix",
    "chunksize",
    "secretkey",
    "accesskey",
    "authversion",
    "insecureskipverify",
    "endpointtype",
    "tempurlcontainerkey",
    "tempurlmethods",
)
_ENDPOINT_TYPES = ("public", "internal", "admin")
_TEMPURL_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def createDriver(reactor: Any, parameters: dict | None) -> SwiftDriver:
    """Build the driver from its configuration section, raising ConfigError naming a bad parameter."""
    keyPath = ["storage", NAME]
    section = parsers.mapping(parameters, keyPath)
    parsers.onlyKeys(section, _PARAMETERS, keyPath)

    def at(key: str) -> list[str]:
        return [*keyPath, key]

    def required(key: str) -> str:
        value = section.get(key)
        if value is None or value == "":
            raise ConfigError("required", at(key))
        return parsers.string(value, at(key))

    def text(key: str) -> str:
        value = section.get(key)
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return parsers.string(value, at(key))

    authURL = required("authurl")
    parts = urlsplit(authURL)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ConfigError("must be an http or https URL", at("authurl"))
    username = required("username")
    password = required("password")
    container = required("container")
    if "/" in container or len(container) > 256:
        raise ConfigError("must be a container name without '/' of at most 256 characters", at("container"))
    for one, other in (("tenant", "tenantid"), ("domain", "domainid"), ("tenantdomain", "tenantdomainid")):
        if text(one) and text(other):
            raise ConfigError(f"give either {one} or {other}, not both", at(other))
    authVersion = section.get("authversion")
    if authVersion is None or authVersion == 0:
        path = parts.path.rstrip("/")
        authVersion = 3 if "v3" in path else 2 if "v2" in path else 1
    else:
        if isinstance(authVersion, str) and authVersion.strip().isdigit():
            authVersion = int(authVersion)
        if authVersion not in (1, 2, 3):
            raise ConfigError("must be 1, 2 or 3", at("authversion"))
    endpointType = text("endpointtype") or "public"
    if endpointType not in _ENDPOINT_TYPES:
        raise ConfigError(f"must be one of {', '.join(_ENDPOINT_TYPES)}", at("endpointtype"))
    prefix = text("prefix").strip("/")
    if prefix and (not _PREFIX.match(prefix) or any(part in (".", "..") for part in prefix.split("/"))):
        raise ConfigError("must be a '/'-separated path of [A-Za-z0-9._-] names", at("prefix"))
    chunkSize = parsers.optional(section, "chunksize", parsers.size, DEFAULT_CHUNK_SIZE, keyPath)
    if not (1 << 20) <= chunkSize <= (5 << 30):
        raise ConfigError("must be between 1 MiB and 5 GiB (Swift's object size limit)", at("chunksize"))
    insecure = parsers.optional(section, "insecureskipverify", parsers.boolean, False, keyPath)
    containerKey = parsers.optional(section, "tempurlcontainerkey", parsers.boolean, False, keyPath)
    methods = section.get("tempurlmethods")
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ConfigError("must be a list of HTTP methods", at("tempurlmethods"))
        methods = [m.upper() for m in methods]
        for method in methods:
            if method not in _TEMPURL_METHODS:
                raise ConfigError(f"unknown method {method!r}", at("tempurlmethods"))
    credentials = Credentials(
        authURL=authURL,
        version=authVersion,
        username=username,
        password=password,
        tenant=text("tenant"),
        tenantID=text("tenantid"),
        domain=text("domain"),
        domainID=text("domainid"),
        tenantDomain=text("tenantdomain"),
        tenantDomainID=text("tenantdomainid"),
        trustID=text("trustid"),
        region=text("region"),
        endpointType=endpointType,
    )
    return SwiftDriver(
        reactor,
        credentials,
        container,
        prefix=prefix,
        chunkSize=chunkSize,
        secretKey=text("secretkey"),
        accessKey=text("accesskey"),
        insecureSkipVerify=insecure,
        tempURLContainerKey=containerKey,
        tempURLMethods=methods if methods is not None else ["GET", "HEAD"],
    )

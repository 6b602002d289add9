"""
Microsoft Entra ID (Azure AD) credentials for the azure driver, as distribution 3's
C{credentials} section names them: C{client_secret} (an app registration's secret) and
C{default} / C{default_credentials} (azure-identity's environment variables: a client
secret, or a workload identity's federated token file). Either is exchanged at the
authority's token endpoint for a bearer token of the storage scope, cached until shortly
before it expires.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import treq
from twisted.internet.threads import deferToThread

from registryd.config import parsers
from registryd.config.errors import ConfigError
from registryd.storage.oauth import CachedAccessToken, readTokenAnswer

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
SCOPE = "https://storage.azure.com/.default"
#: The credential types of distribution's azure driver; shared_key signs with accountkey.
TYPES = ("shared_key", "client_secret", "default", "default_credentials")
_TENANT = re.compile(r"^[A-Za-z0-9.-]+$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ClientSecret:
    """An application's client ID and secret in a tenant (OAuth2 client credentials grant)."""

    tenantID: str
    clientID: str
    secret: str
    authority: str = DEFAULT_AUTHORITY

    async def form(self) -> dict[str, str]:
        """The token request's form fields."""
        return {
            "grant_type": "client_credentials",
            "client_id": self.clientID,
            "client_secret": self.secret,
            "scope": SCOPE,
        }


@dataclass(frozen=True)
class FederatedToken:
    """Workload identity: the client's assertion is a token file Kubernetes keeps fresh."""

    tenantID: str
    clientID: str
    tokenFile: str
    authority: str = DEFAULT_AUTHORITY

    async def form(self) -> dict[str, str]:
        """The token request's form fields, the assertion read again each time (it rotates)."""
        assertion = await deferToThread(Path(self.tokenFile).read_text)
        return {
            "grant_type": "client_credentials",
            "client_id": self.clientID,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion.strip(),
            "scope": SCOPE,
        }


Credential = ClientSecret | FederatedToken


def _authority(value: str, keyPath: parsers.KeyPath) -> str:
    parts = urlsplit(value)
    # A client secret goes to this host: TLS unless it never leaves the machine (a test endpoint).
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not (parts.scheme == "https" or loopback) or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"expected an https:// URL such as {DEFAULT_AUTHORITY}, got {value!r}", keyPath)
    return value.rstrip("/")


def _tenant(value: str, keyPath: parsers.KeyPath) -> str:
    if not _TENANT.match(value):
        raise ConfigError("must be a tenant ID or domain (letters, digits, '.' and '-')", keyPath)
    return value


def parseCredentials(
    section: Mapping[str, Any], keyPath: parsers.KeyPath, environ: Mapping[str, str] | None = None
) -> Credential | None:
    """
    The C{credentials} section: None for shared_key (accountkey signs), else the Entra ID
    credential. C{authority} (or C{AZURE_AUTHORITY_HOST}) replaces the public cloud's.

    @raise ConfigError: naming C{<keyPath>.<key>}; for C{default}, the environment variables missing.
    """
    environ = os.environ if environ is None else environ
    parsers.onlyKeys(section, ("type", "clientid", "tenantid", "secret", "authority"), keyPath)

    def at(key: str) -> list[str]:
        return [*keyPath, key]

    kind = parsers.optional(section, "type", parsers.string, "shared_key", keyPath)
    if kind == "managed_identity":
        raise ConfigError(
            "managed_identity is not supported by registryd (it needs the instance metadata service); "
            "use client_secret, or default with AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET",
            at("type"),
        )
    if kind not in TYPES:
        raise ConfigError(f"unknown type {kind!r} (known: {', '.join(TYPES)})", at("type"))
    if kind == "shared_key":
        return None
    authority = parsers.optional(section, "authority", parsers.string, "", keyPath)
    if authority:
        authority = _authority(authority, at("authority"))
    elif environ.get("AZURE_AUTHORITY_HOST"):
        authority = _authority(environ["AZURE_AUTHORITY_HOST"], at("authority"))
    else:
        authority = DEFAULT_AUTHORITY
    if kind == "client_secret":
        values = {}
        for key in ("tenantid", "clientid", "secret"):
            if section.get(key) is None:
                raise ConfigError("required with client_secret credentials", at(key))
            values[key] = parsers.string(section[key], at(key))
        tenant = _tenant(values["tenantid"], at("tenantid"))
        return ClientSecret(tenant, values["clientid"], values["secret"], authority)
    # default: azure-identity's EnvironmentCredential, then its WorkloadIdentityCredential.
    tenant, client = environ.get("AZURE_TENANT_ID"), environ.get("AZURE_CLIENT_ID")
    if tenant and client and environ.get("AZURE_CLIENT_SECRET"):
        return ClientSecret(_tenant(tenant, at("type")), client, environ["AZURE_CLIENT_SECRET"], authority)
    if tenant and client and environ.get("AZURE_FEDERATED_TOKEN_FILE"):
        return FederatedToken(
            _tenant(tenant, at("type")), client, environ["AZURE_FEDERATED_TOKEN_FILE"], authority
        )
    raise ConfigError(
        f"{kind} credentials need AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET "
        "(or AZURE_FEDERATED_TOKEN_FILE for workload identity) in the environment",
        at("type"),
    )


class BearerToken:
    """Access tokens of the storage scope for one credential, fetched through C{agent} and cached."""

    def __init__(self, reactor: Any, agent: Any, credential: Credential) -> None:
        self._agent = agent
        self.credential = credential
        self._cache = CachedAccessToken(reactor, self._fetch)

    @property
    def tokenURL(self) -> str:
        """The tenant's OAuth2 v2.0 token endpoint at the authority."""
        return f"{self.credential.authority}/{self.credential.tenantID}/oauth2/v2.0/token"

    async def authorization(self) -> str:
        """The C{Authorization} header value. TokenError when the authority refuses."""
        return "Bearer " + await self._cache.token()

    async def _fetch(self) -> tuple[str, float]:
        body = urlencode(await self.credential.form()).encode("ascii")
        response = await treq.post(
            self.tokenURL,
            data=body,
            headers={"Content-Type": ["application/x-www-form-urlencoded"]},
            agent=self._agent,
        )
        return await readTokenAnswer(response)


__all__ = [
    "DEFAULT_AUTHORITY",
    "SCOPE",
    "TYPES",
    "BearerToken",
    "ClientSecret",
    "FederatedToken",
    "parseCredentials",
]

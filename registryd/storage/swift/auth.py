"""Getting a token and the storage URL: auth v1 (tempauth), Keystone v2 and Keystone v3."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import treq
from twisted.web.http_headers import Headers


class AuthError(Exception):
    """The auth service refused the credentials or gave no object-store endpoint."""


@dataclass(frozen=True)
class Credentials:
    """What the configuration says about authenticating."""

    authURL: str
    version: int
    username: str
    password: str
    tenant: str = ""
    tenantID: str = ""
    domain: str = ""
    domainID: str = ""
    tenantDomain: str = ""
    tenantDomainID: str = ""
    trustID: str = ""
    region: str = ""
    endpointType: str = "public"


@dataclass(frozen=True)
class Login:
    """What a successful authentication gives: the token, where to use it, and until when."""

    token: str
    storageURL: str
    tenantID: str = ""
    #: POSIX time the token expires at, when the auth service says (Keystone does, auth v1 does not).
    expires: float | None = None


def tokenExpiry(answer: dict) -> float | None:
    """When a Keystone v3 (token.expires_at) or v2 (access.token.expires) token expires, if it says."""
    v2Token = answer.get("access", {}).get("token", {})
    stamp = answer.get("token", {}).get("expires_at") or v2Token.get("expires")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _headers(values: dict[str, str]) -> Headers:
    """Twisted Headers from a plain dict."""
    return Headers({k.encode(): [v.encode()] for k, v in values.items()})


def _header(response: Any, name: str) -> str:
    """One response header as text ("" when absent)."""
    return (response.headers.getRawHeaders(name.encode()) or [b""])[0].decode()


def v2Body(c: Credentials) -> dict:
    """The Keystone v2 token request."""
    auth: dict[str, Any] = {"passwordCredentials": {"username": c.username, "password": c.password}}
    if c.tenantID:
        auth["tenantId"] = c.tenantID
    elif c.tenant:
        auth["tenantName"] = c.tenant
    return {"auth": auth}


def v3Body(c: Credentials) -> dict:
    """The Keystone v3 token request (password method, project or trust scope)."""
    domain = {"id": c.domainID} if c.domainID else {"name": c.domain or "Default"}
    identity = {
        "methods": ["password"],
        "password": {"user": {"name": c.username, "password": c.password, "domain": domain}},
    }
    auth: dict[str, Any] = {"identity": identity}
    if c.trustID:
        auth["scope"] = {"OS-TRUST:trust": {"id": c.trustID}}
    elif c.tenantID:
        auth["scope"] = {"project": {"id": c.tenantID}}
    elif c.tenant:
        if c.tenantDomainID:
            projectDomain = {"id": c.tenantDomainID}
        elif c.tenantDomain:
            projectDomain = {"name": c.tenantDomain}
        else:
            projectDomain = domain
        auth["scope"] = {"project": {"name": c.tenant, "domain": projectDomain}}
    return {"auth": auth}


def v2Endpoint(c: Credentials, answer: dict) -> tuple[str, str, str]:
    """(token, storage URL, tenant id) from a Keystone v2 answer."""
    access = answer.get("access", {})
    token = access.get("token", {})
    key = {"public": "publicURL", "internal": "internalURL", "admin": "adminURL"}[c.endpointType]
    for service in access.get("serviceCatalog", []):
        if service.get("type") != "object-store":
            continue
        for endpoint in service.get("endpoints", []):
            if c.region and endpoint.get("region") != c.region:
                continue
            if endpoint.get(key):
                return token.get("id", ""), endpoint[key], token.get("tenant", {}).get("id", "")
    raise _noEndpoint(c)


def v3Endpoint(c: Credentials, token: str, answer: dict) -> tuple[str, str, str]:
    """(token, storage URL, project id) from a Keystone v3 answer."""
    body = answer.get("token", {})
    if not (body.get("project") or body.get("catalog")):
        raise AuthError(
            f"Keystone gave user {c.username!r} a token scoped to no project: give tenant or tenantid "
            "(or trustid), or give the user a default project"
        )
    for service in body.get("catalog", []):
        if service.get("type") != "object-store":
            continue
        for endpoint in service.get("endpoints", []):
            if endpoint.get("interface") != c.endpointType:
                continue
            if c.region and c.region not in (endpoint.get("region"), endpoint.get("region_id")):
                continue
            return token, endpoint["url"], body.get("project", {}).get("id", "")
    raise _noEndpoint(c)


def _keystoneMessage(content: bytes) -> str:
    """Keystone's explanation in an error answer ({"error": {"message": ...}}), "" when there is none."""
    try:
        error = json.loads(content).get("error", {})
        return str(error.get("message", ""))[:300] if isinstance(error, dict) else ""
    except (ValueError, AttributeError):
        return ""


def _noEndpoint(c: Credentials) -> AuthError:
    """The catalog had no object-store endpoint of the wanted interface (and region)."""
    where = f" in region {c.region!r}" if c.region else ""
    return AuthError(f"no {c.endpointType} object-store endpoint{where} in the service catalog")


async def authenticate(client: Any, c: Credentials) -> Login:
    """Log in: the token, the object-store URL, the tenant id and the token's expiry."""
    base = c.authURL.rstrip("/")
    if c.version == 1:
        response = await client.get(
            c.authURL, headers=_headers({"X-Auth-User": c.username, "X-Auth-Key": c.password})
        )
        await treq.content(response)
        if response.code not in (200, 204):
            raise AuthError(f"auth v1 at {c.authURL} refused user {c.username!r}: HTTP {response.code}")
        token, url = _header(response, "X-Auth-Token"), _header(response, "X-Storage-Url")
        if not token or not url:
            raise AuthError("auth v1 gave no token or storage URL")
        return Login(token, url)
    if c.version == 2:
        url = base if base.endswith("/tokens") else base + "/tokens"
        body = json.dumps(v2Body(c)).encode()
    else:
        url = base if base.endswith("/auth/tokens") else base + "/auth/tokens"
        body = json.dumps(v3Body(c)).encode()
    response = await client.post(url, data=body, headers=_headers({"Content-Type": "application/json"}))
    content = await treq.content(response)
    if response.code not in (200, 201):
        raise AuthError(
            f"Keystone v{c.version} at {url} refused user {c.username!r}: "
            f"HTTP {response.code} {_keystoneMessage(content)}".rstrip()
        )
    answer = json.loads(content)
    if c.version == 2:
        found = v2Endpoint(c, answer)
    else:
        found = v3Endpoint(c, _header(response, "X-Subject-Token"), answer)
    return Login(*found, expires=tokenExpiry(answer))

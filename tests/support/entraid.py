"""
A tiny Microsoft Entra ID token endpoint on loopback for the azure driver's tests: it answers
C{POST /<tenant>/oauth2/v2.0/token} for one client with JWTs Azurite's basic OAuth accepts
(issuer C{https://sts.windows.net/<tenant>/}, audience C{https://storage.azure.com}, a
lifetime; Azurite does not check the signature), and records each request's form.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "registryd-test-client"
SECRET = "registryd-test-secret"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def accessToken(
    tenant: str = TENANT, audience: str = "https://storage.azure.com", lifetime: int = 3600
) -> str:
    """A JWT shaped as Entra ID issues them for the storage scope (signature not verifiable)."""
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, CLIENT_ID)),
        "tid": tenant,
        "appid": CLIENT_ID,
    }
    header = {"alg": "RS256", "typ": "JWT"}
    return ".".join(
        [_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()), _b64url(b"sig")]
    )


class TokenEndpoint(Resource):
    """Issues tokens for C{CLIENT_ID} with C{SECRET} (or any client assertion); 401 otherwise."""

    isLeaf = True

    def __init__(self, expiresIn: int = 3600, audience: str = "https://storage.azure.com") -> None:
        super().__init__()
        self.expiresIn = expiresIn
        self.audience = audience
        self.requests: list[tuple[str, dict[str, str]]] = []

    def render_POST(self, request: Any) -> bytes:
        form = {k: v[0] for k, v in parse_qs(request.content.read().decode()).items()}
        self.requests.append((request.path.decode(), form))
        request.setHeader(b"Content-Type", b"application/json")
        tenant = request.path.decode().split("/")[1]
        authenticated = form.get("client_secret") == SECRET or bool(form.get("client_assertion"))
        if form.get("client_id") != CLIENT_ID or not authenticated:
            request.setResponseCode(401)
            return json.dumps({"error": "invalid_client", "error_description": "AADSTS7000215"}).encode()
        token = accessToken(tenant, self.audience, self.expiresIn)
        return json.dumps(
            {"token_type": "Bearer", "expires_in": self.expiresIn, "access_token": token}
        ).encode()


def listenTokenEndpoint(testCase: TestCase, endpoint: TokenEndpoint) -> str:
    """Serve C{endpoint} on loopback until the test ends; its authority URL (http://127.0.0.1:port)."""
    port = reactor.listenTCP(0, Site(endpoint), interface="127.0.0.1")
    testCase.addCleanup(port.stopListening)
    return f"http://127.0.0.1:{port.getHost().port}"

"""
Credentials for the gcs driver: OAuth2 access tokens for a service account (a JWT signed
with the key file's private key, exchanged at its token URI), the metadata server's
tokens on Google Cloud, and V4 signed URLs made with the service account's key.

Every exchange goes over treq; nothing blocks the reactor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import treq
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from registryd.storage.oauth import CachedAccessToken, readTokenAnswer

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
METADATA_TOKEN_URL = (
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
)
_TOKEN_LIFETIME = 3600


class CredentialsError(Exception):
    """A key could not be used, or the token endpoint refused it."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class ServiceAccount:
    """The parts of a service account key file the driver uses."""

    clientEmail: str
    privateKey: rsa.RSAPrivateKey
    privateKeyID: str = ""
    tokenURI: str = DEFAULT_TOKEN_URI

    @classmethod
    def fromInfo(cls, info: dict[str, Any]) -> ServiceAccount:
        """Read a parsed key file; CredentialsError naming what is wrong."""
        if info.get("type", "service_account") != "service_account":
            raise CredentialsError(f"type must be service_account, not {info.get('type')!r}")
        email = info.get("client_email")
        pem = info.get("private_key")
        if not isinstance(email, str) or not email:
            raise CredentialsError("client_email is missing")
        if not isinstance(pem, str) or not pem:
            raise CredentialsError("private_key is missing")
        try:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError) as e:
            raise CredentialsError(f"private_key is not a PEM private key: {e}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialsError("private_key must be an RSA key")
        tokenURI = info.get("token_uri") or DEFAULT_TOKEN_URI
        if not isinstance(tokenURI, str) or urlsplit(tokenURI).scheme not in ("http", "https"):
            raise CredentialsError("token_uri must be an http or https URL")
        return cls(email, key, str(info.get("private_key_id") or ""), tokenURI)

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256, as Google's JWTs and V4 signatures use."""
        return self.privateKey.sign(message, padding.PKCS1v15(), hashes.SHA256())

    def assertion(self, now: float) -> str:
        """The signed JWT a token endpoint exchanges for an access token."""
        header = {"alg": "RS256", "typ": "JWT"}
        if self.privateKeyID:
            header["kid"] = self.privateKeyID
        claims = {
            "iss": self.clientEmail,
            "scope": SCOPE,
            "aud": self.tokenURI,
            "iat": int(now),
            "exp": int(now) + _TOKEN_LIFETIME,
        }
        signing = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        return signing + "." + _b64url(self.sign(signing.encode()))

    def signedURL(
        self, baseURL: str, bucket: str, objectName: str, method: str, expires: int, now: float
    ) -> str:
        """A V4 signed URL (GOOG4-RSA-SHA256) for one object, valid for expires seconds."""
        parts = urlsplit(baseURL)
        host = parts.netloc
        resource = f"{parts.path.rstrip('/')}/{quote(bucket, safe='')}/{quote(objectName, safe='/-_.~')}"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        scope = f"{stamp[:8]}/auto/storage/goog4_request"
        query = {
            "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
            "X-Goog-Credential": f"{self.clientEmail}/{scope}",
            "X-Goog-Date": stamp,
            "X-Goog-Expires": str(expires),
            "X-Goog-SignedHeaders": "host",
        }
        canonicalQuery = urlencode(sorted(query.items()), quote_via=quote, safe="-_.~")
        canonical = "\n".join(
            [method, resource, canonicalQuery, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"]
        )
        toSign = "\n".join(["GOOG4-RSA-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signature = self.sign(toSign.encode()).hex()
        return f"{parts.scheme}://{host}{resource}?{canonicalQuery}&X-Goog-Signature={signature}"


class TokenSource:
    """Hands out a cached access token for a service account (or the metadata server's)."""

    def __init__(self, reactor: Any, pool: Any, account: ServiceAccount | None) -> None:
        self._reactor = reactor
        self._pool = pool
        self.account = account
        self._cached = CachedAccessToken(reactor, self._fetch)

    def token(self) -> Awaitable[str]:
        """A valid access token (one fetch at a time, shared by concurrent callers)."""
        return self._cached.token()

    async def _fetch(self) -> tuple[str, float]:
        if self.account is not None:
            body = urlencode(
                {
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": self.account.assertion(time.time()),
                }
            ).encode()
            response = await treq.post(
                self.account.tokenURI,
                data=body,
                headers={"Content-Type": ["application/x-www-form-urlencoded"]},
                pool=self._pool,
                reactor=self._reactor,
            )
        else:
            response = await treq.get(
                METADATA_TOKEN_URL,
                headers={"Metadata-Flavor": ["Google"]},
                pool=self._pool,
                reactor=self._reactor,
            )
        return await readTokenAnswer(response, _TOKEN_LIFETIME)

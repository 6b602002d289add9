"""
Test-only token issuing: signing keys (RSA, EC P-256, Ed25519) with certificates, tokens minted
the way token servers mint them (C{x5c}, C{kid}, or no key hint), and a tiny token server on
loopback for end-to-end tests (distribution's token spec: C{GET /token?service=&scope=} with
basic credentials answers C{{"token": ...}} granting each user its configured actions).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.support import http

ISSUER = "test-token-issuer"
SERVICE = "registry.test"
REALM = "https://auth.test/token"

#: The JWS algorithm each key kind signs with.
ALGORITHMS = {"rsa": "RS256", "ec": "ES256", "ed25519": "EdDSA"}


def newSigningKey(kind: str) -> Any:
    """A fresh private key: C{rsa} (2048 bits), C{ec} (P-256) or C{ed25519}."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def _when(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def certificate(
    key: Any,
    commonName: str,
    issuerKey: Any = None,
    issuerCertificate: x509.Certificate | None = None,
    ca: bool = False,
    notBefore: float | None = None,
    notAfter: float | None = None,
) -> x509.Certificate:
    """A certificate for key's public half, self-signed unless an issuer is given."""
    now = datetime.datetime.now(datetime.UTC).timestamp()
    signer = issuerKey if issuerKey is not None else key
    issuerName = (
        issuerCertificate.subject
        if issuerCertificate is not None
        else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)]))
        .issuer_name(issuerName)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_when(notBefore if notBefore is not None else now - 86400))
        .not_valid_after(_when(notAfter if notAfter is not None else now + 86400 * 30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    digest = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, digest)


def pem(*certificates: x509.Certificate) -> bytes:
    """Certificates as concatenated PEM."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def der64(certificate: x509.Certificate) -> str:
    """A certificate as an C{x5c} entry: standard base64 of its DER."""
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def publicJWK(key: Any, kid: str | None = None) -> dict:
    """The public JWK of a private or public key (with C{kid} when given)."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, rsa.RSAPublicKey):
        document = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        document = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    else:
        document = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    if kid is not None:
        document["kid"] = kid
    return document


@dataclass
class Signer:
    """A token signing key with its self-signed certificate (what a token server is configured with)."""

    kind: str
    key: Any = None
    cert: x509.Certificate | None = None

    def __post_init__(self) -> None:
        if self.key is None:
            self.key = newSigningKey(self.kind)
        if self.cert is None:
            self.cert = certificate(self.key, f"token signer ({self.kind})")

    @property
    def algorithm(self) -> str:
        """The algorithm this key signs with."""
        return ALGORITHMS[self.kind]

    def writeBundle(self, path: Path) -> str:
        """Write this signer's certificate as a root bundle; return its path."""
        path.write_bytes(pem(self.cert))
        return str(path)


def claims(
    now: float,
    access: Sequence[Mapping[str, Any]] = (),
    subject: str = "alice",
    issuer: str = ISSUER,
    audience: Any = SERVICE,
    lifetime: float = 300,
    **extra: Any,
) -> dict:
    """A claim set as distribution's token spec describes it."""
    document = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": int(now + lifetime),
        "nbf": int(now),
        "iat": int(now),
        "jti": uuid.uuid4().hex,
        "access": list(access),
    }
    document.update(extra)
    return {k: v for k, v in document.items() if v is not None}


def grant(name: str, *actions: str, kind: str = "repository") -> dict:
    """One C{access} entry."""
    return {"type": kind, "name": name, "actions": list(actions)}


def mint(signer: Signer, payload: Mapping[str, Any], hint: str = "x5c", **headers: Any) -> str:
    """
    A compact JWT signed by signer. hint says how the header names the key: C{x5c} (the
    certificate), C{kid} (its libtrust id), C{none} (nothing); headers add or override fields.
    """
    from registryd.auth.keys import libtrustKeyID

    header: dict[str, Any] = {"typ": "JWT"}
    if hint == "x5c":
        header["x5c"] = [der64(signer.cert)]
    elif hint == "kid":
        header["kid"] = libtrustKeyID(signer.key.public_key())
    header.update(headers)
    return jwt.encode(dict(payload), signer.key, algorithm=signer.algorithm, headers=header)


def forgeUnsigned(payload: Mapping[str, Any], **header: Any) -> str:
    """A token with C{alg: none} and an empty signature."""

    def part(document: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode("ascii")

    return part({"typ": "JWT", "alg": "none", **header}) + "." + part(payload) + "."


def forgeHMAC(payload: Mapping[str, Any], secret: bytes, **header: Any) -> str:
    """A token signed HS256 with C{secret} (the public key's PEM in the classic confusion attack)."""
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    signingInput = (
        part(json.dumps({"typ": "JWT", "alg": "HS256", **header}).encode())
        + "."
        + part(json.dumps(dict(payload)).encode())
    )
    signature = hmac.new(secret, signingInput.encode("ascii"), hashlib.sha256).digest()
    return signingInput + "." + part(signature)


# A tiny token server for end-to-end tests.


@dataclass
class TokenServer:
    """
    distribution's token endpoint on 127.0.0.1, in a thread: C{GET /token?service=&scope=...}
    with basic credentials of a known user answers C{{"token", "access_token", "expires_in"}},
    granting the intersection of the scopes asked for and the user's rights (the spec: never an
    error for less access); unknown users and wrong passwords get 401.

    @ivar users: user -> (password, {repository name or C{*}: actions}).
    """

    signer: Signer
    users: dict[str, tuple[str, dict[str, list[str]]]]
    issuer: str = ISSUER
    service: str = SERVICE
    requests: list[dict] = field(default_factory=list)

    def start(self) -> str:
        """Start serving; return the realm URL."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        self.realm = f"http://127.0.0.1:{self._http.server_address[1]}/token"
        return self.realm

    def authSection(self, bundlePath: Path) -> dict:
        """The C{auth} config section of a registry trusting this (started) server's tokens."""
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": self.signer.writeBundle(bundlePath),
            }
        }

    def fetch(self, user: str, scope: str) -> str:
        """A token for a known user and scope, asked for as a client asks (basic credentials)."""
        query = urlencode({"service": self.service, "scope": scope})
        basic = base64.b64encode(f"{user}:{self.users[user][0]}".encode()).decode()
        answer = http.request("GET", f"{self.realm}?{query}", headers={"Authorization": f"Basic {basic}"})
        if answer.status != 200:
            raise ValueError(f"the token server answered {answer.status} for {user} and {scope}")
        return answer.json()["token"]

    def stop(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _user(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode("utf-8").partition(":")
        except ValueError:
            return None
        known = self.users.get(user)
        return user if known is not None and known[0] == password else None

    def _granted(self, user: str, scope: str) -> dict | None:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        rights = self.users[user][1]
        allowed = set(rights.get(name, [])) | set(rights.get("*", []))
        given = [a for a in actions.split(",") if a in allowed or "*" in allowed]
        return {"type": kind, "name": name, "actions": given} if given else None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        user = self._user(handler.headers.get("Authorization"))
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        self.requests.append({"user": user, "scopes": scopes, "service": query.get("service", [""])[0]})
        if url.path != "/token" or user is None:
            handler.send_response(401)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        access = [entry for entry in (self._granted(user, s) for s in scopes) if entry is not None]
        now = datetime.datetime.now(datetime.UTC).timestamp()
        token = mint(
            self.signer, claims(now, access, subject=user, issuer=self.issuer, audience=self.service)
        )
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def startTokenServer(case: Any, users: dict[str, tuple[str, dict[str, list[str]]]]) -> TokenServer:
    """A token server with a fresh EC signing key, started, and stopped when the test C{case} ends."""
    server = TokenServer(Signer("ec"), users)
    server.start()
    case.addCleanup(server.stop)
    return server

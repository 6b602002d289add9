"""
The keys a registry trusts to sign bearer tokens (C{auth.token.rootcertbundle} and C{jwks}),
and how a token's header names the one that signed it.

A token names its key in one of four ways, tried in distribution's order:

  - C{x5c}: a certificate chain whose leaf key signed the token; it must verify up to a
    certificate of the root bundle (any bundle certificate is a trust anchor, as in Go's
    root pools, so a token server's self-signed certificate works as its own root);
  - C{jwk}: the public key itself, trusted when it is one of ours or carries an C{x5c}
    chain that verifies (its leaf key must be that key);
  - C{kid}: a key id, looked up among the ids of every trusted key: the C{kid} of a JWKS
    entry, libtrust's fingerprint (distribution 2.x, docker_auth, Harbor), the RFC 7638
    JWK thumbprint, and the thumbprint distribution 3 computes (see L{_distributionThumbprint});
  - nothing: accepted only when exactly one key is trusted.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import crypto

from registryd.config.errors import ConfigError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)

BUNDLE_KEY = ["auth", "token", "rootcertbundle"]
JWKS_KEY = ["auth", "token", "jwks"]


class UntrustedKey(Exception):
    """A token's header names no key we trust (the message says why, for the log)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def libtrustKeyID(key: PublicKey) -> str:
    """
    docker/libtrust's key id: the first 240 bits of the SHA-256 of the DER public key, base32,
    in twelve groups of four joined by colons (C{PYYO:TEWU:...}), as distribution 2.x token
    servers put in C{kid}.
    """
    encoded = base64.b32encode(hashlib.sha256(_spki(key)).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _jwkMembers(key: PublicKey) -> dict[str, str]:
    """The required members of a public key's JWK (RFC 7517/7518/8037), unpadded base64url."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        }
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        point = key.public_numbers()
        return {
            "crv": _CURVE_NAMES[key.curve.name],
            "kty": "EC",
            "x": _b64url(point.x.to_bytes(size, "big")),
            "y": _b64url(point.y.to_bytes(size, "big")),
        }
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    curve = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
    return {"crv": curve, "kty": "OKP", "x": _b64url(raw)}


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "secp256k1"}


def _thumbprintOf(members: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(sorted(members.items())), separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def jwkThumbprint(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, unpadded base64url) of a public key."""
    return _thumbprintOf(_jwkMembers(key))


def _distributionThumbprint(key: PublicKey) -> str | None:
    """
    The id distribution 3 gives a bundle certificate's key and token servers copying it send:
    RFC 7638 for RSA, but for EC it hashes the curve's base point instead of the key's (so every
    key on a curve shares it), and for Ed25519 it writes C{kty} "OTP". Honoured for compatibility:
    an id only selects candidate keys; the signature must still verify with one of them.
    """
    if isinstance(key, rsa.RSAPublicKey):
        return jwkThumbprint(key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        generator = _GENERATORS.get(key.curve.name)
        if generator is None:
            return None
        # Go's big.Int.Bytes(): no leading zero bytes.
        x, y = (_b64url(v.to_bytes((v.bit_length() + 7) // 8, "big")) for v in generator)
        return _thumbprintOf({"crv": _CURVE_NAMES[key.curve.name], "kty": "EC", "x": x, "y": y})
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _thumbprintOf({**_jwkMembers(key), "kty": "OTP"})
    return None


# The base points (Gx, Gy) of the NIST curves (FIPS 186-4, D.1.2).
_GENERATORS = {
    "secp256r1": (
        0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    ),
    "secp384r1": (
        0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
    ),
    "secp521r1": (
        0x00C6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5BD66,
        0x011839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD16650,
    ),
}


def keyIDs(key: PublicKey) -> set[str]:
    """Every id a token may name this key by."""
    ids = {libtrustKeyID(key), jwkThumbprint(key)}
    legacy = _distributionThumbprint(key)
    if legacy:
        ids.add(legacy)
    return ids


def _checkKeyType(key: Any, what: str, keyPath: Sequence[str]) -> PublicKey:
    if not isinstance(key, _KEY_TYPES):
        raise ConfigError(f"{what}: unsupported key type {type(key).__name__}", keyPath)
    return key


def loadRootBundle(path: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle. @raise ConfigError: unreadable, none found, or malformed."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", BUNDLE_KEY) from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(f"{path} holds no PEM certificate", BUNDLE_KEY)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ConfigError(f"{path}: malformed certificate ({e})", BUNDLE_KEY) from None
    for certificate in certificates:
        try:
            key = certificate.public_key()
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"{path}: unusable key in {certificate.subject.rfc4514_string()} ({e})", BUNDLE_KEY
            ) from None
        _checkKeyType(key, f"{path}: {certificate.subject.rfc4514_string()}", BUNDLE_KEY)
    return certificates


def loadJWKS(path: str) -> list[tuple[str | None, PublicKey]]:
    """
    The (kid, public key) pairs of a JSON Web Key Set file.

    @raise ConfigError: unreadable, not a key set, or any key malformed or symmetric.
    """
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read())
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", JWKS_KEY) from None
    except ValueError as e:
        raise ConfigError(f"{path} is not JSON ({e})", JWKS_KEY) from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError(f"{path} is not a JSON Web Key Set (an object with a list of keys)", JWKS_KEY)
    keys: list[tuple[str | None, PublicKey]] = []
    for index, entry in enumerate(document["keys"]):
        where = f"{path}: key {index}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not an object", JWKS_KEY)
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ConfigError(f"{where}: kid is not a string", JWKS_KEY)
        if entry.get("kty") == "oct":
            raise ConfigError(f"{where}: symmetric (oct) keys are not accepted", JWKS_KEY)
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{where}{f' ({kid})' if kid else ''}: {e}", JWKS_KEY) from None
        if hasattr(key, "public_key"):
            key = key.public_key()
        keys.append((kid, _checkKeyType(key, where, JWKS_KEY)))
    return keys


@dataclass
class TrustedKeys:
    """
    The token signing keys a registry trusts: root certificates (for C{x5c} chains and their own
    keys) and JWKS keys, each reachable by every id a token server may name it by.
    """

    roots: list[x509.Certificate] = field(default_factory=list)
    byID: dict[str, list[PublicKey]] = field(default_factory=dict)
    keys: list[PublicKey] = field(default_factory=list)

    def add(self, key: PublicKey, kid: str | None = None) -> None:
        """Trust a key, under its computed ids and C{kid} when given."""
        if not any(_spki(known) == _spki(key) for known in self.keys):
            self.keys.append(key)
        for keyID in keyIDs(key) | ({kid} if kid else set()):
            candidates = self.byID.setdefault(keyID, [])
            if not any(_spki(known) == _spki(key) for known in candidates):
                candidates.append(key)

    def isTrusted(self, key: PublicKey) -> bool:
        """Whether a key is one of ours (the same public key)."""
        return any(_spki(known) == _spki(key) for known in self.keys)

    def signingKeys(self, header: Mapping[str, Any], now: float) -> list[PublicKey]:
        """
        The trusted keys that may have signed a token with this header (the signature decides
        among them).

        @param now: the time (POSIX seconds) at which certificate chains must be valid.
        @raise UntrustedKey: when the header names no trusted key.
        """
        x5c = header.get("x5c")
        jwk = header.get("jwk")
        kid = header.get("kid")
        if x5c is not None:
            return [self._verifyChain(x5c, now)]
        if jwk is not None:
            return [self._embeddedKey(jwk, now)]
        if kid is not None:
            if not isinstance(kid, str) or kid not in self.byID:
                raise UntrustedKey(f"no trusted key with id {kid!r}")
            return list(self.byID[kid])
        if len(self.keys) == 1:
            return list(self.keys)
        raise UntrustedKey("the token names no key (no x5c, jwk or kid) and more than one is trusted")

    def _embeddedKey(self, jwk: Any, now: float) -> PublicKey:
        if not isinstance(jwk, dict):
            raise UntrustedKey("jwk header is not an object")
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as e:
            raise UntrustedKey(f"malformed jwk header: {e}") from None
        if not isinstance(key, _KEY_TYPES):
            raise UntrustedKey("jwk header holds no public key")
        if "x5c" in jwk:
            leaf = self._verifyChain(jwk["x5c"], now)
            if _spki(leaf) != _spki(key):
                raise UntrustedKey("the jwk header's key is not its certificate's key")
            return key
        if not self.isTrusted(key):
            raise UntrustedKey("the jwk header's key is not trusted and has no certificate chain")
        return key

    def _verifyChain(self, x5c: Any, now: float) -> PublicKey:
        """The leaf key of an x5c chain (base64 DER, leaf first) that verifies up to a root, at C{now}."""
        if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
            raise UntrustedKey("x5c is not a list of certificates")
        if not self.roots:
            raise UntrustedKey("x5c chain given, but no root certificate bundle is configured")
        try:
            chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
        except ValueError as e:
            raise UntrustedKey(f"malformed x5c certificate: {e}") from None
        store = crypto.X509Store()
        for root in self.roots:
            store.add_cert(crypto.X509.from_cryptography(root))
        # Any bundle certificate is an anchor (Go's root pools), not only self-signed ones.
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
        store.set_time(datetime.datetime.fromtimestamp(now, datetime.UTC).replace(tzinfo=None))
        context = crypto.X509StoreContext(
            store,
            crypto.X509.from_cryptography(chain[0]),
            [crypto.X509.from_cryptography(c) for c in chain[1:]],
        )
        try:
            context.verify_certificate()
        except crypto.X509StoreContextError as e:
            raise UntrustedKey(f"x5c chain does not verify: {e}") from None
        try:
            key = chain[0].public_key()
        except (ValueError, TypeError) as e:
            raise UntrustedKey(f"unusable x5c leaf key: {e}") from None
        if not isinstance(key, _KEY_TYPES):
            raise UntrustedKey("unsupported x5c leaf key type")
        return key


def loadTrustedKeys(rootCertBundle: str | None, jwks: str | None) -> TrustedKeys:
    """
    The trust set of C{auth.token}.

    @raise ConfigError: naming C{auth.token.rootcertbundle} or C{auth.token.jwks} when a file is
        unreadable or malformed, or when neither holds a key.
    """
    trusted = TrustedKeys()
    if rootCertBundle:
        trusted.roots = loadRootBundle(rootCertBundle)
        for certificate in trusted.roots:
            trusted.add(certificate.public_key())
    if jwks:
        for kid, key in loadJWKS(jwks):
            trusted.add(key, kid)
    if not trusted.keys:
        raise ConfigError("no token signing key: the JWKS is empty", JWKS_KEY if jwks else BUNDLE_KEY)
    return trusted

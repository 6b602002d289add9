"""
C{auth.token}: bearer tokens (JWTs) issued by a token server the registry trusts, checked as
distribution checks them (its token spec and C{registry/auth/token}).

A request without a bearer token is challenged with the realm, service and exactly the scopes it
needs; a token that does not verify (signature, key, issuer, audience, expiry, not-before, shape)
is answered C{error="invalid_token"}; a valid token that does not grant every access needed,
C{error="insufficient_scope"}. All three are 401, as in distribution.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from registryd.auth.challenges import bearerChallenge
from registryd.auth.interfaces import Access, AuthenticationRequired, IAccessController, Identity
from registryd.auth.keys import TrustedKeys, UntrustedKey, loadTrustedKeys
from registryd.config.auth import TokenConfig
from registryd.config.errors import ConfigError

#: Clock skew allowed on C{exp} and C{nbf}, in seconds (distribution's C{Leeway}).
LEEWAY = 60

#: Asymmetric algorithms accepted unless C{signingalgorithms} narrows them.
DEFAULT_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)

# distribution also lists HS256/384/512: a shared secret would let anyone holding the verifying key
# mint tokens, and no configuration key gives one, so they are refused rather than ignored.
_REFUSED_ALGORITHMS = {"none", "HS256", "HS384", "HS512"}

INVALID_TOKEN = "invalid_token"
INSUFFICIENT_SCOPE = "insufficient_scope"


class InvalidToken(Exception):
    """A bearer token that does not verify; the message says why (logged, never sent)."""


def signingAlgorithms(names: Sequence[str]) -> tuple[str, ...]:
    """
    The algorithms C{signingalgorithms} allows (the defaults when empty).

    @raise ConfigError: for C{none}, HMAC algorithms, or a name no one signs tokens with.
    """
    keyPath = ["auth", "token", "signingalgorithms"]
    for name in names:
        if name in _REFUSED_ALGORITHMS:
            raise ConfigError(
                f"{name} is not accepted: tokens must be signed with a public-key algorithm", keyPath
            )
        if name not in DEFAULT_ALGORITHMS:
            raise ConfigError(
                f"unknown signing algorithm {name!r} (known: {', '.join(DEFAULT_ALGORITHMS)})", keyPath
            )
    return tuple(dict.fromkeys(names)) or DEFAULT_ALGORITHMS


def _number(value: Any) -> bool:
    # Python's json reads NaN and Infinity, which would pass every comparison made with them.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def grantedActions(claims: Mapping[str, Any]) -> dict[tuple[str, str], set[str]]:
    """
    The C{access} claim as {(type, name): actions}. @raise InvalidToken: when it is not a list of
    C{{type, name, actions}} objects (distribution refuses such a token as malformed).
    """
    access = claims.get("access")
    if access is None:
        return {}
    if not isinstance(access, list):
        raise InvalidToken("access claim is not a list")
    granted: dict[tuple[str, str], set[str]] = {}
    for entry in access:
        if not isinstance(entry, dict):
            raise InvalidToken("access entry is not an object")
        kind, name, actions = entry.get("type", ""), entry.get("name", ""), entry.get("actions") or []
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise InvalidToken("access entry has a malformed type, name or actions")
        if not all(isinstance(action, str) for action in actions):
            raise InvalidToken("access entry has a non-string action")
        granted.setdefault((kind, name), set()).update(actions)
    return granted


def grants(granted: Mapping[tuple[str, str], set[str]], access: Access) -> bool:
    """Whether granted actions cover an access: the action itself or C{*} on the same type and name."""
    actions = granted.get((access.type, access.name), set())
    return "*" in actions or access.action in actions


class TokenVerifier:
    """Checks a compact JWT's signature and claims against the trusted keys, issuer and service."""

    def __init__(
        self, keys: TrustedKeys, issuer: str, service: str, algorithms: Sequence[str], clock: Any
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.service = service
        self.algorithms = tuple(algorithms)
        self.clock = clock

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token that verifies now. @raise InvalidToken: saying why it does not."""
        now = self.clock.seconds()
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            raise InvalidToken(f"malformed token: {e}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted")
        try:
            candidates = self.keys.signingKeys(header, now)
        except UntrustedKey as e:
            raise InvalidToken(str(e)) from None
        payload = self._verifiedPayload(token, algorithm, candidates)
        try:
            claims = json.loads(payload)
        except ValueError as e:
            raise InvalidToken(f"claims are not JSON: {e}") from None
        if not isinstance(claims, dict):
            raise InvalidToken("claims are not a JSON object")
        self._checkClaims(claims, now)
        return claims

    def _verifiedPayload(self, token: str, algorithm: str, candidates: Sequence[Any]) -> bytes:
        jws = jwt.PyJWS()
        reason = "no candidate key"
        for key in candidates:
            try:
                return jws.decode_complete(token, key, algorithms=[algorithm])["payload"]
            except (jwt.PyJWTError, ValueError, TypeError) as e:
                # A key of another type for this algorithm, or a bad signature: try the next.
                reason = str(e) or type(e).__name__
        raise InvalidToken(f"signature does not verify: {reason}")

    def _checkClaims(self, claims: Mapping[str, Any], now: float) -> None:
        if claims.get("iss") != self.issuer:
            raise InvalidToken(f"issuer {claims.get('iss')!r} is not {self.issuer!r}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.service not in audiences:
            raise InvalidToken(f"audience {audience!r} does not name {self.service!r}")
        expires = claims.get("exp")
        if not _number(expires):
            raise InvalidToken("no numeric exp claim")
        if now > expires + LEEWAY:
            raise InvalidToken(f"expired at {expires}")
        notBefore = claims.get("nbf", 0)
        if not _number(notBefore):
            raise InvalidToken("nbf claim is not a number")
        if now < notBefore - LEEWAY:
            raise InvalidToken(f"not valid before {notBefore}")
        subject = claims.get("sub", "")
        if subject is not None and not isinstance(subject, str):
            raise InvalidToken("sub claim is not a string")


@implementer(IAccessController)
class TokenAccessController:
    """Lets in requests whose bearer token verifies and grants every access they need."""

    log = Logger()

    def __init__(
        self,
        verifier: TokenVerifier,
        realm: str,
        service: str,
        autoRedirect: bool = False,
        autoRedirectPath: str = "/auth/token",
    ) -> None:
        self.verifier = verifier
        self.realm = realm
        self.service = service
        self.autoRedirect = autoRedirect
        self.autoRedirectPath = autoRedirectPath

    def authorize(self, request: Any, accesses: Sequence[Access]) -> Deferred:
        """Fire with the token's L{Identity}, or fail with L{AuthenticationRequired} and its challenge."""
        token = _bearerToken(request)
        if token is None:
            return fail(self._challenge(request, accesses))
        try:
            claims = self.verifier.verify(token)
            granted = grantedActions(claims)
        except InvalidToken as e:
            self.log.info("refused a bearer token: {reason}", reason=str(e))
            return fail(self._challenge(request, accesses, INVALID_TOKEN))
        subject = claims.get("sub") or None
        missing = [access for access in accesses if not grants(granted, access)]
        if missing:
            self.log.info(
                "token of {subject} does not grant {scopes}",
                subject=subject,
                scopes=" ".join(access.scope() for access in missing),
            )
            return fail(self._challenge(request, accesses, INSUFFICIENT_SCOPE))
        return succeed(Identity(subject, "token"))

    def _challenge(
        self, request: Any, accesses: Sequence[Access], error: str | None = None
    ) -> AuthenticationRequired:
        realm = _redirectRealm(request, self.autoRedirectPath) if self.autoRedirect else self.realm
        return AuthenticationRequired(
            bearerChallenge(realm, self.service, accesses, error), _detail(accesses)
        )


def _detail(accesses: Sequence[Access]) -> list[dict[str, str]] | None:
    """distribution's error detail: the accesses asked for."""
    if not accesses:
        return None
    return [{"Type": a.type, "Name": a.name, "Action": a.action} for a in accesses]


def _header(request: Any, name: bytes) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _bearerToken(request: Any) -> str | None:
    """The token of an C{Authorization: Bearer <token>} header (scheme case-insensitive), or None."""
    value = _header(request, b"Authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _redirectRealm(request: Any, path: str) -> str:
    """C{autoredirect}'s realm: the request's own scheme (or X-Forwarded-Proto) and Host, with C{path}."""
    scheme = "https" if request.isSecure() else "http"
    forwarded = (_header(request, b"X-Forwarded-Proto") or "").split(",", 1)[0].strip()
    if forwarded:
        scheme = forwarded
    host = (_header(request, b"Host") or "").strip()
    if not host:
        address = request.getHost()
        host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
    return f"{scheme}://{host}{path}"


def controllerFromConfig(config: TokenConfig, reactor: Any) -> TokenAccessController:
    """
    Build the controller of C{auth.token}, reading its trusted keys now.

    @raise ConfigError: naming C{auth.token.rootcertbundle}, C{jwks} or C{signingalgorithms}.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    algorithms = signingAlgorithms(config.signingAlgorithms)
    keys = loadTrustedKeys(config.rootCertBundle, config.jwks)
    verifier = TokenVerifier(keys, config.issuer, config.service, algorithms, reactor)
    return TokenAccessController(
        verifier, config.realm, config.service, config.autoRedirect, config.autoRedirectPath
    )

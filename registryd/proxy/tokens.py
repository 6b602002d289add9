"""
Bearer tokens for an upstream registry: what a token endpoint's answer means (distribution's
token spec: C{token} or C{access_token}, C{expires_in}, C{issued_at}) and a cache of them per
(realm, service, scope) that forgets each shortly before it expires.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass

#: A token endpoint that names no lifetime grants this many seconds (the spec's default).
DEFAULT_EXPIRES_IN = 60

#: A cached token is forgotten this long before it expires, so it is not used as it runs out.
EXPIRY_MARGIN = 10.0

TokenKey = tuple[str, str, str]
"""(realm, service, scope)."""


class TokenAnswerInvalid(ValueError):
    """A token endpoint answered 200 with something that holds no token."""


@dataclass(frozen=True)
class Token:
    """A bearer token and how many seconds from its receipt it stays valid."""

    value: str
    lifetime: float


def _issuedAt(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parseTokenAnswer(body: bytes, wallClock: float) -> Token:
    """
    The token in a token endpoint's JSON answer, received just now.

    C{issued_at} only ever shortens a token's life: our clock and the realm's differ, so a token
    lives at most C{expires_in} from its receipt, less by however long ago the realm says it was
    issued (C{wallClock} is the real time, against which C{issued_at} is read).
    """
    try:
        document = json.loads(body)
    except ValueError:
        raise TokenAnswerInvalid("the token endpoint's answer is not JSON") from None
    if not isinstance(document, dict):
        raise TokenAnswerInvalid("the token endpoint's answer is not a JSON object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise TokenAnswerInvalid("the token endpoint's answer holds no token")
    expiresIn = document.get("expires_in")
    if not isinstance(expiresIn, int | float) or isinstance(expiresIn, bool) or expiresIn <= 0:
        expiresIn = DEFAULT_EXPIRES_IN
    lifetime = float(expiresIn)
    issued = _issuedAt(document.get("issued_at"))
    if issued is not None and 0 < wallClock - issued < lifetime:
        lifetime -= wallClock - issued
    return Token(value, lifetime)


class TokenCache:
    """Bearer tokens by (realm, service, scope), each used until shortly before it expires."""

    def __init__(self, clock: Callable[[], float], margin: float = EXPIRY_MARGIN) -> None:
        self._clock = clock
        self._margin = margin
        self._tokens: dict[TokenKey, tuple[str, float]] = {}

    def get(self, key: TokenKey) -> str | None:
        """The cached token for key, or None when there is none or it is about to expire."""
        cached = self._tokens.get(key)
        if cached is None:
            return None
        value, useUntil = cached
        if self._clock() >= useUntil:
            del self._tokens[key]
            return None
        return value

    def put(self, key: TokenKey, token: Token) -> None:
        """Remember a token received just now."""
        # A short-lived token keeps at least half its life usable.
        margin = min(self._margin, token.lifetime / 2)
        self._tokens[key] = (token.value, self._clock() + token.lifetime - margin)

    def drop(self, key: TokenKey, value: str | None = None) -> None:
        """Forget the token for key (only if it is still C{value}, when given)."""
        cached = self._tokens.get(key)
        if cached is not None and (value is None or cached[0] == value):
            del self._tokens[key]

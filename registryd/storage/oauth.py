"""
OAuth2 access tokens for object-store drivers: one cached token, fetched again shortly
before it expires, one fetch at a time however many requests wait for it; and the
token endpoint's JSON answer read the same way for every cloud.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import treq
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

#: Fetch a new token this long before the old one expires (azure-identity and google-auth do too).
REFRESH_MARGIN = 300.0


class TokenError(Exception):
    """The token endpoint refused the credentials or answered something unreadable."""


class CachedAccessToken:
    """
    Hands out an access token made by C{fetch()} (firing with the token and its lifetime in
    seconds), fetching anew once less than L{REFRESH_MARGIN} of it is left.
    """

    def __init__(self, clock: Any, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> None:
        self._clock = clock
        self._fetch = fetch
        self._token: str | None = None
        self._expires = 0.0
        self._waiting: list[Deferred] | None = None

    async def token(self) -> str:
        """A valid access token; concurrent callers share one fetch. TokenError when it fails."""
        if self._token is not None and self._clock.seconds() < self._expires - REFRESH_MARGIN:
            return self._token
        if self._waiting is None:
            self._waiting = []
            Deferred.fromCoroutine(self._refresh()).addBoth(self._fetched)
        waiting: Deferred = Deferred()
        self._waiting.append(waiting)
        await waiting
        if self._token is None:
            raise TokenError("no access token")
        return self._token

    def _fetched(self, result: object) -> None:
        # Every waiter gets the outcome, a failure too; none is left unhandled here.
        waiters, self._waiting = self._waiting or [], None
        for waiting in waiters:
            if isinstance(result, Failure):
                waiting.errback(result)
            else:
                waiting.callback(None)

    async def _refresh(self) -> None:
        started = self._clock.seconds()
        token, lifetime = await self._fetch()
        self._token = token
        self._expires = started + lifetime


async def readTokenAnswer(response: Any, defaultLifetime: float = 3600.0) -> tuple[str, float]:
    """
    The C{access_token} and C{expires_in} of a token endpoint's JSON answer.

    @raise TokenError: not a 200, or no token in it (the endpoint's error description quoted).
    """
    content = await treq.content(response)
    if response.code != 200:
        raise TokenError(f"token endpoint answered {response.code}: {content[:300]!r}")
    try:
        answer = json.loads(content)
        return str(answer["access_token"]), float(answer.get("expires_in", defaultLifetime))
    except (ValueError, KeyError, TypeError):
        raise TokenError(f"token endpoint answered nonsense: {content[:300]!r}") from None


__all__ = ["REFRESH_MARGIN", "CachedAccessToken", "TokenError", "readTokenAnswer"]

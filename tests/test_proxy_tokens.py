"""Bearer tokens from an upstream's token realm: reading the answer, caching per scope until expiry."""

from __future__ import annotations

import datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from registryd.proxy.tokens import DEFAULT_EXPIRES_IN, Token, TokenAnswerInvalid, TokenCache, parseTokenAnswer

KEY = ("https://auth.example/token", "registry", "repository:a/b:pull")
NOW = 1_800_000_000.0


def isoformat(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace("+00:00", "Z")


class ParseTokenAnswerTests(SynchronousTestCase):
    def test_token_or_access_token(self) -> None:
        self.assertEqual(parseTokenAnswer(b'{"token": "t", "expires_in": 300}', NOW), Token("t", 300.0))
        self.assertEqual(parseTokenAnswer(b'{"access_token": "a"}', NOW), Token("a", DEFAULT_EXPIRES_IN))

    def test_issued_at_in_the_past_shortens_the_life(self) -> None:
        answer = b'{"token": "t", "expires_in": 300, "issued_at": "%s"}' % isoformat(NOW - 100).encode()
        self.assertEqual(parseTokenAnswer(answer, NOW).lifetime, 200.0)

    def test_implausible_issued_at_is_ignored(self) -> None:
        for issued in (NOW + 3600, NOW - 3600):
            answer = b'{"token": "t", "expires_in": 300, "issued_at": "%s"}' % isoformat(issued).encode()
            self.assertEqual(parseTokenAnswer(answer, NOW).lifetime, 300.0)

    def test_no_token_is_invalid(self) -> None:
        for body in (b"<html>", b"[]", b'{"expires_in": 60}', b'{"token": ""}'):
            self.assertRaises(TokenAnswerInvalid, parseTokenAnswer, body, NOW)


class TokenCacheTests(SynchronousTestCase):
    def test_used_until_shortly_before_expiry(self) -> None:
        clock = Clock()
        cache = TokenCache(clock.seconds)
        cache.put(KEY, Token("t", 300))
        clock.advance(289)
        self.assertEqual(cache.get(KEY), "t")
        clock.advance(1)
        self.assertIsNone(cache.get(KEY))

    def test_short_tokens_keep_half_their_life(self) -> None:
        clock = Clock()
        cache = TokenCache(clock.seconds)
        cache.put(KEY, Token("t", 4))
        clock.advance(1.9)
        self.assertEqual(cache.get(KEY), "t")
        clock.advance(0.1)
        self.assertIsNone(cache.get(KEY))

    def test_scopes_are_separate_and_drop_is_conditional(self) -> None:
        cache = TokenCache(Clock().seconds)
        other = (*KEY[:2], "repository:c/d:pull")
        cache.put(KEY, Token("t", 300))
        self.assertIsNone(cache.get(other))
        cache.drop(KEY, "someone else's")
        self.assertEqual(cache.get(KEY), "t")
        cache.drop(KEY, "t")
        self.assertIsNone(cache.get(KEY))

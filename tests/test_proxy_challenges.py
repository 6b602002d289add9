"""Parsing the C{WWW-Authenticate} challenges upstream registries answer 401 with."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from registryd.proxy.challenges import Challenge, parseChallenges, preferred


class ParseChallengesTests(SynchronousTestCase):
    def test_bearer_with_realm_service_and_scope(self) -> None:
        header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'
        self.assertEqual(
            parseChallenges([header]),
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull",
                    },
                )
            ],
        )

    def test_scope_with_commas_stays_whole(self) -> None:
        (challenge,) = parseChallenges(['Bearer realm="r", scope="repository:a/b:pull,push"'])
        self.assertEqual(challenge["scope"], "repository:a/b:pull,push")

    def test_several_challenges_in_one_header_and_several_headers(self) -> None:
        challenges = parseChallenges(
            ['Basic realm="x, y", BEARER realm=r,error="invalid_token"', "Negotiate abc=="]
        )
        self.assertEqual(
            challenges,
            [
                Challenge("basic", {"realm": "x, y"}),
                Challenge("bearer", {"realm": "r", "error": "invalid_token"}),
                Challenge("negotiate", {}),
            ],
        )

    def test_escapes_and_case_of_names(self) -> None:
        (challenge,) = parseChallenges(['Bearer Realm="a\\"b"'])
        self.assertEqual(challenge.get("realm"), 'a"b')

    def test_garbage_yields_nothing_usable(self) -> None:
        self.assertIsNone(preferred(parseChallenges(["", ",,", '"quoted"'])))

    def test_bearer_preferred_over_basic(self) -> None:
        challenges = parseChallenges(['Basic realm="b"', 'Bearer realm="t"'])
        self.assertEqual(preferred(challenges).scheme, "bearer")
        self.assertEqual(preferred(parseChallenges(['Basic realm="b"'])).scheme, "basic")

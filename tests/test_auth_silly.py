"""Tests for C{auth.silly} and the challenge texts every controller writes."""

from __future__ import annotations

from registryd.auth.challenges import basicChallenge, bearerChallenge
from registryd.auth.controllers import accessControllerFor
from registryd.auth.interfaces import Access
from registryd.auth.silly import SillyAccessController
from registryd.config.auth import AuthConfig, SillyConfig
from tests.test_api_base import APIClient as Client
from tests.test_api_base import APITestCase, makeAPI


class ChallengeTests(APITestCase):
    def test_basic(self) -> None:
        self.assertEqual(basicChallenge("my registry"), 'Basic realm="my registry"')

    def test_quotes_are_escaped(self) -> None:
        self.assertEqual(basicChallenge('a"b\\c'), 'Basic realm="a\\"b\\\\c"')

    def test_bearer_names_scope_and_error(self) -> None:
        accesses = [Access("repository", "a/b", "pull"), Access("repository", "a/b", "push")]
        self.assertEqual(
            bearerChallenge("https://auth/token", "registry", accesses, "insufficient_scope"),
            'Bearer realm="https://auth/token",service="registry",scope="repository:a/b:pull,push",'
            'error="insufficient_scope"',
        )

    def test_bearer_without_scope(self) -> None:
        self.assertEqual(bearerChallenge("r", "s", []), 'Bearer realm="r",service="s"')


class SillyTests(APITestCase):
    def setUp(self) -> None:
        self.api = makeAPI(accessController=SillyAccessController("https://auth/token", "registry"))
        self.client = Client(self.api)

    async def test_without_authorization_is_challenged_with_the_scope(self) -> None:
        answer = await self.client.get("/v2/team/app/tags/list")
        self.assertError(answer, 401, "UNAUTHORIZED")
        self.assertEqual(
            answer.header("WWW-Authenticate"),
            'Bearer realm="https://auth/token",service="registry",scope="repository:team/app:pull"',
        )

    async def test_any_authorization_passes(self) -> None:
        answer = await self.client.get("/v2/", headers={"Authorization": "Bearer anything"})
        self.assertEqual(answer.code, 200)

    def test_built_from_config(self) -> None:
        controller = accessControllerFor(AuthConfig(silly=SillyConfig("r", "s")), None)
        self.assertIsInstance(controller, SillyAccessController)
        self.assertEqual((controller.realm, controller.service), ("r", "s"))

    def test_no_auth_is_an_open_registry(self) -> None:
        self.assertIsNone(accessControllerFor(AuthConfig(), None))

"""
Tests for the seam between routes and access controllers: every route asks for exactly
the scopes distribution's routes ask for, and a controller's refusal is the spec's answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from registryd.auth.interfaces import (
    Access,
    AccessDenied,
    AuthenticationRequired,
    IAccessController,
    Identity,
    identityOf,
    scopeText,
)
from tests.test_api_base import APITestCase, digestOf


@implementer(IAccessController)
class RecordingController:
    """Grants everything (or refuses with a set error) and records what each request asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, list[Access]]] = []
        self.refusal: Exception | None = None
        self.identities: list[Identity] = []

    def authorize(self, request, accesses: Sequence[Access]) -> Deferred:
        self.asked.append((request.method.decode(), request.path.decode(), list(accesses)))
        if self.refusal is not None:
            return fail(self.refusal)
        identity = Identity("alice", "test")
        self.identities.append(identity)
        return succeed(identity)


def repo(name: str, *actions: str) -> list[Access]:
    return [Access("repository", name, action) for action in actions]


class RouteAccessTests(APITestCase):
    """Which scopes each route asks the controller for."""

    def setUp(self) -> None:
        super().setUp()
        self.controller = RecordingController()
        self.api.settings.accessController = self.controller

    async def lastAsked(self, method: str, path: str, body: bytes | None = None) -> list[Access]:
        self.controller.asked.clear()
        await self.client.request(method, path, body)
        self.assertEqual(len(self.controller.asked), 1, self.controller.asked)
        return self.controller.asked[0][2]

    async def test_base_asks_nothing_but_still_asks(self) -> None:
        self.assertEqual(await self.lastAsked("GET", "/v2/"), [])

    async def test_reads_ask_pull(self) -> None:
        digest = digestOf(b"x")
        for method, path in [
            ("GET", f"/v2/team/app/blobs/{digest}"),
            ("HEAD", f"/v2/team/app/blobs/{digest}"),
            ("GET", "/v2/team/app/manifests/latest"),
            ("HEAD", "/v2/team/app/manifests/latest"),
            ("GET", "/v2/team/app/tags/list"),
            ("GET", f"/v2/team/app/referrers/{digest}"),
        ]:
            self.assertEqual(await self.lastAsked(method, path), repo("team/app", "pull"), (method, path))

    async def test_writes_ask_pull_and_push(self) -> None:
        for method, path in [
            ("POST", "/v2/team/app/blobs/uploads/"),
            ("PUT", "/v2/team/app/manifests/latest"),
        ]:
            self.assertEqual(await self.lastAsked(method, path, b"{}"), repo("team/app", "pull", "push"))

    async def test_deletes_ask_delete(self) -> None:
        for path in ["/v2/team/app/manifests/latest", f"/v2/team/app/blobs/{digestOf(b'x')}"]:
            self.assertEqual(await self.lastAsked("DELETE", path), repo("team/app", "delete"))

    async def test_catalog_asks_registry_catalog(self) -> None:
        self.assertEqual(await self.lastAsked("GET", "/v2/_catalog"), [Access("registry", "catalog", "*")])

    async def test_mount_asks_pull_on_the_source(self) -> None:
        digest = digestOf(b"x")
        asked = await self.lastAsked("POST", f"/v2/team/app/blobs/uploads/?mount={digest}&from=other/repo")
        self.assertEqual(asked, repo("team/app", "pull", "push") + repo("other/repo", "pull"))

    async def test_mount_from_an_invalid_name_asks_nothing_of_it(self) -> None:
        digest = digestOf(b"x")
        asked = await self.lastAsked("POST", f"/v2/team/app/blobs/uploads/?mount={digest}&from=Bad..Name")
        self.assertEqual(asked, repo("team/app", "pull", "push"))

    async def test_identity_is_kept_on_the_request(self) -> None:
        await self.client.get("/v2/")
        self.assertEqual(self.controller.identities, [Identity("alice", "test")])

    async def test_unknown_route_asks_nothing(self) -> None:
        await self.client.get("/nowhere")
        self.assertEqual(self.controller.asked, [])


class RefusalTests(APITestCase):
    """A controller's refusal is the spec's JSON error, with the challenge header."""

    def setUp(self) -> None:
        super().setUp()
        self.controller = RecordingController()
        self.api.settings.accessController = self.controller

    async def test_authentication_required_is_401_with_challenge(self) -> None:
        self.controller.refusal = AuthenticationRequired('Basic realm="r"')
        answer = await self.client.get("/v2/")
        self.assertError(answer, 401, "UNAUTHORIZED")
        self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="r"')

    async def test_access_denied_is_403(self) -> None:
        self.controller.refusal = AccessDenied({"scope": "repository:a:push"})
        answer = await self.client.put("/v2/a/manifests/x", b"{}")
        self.assertError(answer, 403, "DENIED")
        self.assertIsNone(answer.header("WWW-Authenticate"))

    async def test_refusal_comes_before_read_only(self) -> None:
        """An anonymous write to a read-only registry is asked to authenticate, not told it is read-only."""
        self.api.registry.readOnly = True
        self.controller.refusal = AuthenticationRequired('Basic realm="r"')
        self.assertError(await self.client.post("/v2/a/blobs/uploads/"), 401, "UNAUTHORIZED")

    async def test_refused_upload_leaves_nothing(self) -> None:
        self.controller.refusal = AuthenticationRequired('Basic realm="r"')
        data = b"secret layer"
        answer = await self.client.post(f"/v2/a/blobs/uploads/?digest={digestOf(data)}", data)
        self.assertError(answer, 401, "UNAUTHORIZED")
        self.controller.refusal = None
        self.assertEqual((await self.client.head(f"/v2/a/blobs/{digestOf(data)}")).code, 404)


class HelperTests(APITestCase):
    def test_scope_text_groups_actions_per_resource(self) -> None:
        accesses = repo("a/b", "pull", "push") + repo("c", "pull") + [Access("registry", "catalog", "*")]
        self.assertEqual(scopeText(accesses), "repository:a/b:pull,push repository:c:pull registry:catalog:*")

    def test_identity_of_a_request_no_controller_saw(self) -> None:
        self.assertEqual(identityOf(object()).method, "none")

"""
Tests for the access rules of C{auth.htpasswd.access}: patterns, the file's validation,
what users, groups and anonymous requests may do, and the answers through the API (403 for
a known user lacking a right, 401 for an anonymous request that needs credentials).
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from registryd.auth.htpasswd import controllerFromConfig
from registryd.auth.interfaces import ANONYMOUS, Access, Identity
from registryd.auth.rules import AccessRules, RulesError, compilePattern, parseRules
from registryd.config.auth import HtpasswdConfig
from registryd.config.errors import ConfigError
from tests.test_api_base import APIClient, digestOf, makeAPI
from tests.test_auth_htpasswd import ClockedReactor, basic, htpasswdText

EXAMPLE = b"""
groups:
  admins: [alice]
  ci: [buildbot]
rules:
  - repositories: ["ci/*"]
    groups: [ci]
    actions: [pull, push]
  - repositories: ["**"]
    groups: [admins]
    actions: ["*"]
  - repositories: ["**"]
    users: ["*"]
    actions: [pull]
  - repositories: ["carol/**"]
    users: [carol]
    actions: [push]
catalog:
  groups: [admins]
anonymous:
  pull: ["public/**"]
"""


def repo(name: str, action: str) -> Access:
    return Access("repository", name, action)


CATALOG = Access("registry", "catalog", "*")


class PatternTests(unittest.TestCase):
    def assertMatches(self, pattern: str, matching: list[str], other: list[str]) -> None:
        compiled = compilePattern(pattern)
        for name in matching:
            self.assertTrue(compiled.matches(name), f"{pattern} should match {name}")
        for name in other:
            self.assertFalse(compiled.matches(name), f"{pattern} should not match {name}")

    def test_literal_matches_only_itself(self) -> None:
        self.assertMatches("team/app", ["team/app"], ["team/app2", "team", "team/app/x", "xteam/app"])

    def test_star_is_within_one_component(self) -> None:
        self.assertMatches("ci/*", ["ci/app", "ci/b"], ["ci", "ci/a/b", "cia/b", "x/ci/app"])
        self.assertMatches("ci/app-*", ["ci/app-1", "ci/app-"], ["ci/app", "ci/app-1/x"])
        self.assertMatches("*/cache", ["a/cache"], ["cache", "a/b/cache"])

    def test_double_star_spans_components(self) -> None:
        self.assertMatches("**", ["a", "a/b", "a/b/c"], [])
        self.assertMatches("ci/**", ["ci/a", "ci/a/b/c"], ["ci", "cix/a", "x/ci/a"])
        self.assertMatches("**/cache", ["cache", "a/cache", "a/b/cache"], ["cachex", "a/cache/x"])
        self.assertMatches("a/**/z", ["a/z", "a/b/z", "a/b/c/z"], ["a/bz", "a/z/x"])

    def test_dots_are_literal(self) -> None:
        self.assertMatches("a.b", ["a.b"], ["axb"])

    def test_bad_patterns_are_refused(self) -> None:
        for pattern in ["", "Team/app", "a//b", "/a", "a/", "a**", "a/**b", "a b", "a/?"]:
            self.assertRaises(ValueError, compilePattern, pattern)


class ParseTests(unittest.TestCase):
    def parseError(self, text: str) -> str:
        with self.assertRaises(RulesError) as caught:
            parseRules(text.encode(), "/etc/registryd/access.yml")
        message = str(caught.exception)
        self.assertTrue(message.startswith("/etc/registryd/access.yml: "), message)
        return message

    def test_the_example_parses(self) -> None:
        rules = parseRules(EXAMPLE, "p")
        self.assertEqual(rules.groups, {"admins": frozenset({"alice"}), "ci": frozenset({"buildbot"})})
        self.assertEqual(len(rules.rules), 4)
        self.assertEqual(rules.rules[1].actions, frozenset({"pull", "push", "delete"}))

    def test_an_empty_file_grants_nothing(self) -> None:
        rules = parseRules(b"", "p")
        self.assertFalse(rules.allows("alice", frozenset(), repo("a", "pull")))
        self.assertFalse(rules.anonymousAllowed([]))

    def test_errors_name_the_entry(self) -> None:
        cases = [
            (
                "rules: [{repositories: [a], users: [x], actions: [pusj]}]",
                "rules[0].actions[0]: unknown action",
            ),
            (
                "rules: [{repositories: [a], groups: [devs], actions: [pull]}]",
                "rules[0].groups[0]: unknown group",
            ),
            ("rules: [{users: [x], actions: [pull]}]", "rules[0].repositories: required"),
            ("rules: [{repositories: [a], users: [x]}]", "rules[0].actions: required"),
            ("rules: [{repositories: [a], actions: [pull]}]", "rules[0]: a rule needs users or groups"),
            (
                "rules: [{repositories: [A], users: [x], actions: [pull]}]",
                "rules[0].repositories[0]: pattern",
            ),
            ("rules: [{repositories: [a], users: x, actions: [pull], who: 1}]", "rules[0].who: unknown key"),
            ("rules: {a: 1}", "rules: expected a list"),
            ("users: []", "users: unknown key"),
            ("groups: [a, b]", "groups: expected a mapping"),
            ("groups: {a: [1]}", "groups.a[0]: expected a non-empty string"),
            ("catalog: {groups: [nobody]}", "catalog.groups[0]: unknown group"),
            ("anonymous: {push: [a]}", "anonymous.push: unknown key"),
            ("anonymous: {catalog: maybe}", "anonymous.catalog: expected true or false"),
            ("anonymous: {pull: ['Public/*']}", "anonymous.pull[0]: pattern"),
            ("rules: [\n  - repositories: [a\n", "not valid YAML"),
            ("- a\n- b\n", "the document: expected a mapping"),
        ]
        for text, expected in cases:
            self.assertIn(expected, self.parseError(text), text)

    def test_a_single_string_is_a_one_item_list(self) -> None:
        rules = parseRules(b"rules: [{repositories: a, users: bob, actions: pull}]", "p")
        self.assertTrue(rules.allows("bob", frozenset(), repo("a", "pull")))


class DecisionTests(unittest.TestCase):
    def setUp(self) -> None:
        self.rules = parseRules(EXAMPLE, "p")

    def allows(self, user: str, access: Access) -> bool:
        return self.rules.allows(user, self.rules.groupsOf(user), access)

    def test_groups_of_a_user(self) -> None:
        self.assertEqual(self.rules.groupsOf("alice"), frozenset({"admins"}))
        self.assertEqual(self.rules.groupsOf("nobody"), frozenset())

    def test_ci_pushes_to_ci_only(self) -> None:
        self.assertTrue(self.allows("buildbot", repo("ci/app", "push")))
        self.assertFalse(self.allows("buildbot", repo("ci/app", "delete")))
        self.assertFalse(self.allows("buildbot", repo("ci/a/b", "push")))
        self.assertFalse(self.allows("buildbot", repo("team/app", "push")))
        self.assertTrue(self.allows("buildbot", repo("team/app", "pull")), "every user may pull")

    def test_admins_may_do_everything(self) -> None:
        for action in ("pull", "push", "delete"):
            self.assertTrue(self.allows("alice", repo("any/where", action)))
        self.assertTrue(self.allows("alice", CATALOG))

    def test_grants_add_up_across_rules(self) -> None:
        # carol's push comes from her own rule, her pull from the everyone rule.
        self.assertTrue(self.allows("carol", repo("carol/x", "push")))
        self.assertTrue(self.allows("carol", repo("carol/x", "pull")))
        self.assertFalse(self.allows("carol", repo("other", "push")))

    def test_the_catalog_is_for_whom_it_names(self) -> None:
        self.assertFalse(self.allows("buildbot", CATALOG))

    def test_anonymous_pull_of_public_only(self) -> None:
        self.assertTrue(self.rules.anonymousAllowed([repo("public/base", "pull")]))
        self.assertTrue(self.rules.anonymousAllowed([repo("public/a/b", "pull")]))
        self.assertFalse(self.rules.anonymousAllowed([repo("public/base", "push")]))
        self.assertFalse(self.rules.anonymousAllowed([repo("team/app", "pull")]))
        self.assertFalse(self.rules.anonymousAllowed([repo("public/a", "pull"), repo("team/app", "pull")]))
        self.assertFalse(self.rules.anonymousAllowed([CATALOG]))

    def test_the_base_route_is_open_when_anonymous_can_do_something(self) -> None:
        self.assertTrue(self.rules.anonymousAllowed([]))
        self.assertFalse(AccessRules().anonymousAllowed([]))
        self.assertTrue(AccessRules(anonymousCatalog=True).anonymousAllowed([]))

    def test_unknown_access_types_are_denied(self) -> None:
        self.assertFalse(self.allows("alice", Access("registry", "gc", "*")))


class RulesThroughTheAPITests(unittest.TestCase):
    """The Basic controller with an access file, answering through the API in memory."""

    def setUp(self) -> None:
        self.clock = Clock()
        base = Path(self.mktemp())
        base.mkdir()
        self.users = base / "htpasswd"
        self.users.write_bytes(htpasswdText(alice="a", buildbot="b", carol="c"))
        self.access = base / "access.yml"
        self.access.write_bytes(EXAMPLE)
        config = HtpasswdConfig("registry", str(self.users), str(self.access))
        self.controller = controllerFromConfig(config, ClockedReactor(self.clock))
        self.client = APIClient(makeAPI(accessController=self.controller))

    def as_(self, user: str | None) -> dict[str, str]:
        passwords = {"alice": "a", "buildbot": "b", "carol": "c"}
        return {} if user is None else {"Authorization": basic(user, passwords[user])}

    async def push(self, name: str, user: str | None) -> int:
        answer = await self.client.post(
            f"/v2/{name}/blobs/uploads/?digest={digestOf(b'layer')}", b"layer", headers=self.as_(user)
        )
        return answer.code

    async def test_a_user_lacking_a_right_gets_403_naming_the_scope(self) -> None:
        answer = await self.client.post("/v2/team/app/blobs/uploads/", headers=self.as_("buildbot"))
        self.assertEqual(answer.code, 403)
        self.assertIsNone(answer.header("WWW-Authenticate"))
        [error] = answer.json()["errors"]
        self.assertEqual(error["code"], "DENIED")
        self.assertEqual(error["detail"], {"scope": "repository:team/app:push"})

    async def test_a_user_limited_to_ci_pushes_there(self) -> None:
        self.assertEqual(await self.push("ci/app", "buildbot"), 201)
        self.assertEqual(await self.push("other/app", "buildbot"), 403)

    async def test_a_mount_needs_pull_on_the_source(self) -> None:
        self.assertEqual(await self.push("team/secret", "alice"), 201)
        # Without the rule letting every user pull, carol may push to carol/* but not read team/*.
        self.access.write_bytes(EXAMPLE.replace(b'users: ["*"]', b"users: [alice]"))
        self.clock.advance(1)
        digest = digestOf(b"layer")
        answer = await self.client.post(
            f"/v2/carol/x/blobs/uploads/?mount={digest}&from=team/secret", headers=self.as_("carol")
        )
        self.assertEqual(answer.code, 403)
        detail = answer.json()["errors"][0]["detail"]
        self.assertEqual(detail, {"scope": "repository:carol/x:pull repository:team/secret:pull"})

    async def test_the_catalog_only_for_admins(self) -> None:
        self.assertEqual((await self.client.get("/v2/_catalog", headers=self.as_("alice"))).code, 200)
        answer = await self.client.get("/v2/_catalog", headers=self.as_("carol"))
        self.assertEqual(answer.code, 403)
        self.assertEqual(answer.json()["errors"][0]["detail"], {"scope": "registry:catalog:*"})

    async def test_anonymous_pull_of_public_and_challenge_elsewhere(self) -> None:
        self.assertEqual(await self.push("public/base", "alice"), 201)
        digest = digestOf(b"layer")
        self.assertEqual((await self.client.head(f"/v2/public/base/blobs/{digest}")).code, 200)
        for method, path in [
            ("HEAD", f"/v2/team/app/blobs/{digest}"),
            ("POST", "/v2/public/base/blobs/uploads/"),
            ("GET", "/v2/_catalog"),
        ]:
            answer = await self.client.request(method, path)
            self.assertEqual(answer.code, 401, path)
            self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="registry"')

    async def test_the_base_route_without_authorization_is_challenged_even_with_anonymous_pull(self) -> None:
        # Clients learn from this answer how to authenticate; told 200 they never send credentials.
        answer = await self.client.get("/v2/")
        self.assertEqual(answer.code, 401)
        self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="registry"')

    async def test_empty_basic_credentials_are_anonymous(self) -> None:
        """containers/image clients with no credentials answer with an empty user and password."""
        empty = {"Authorization": basic("", "")}
        self.assertEqual((await self.client.get("/v2/", headers=empty)).code, 200)
        self.assertEqual(await self.push("public/base", "alice"), 201)
        self.assertEqual(
            (await self.client.head(f"/v2/public/base/blobs/{digestOf(b'layer')}", headers=empty)).code, 200
        )
        answer = await self.client.head(f"/v2/team/app/blobs/{digestOf(b'layer')}", headers=empty)
        self.assertEqual(answer.code, 401)
        self.assertEqual((await self.client.get("/v2/", headers={"Authorization": basic("", "x")})).code, 401)

    async def test_wrong_credentials_are_challenged_even_where_anonymous_may_pull(self) -> None:
        answer = await self.client.get(
            "/v2/public/base/tags/list", headers={"Authorization": basic("alice", "x")}
        )
        self.assertEqual(answer.code, 401)

    async def test_identity_carries_the_groups(self) -> None:
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"authorization", [basic("alice", "a").encode()])
        identity = await self.controller.authorize(request, [repo("x", "delete")])
        self.assertEqual(identity, Identity("alice", "htpasswd", frozenset({"admins"})))
        self.assertEqual(
            await self.controller.authorize(DummyRequest([b""]), [repo("public/x", "pull")]), ANONYMOUS
        )

    async def test_the_rules_file_is_re_read_on_change(self) -> None:
        self.assertEqual(await self.push("team/app", "carol"), 403)
        self.access.write_bytes(
            EXAMPLE.replace(
                b"catalog:", b"  - {repositories: ['team/*'], users: [carol], actions: [push]}\ncatalog:"
            )
        )
        self.clock.advance(1)
        self.assertEqual(await self.push("team/app", "carol"), 201)

    async def test_a_bad_rules_change_keeps_the_previous_rules(self) -> None:
        self.access.write_bytes(b"rules: [{repositories: ['**'], users: ['*'], actions: [everything]}]\n")
        self.clock.advance(1)
        self.assertEqual(await self.push("ci/app", "buildbot"), 201)
        self.assertEqual(await self.push("team/app", "buildbot"), 403)


class WithoutAnonymousTests(unittest.TestCase):
    async def test_the_base_route_asks_for_credentials(self) -> None:
        base = Path(self.mktemp())
        base.mkdir()
        (base / "htpasswd").write_bytes(htpasswdText(alice="a"))
        (base / "access.yml").write_bytes(b"rules: [{repositories: ['**'], users: ['*'], actions: [pull]}]\n")
        config = HtpasswdConfig("r", str(base / "htpasswd"), str(base / "access.yml"))
        client = APIClient(makeAPI(accessController=controllerFromConfig(config, reactor)))
        self.assertEqual((await client.get("/v2/")).code, 401)
        self.assertEqual((await client.get("/v2/", headers={"Authorization": basic("", "")})).code, 401)
        self.assertEqual((await client.get("/v2/", headers={"Authorization": basic("alice", "a")})).code, 200)
        answer = await client.post("/v2/a/blobs/uploads/", headers={"Authorization": basic("alice", "a")})
        self.assertEqual(answer.code, 403)


class StartUpTests(unittest.TestCase):
    def configWith(self, access: bytes | None) -> HtpasswdConfig:
        base = Path(self.mktemp())
        base.mkdir()
        (base / "htpasswd").write_bytes(htpasswdText(alice="a"))
        path = base / "access.yml"
        if access is not None:
            path.write_bytes(access)
        return HtpasswdConfig("r", str(base / "htpasswd"), str(path))

    def test_a_bad_rules_file_stops_start_up_naming_the_key_and_entry(self) -> None:
        config = self.configWith(b"rules: [{repositories: [a], users: [x], actions: [pusj]}]\n")
        with self.assertRaises(ConfigError) as caught:
            controllerFromConfig(config, reactor)
        self.assertEqual(caught.exception.keyPath, ("auth", "htpasswd", "access"))
        self.assertIn("rules[0].actions[0]", str(caught.exception))
        self.assertIn(config.access, str(caught.exception))

    def test_a_missing_rules_file_stops_start_up(self) -> None:
        config = self.configWith(None)
        with self.assertRaises(ConfigError) as caught:
            controllerFromConfig(config, reactor)
        self.assertEqual(caught.exception.keyPath, ("auth", "htpasswd", "access"))
        self.assertIn("cannot read", str(caught.exception))
        self.assertFalse(Path(config.access).exists(), "a rules file is never created")

    async def test_without_a_rules_file_every_user_may_do_everything(self) -> None:
        config = self.configWith(None)
        config = HtpasswdConfig(config.realm, config.path, None)
        client = APIClient(makeAPI(accessController=controllerFromConfig(config, reactor)))
        headers = {"Authorization": basic("alice", "a")}
        answer = await client.post(f"/v2/a/b/blobs/uploads/?digest={digestOf(b'x')}", b"x", headers=headers)
        self.assertEqual(answer.code, 201)
        self.assertEqual((await client.delete(f"/v2/a/b/blobs/{digestOf(b'x')}", headers=headers)).code, 202)
        self.assertEqual((await client.get("/v2/_catalog", headers=headers)).code, 200)
        self.assertEqual((await client.get("/v2/")).code, 401)


class ShippedExampleTests(unittest.TestCase):
    def test_the_annotated_example_parses_and_says_what_it_says(self) -> None:
        path = Path(__file__).resolve().parents[1] / "etc" / "registryd" / "access.yml"
        rules = parseRules(path.read_bytes(), str(path))
        self.assertTrue(rules.allows("buildbot", rules.groupsOf("buildbot"), repo("ci/app", "push")))
        self.assertFalse(rules.allows("buildbot", rules.groupsOf("buildbot"), repo("team/app", "push")))
        self.assertTrue(rules.allows("carol", rules.groupsOf("carol"), repo("team/a/b", "delete")))
        self.assertTrue(rules.allows("alice", rules.groupsOf("alice"), CATALOG))
        self.assertTrue(rules.anonymousAllowed([repo("public/base", "pull")]))
        self.assertFalse(rules.anonymousAllowed([CATALOG]))

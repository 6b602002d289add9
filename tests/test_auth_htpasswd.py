"""
Tests for C{auth.htpasswd}: the file (bcrypt only, line numbers, creation), its twisted.cred
checker (threads, cache, timing-safe failures), files re-read on change, and the Basic access
controller through the API (401 shape, malformed headers).
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path
from typing import Any

import bcrypt
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from registryd.auth import htpasswd
from registryd.auth.basic import BasicAccessController, WatchedFile, basicCredentials
from registryd.auth.controllers import accessControllerFor
from registryd.auth.htpasswd import (
    HtpasswdChecker,
    HtpasswdError,
    Users,
    checkPassword,
    controllerFromConfig,
    createHtpasswd,
    loadUsers,
    makeUsers,
    parseHtpasswd,
)
from registryd.auth.interfaces import AuthenticationRequired, IAccessController, Identity
from registryd.config.auth import AuthConfig, HtpasswdConfig
from registryd.config.errors import ConfigError
from tests.test_api_base import Answer, APIClient, makeAPI

COST = 4  # bcrypt's cheapest cost keeps the tests fast


def hashOf(password: bytes, prefix: bytes = b"$2y$", cost: int = COST) -> bytes:
    """A bcrypt hash with the prefix Apache's htpasswd -B writes (or another)."""
    return prefix + bcrypt.hashpw(password, bcrypt.gensalt(cost))[4:]


def htpasswdText(**passwords: str) -> bytes:
    return b"".join(f"{user}:".encode() + hashOf(pw.encode()) + b"\n" for user, pw in passwords.items())


def basic(user: str | bytes, password: str | bytes) -> str:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(raw).decode()


def inline(function: Any, *args: Any) -> Deferred:
    """Run 'in a thread' on the spot, for tests that drive time with a Clock."""
    return maybeDeferred(function, *args)


class Runs:
    """A thread runner that records what it runs and runs it on the spot."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple]] = []

    def __call__(self, function: Any, *args: Any) -> Deferred:
        self.calls.append((function, args))
        return maybeDeferred(function, *args)


def captureLog(case: unittest.TestCase) -> list[str]:
    """Collect the text of every log event emitted while the test runs."""
    from twisted.logger import formatEvent

    texts: list[str] = []

    def observe(event: dict) -> None:
        texts.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return texts


class ClockedReactor:
    """The real reactor (threads, callFromThread) with time from a Clock, to step file checks."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def seconds(self) -> float:
        return self.clock.seconds()

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class ParseTests(unittest.TestCase):
    def test_bcrypt_entries_of_every_prefix_are_read(self) -> None:
        data = b"".join(
            f"u{i}:".encode() + hashOf(b"pw", prefix) + b"\n"
            for i, prefix in enumerate([b"$2y$", b"$2a$", b"$2b$"])
        )
        users = parseHtpasswd(data, "/etc/htpasswd")
        self.assertEqual(sorted(users), ["u0", "u1", "u2"])
        for hashed in users.values():
            self.assertTrue(checkPassword(b"pw", hashed))

    def test_blank_lines_comments_and_crlf_are_skipped(self) -> None:
        data = b"# the team\n\n   \nalice:" + hashOf(b"a") + b"\r\n# bob left\n"
        self.assertEqual(list(parseHtpasswd(data, "p")), ["alice"])

    def test_other_schemes_are_refused_naming_file_line_and_kind(self) -> None:
        for entry, kind in [
            ("$apr1$x7b.nq8K$GhPZ5MJx7Ouvd1c1WQZkY/", "MD5 (apr1)"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("rl5NElYV1BDHg", "crypt or plain-text"),
            ("secret", "crypt or plain-text"),
            ("$6$salt$abc", "SHA-512-crypt"),
            ("$2y$10$tooshort", "malformed bcrypt"),
        ]:
            data = b"alice:" + hashOf(b"a") + b"\n# comment\nbob:" + entry.encode() + b"\n"
            with self.assertRaises(HtpasswdError) as caught:
                parseHtpasswd(data, "/etc/registry/htpasswd")
            message = str(caught.exception)
            self.assertIn("/etc/registry/htpasswd, line 3", message)
            self.assertIn(kind, message)
            self.assertIn("'bob'", message)
            self.assertNotIn(entry, message, "the entry's hash or password is not repeated")

    def test_line_without_colon_is_refused(self) -> None:
        with self.assertRaisesRegex(HtpasswdError, "p, line 1: expected user:hash"):
            parseHtpasswd(b"alice\n", "p")

    def test_empty_user_is_refused(self) -> None:
        with self.assertRaisesRegex(HtpasswdError, "line 1"):
            parseHtpasswd(b":" + hashOf(b"x") + b"\n", "p")

    def test_not_utf8_is_refused_with_its_line(self) -> None:
        with self.assertRaisesRegex(HtpasswdError, "line 2: not UTF-8"):
            parseHtpasswd(b"# ok\n\xff:" + hashOf(b"x") + b"\n", "p")

    def test_a_later_line_for_a_user_wins(self) -> None:
        first, second = hashOf(b"one"), hashOf(b"two")
        users = parseHtpasswd(b"alice:" + first + b"\nalice:" + second + b"\n", "p")
        self.assertEqual(users, {"alice": second})

    def test_dummy_hash_has_the_files_usual_cost(self) -> None:
        users = loadUsers(htpasswdText(alice="a", bob="b"), "p")
        self.assertEqual(users.dummy[:7], b"$2b$04$")
        self.assertFalse(checkPassword(b"", users.dummy))

    def test_passwords_past_72_bytes_count_as_htpasswd_counts_them(self) -> None:
        hashed = hashOf(b"a" * 72)
        self.assertTrue(checkPassword(b"a" * 80, hashed))
        self.assertFalse(checkPassword(b"a" * 71, hashed))


class CreateTests(unittest.TestCase):
    def test_created_with_one_user_mode_0600_in_a_new_directory(self) -> None:
        path = Path(self.mktemp()) / "deep" / "auth" / "htpasswd"
        password = createHtpasswd(str(path))
        self.assertGreaterEqual(len(password), 32)
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(path.parent.stat().st_mode), 0o700)
        users = parseHtpasswd(path.read_bytes(), str(path))
        self.assertEqual(list(users), ["docker"])
        self.assertTrue(checkPassword(password.encode(), users["docker"]))

    def test_passwords_are_random(self) -> None:
        base = Path(self.mktemp())
        self.assertNotEqual(createHtpasswd(str(base / "a")), createHtpasswd(str(base / "b")))

    def test_an_existing_file_is_never_overwritten(self) -> None:
        path = Path(self.mktemp())
        path.write_bytes(b"mine\n")
        self.assertRaises(FileExistsError, createHtpasswd, str(path))
        self.assertEqual(path.read_bytes(), b"mine\n")


class CheckerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.runs = Runs()
        self.users = loadUsers(htpasswdText(alice="wonderland", bob="builder"), "p")
        self.checker = HtpasswdChecker(self.users, self.clock, self.runs)

    def check(self, user: str | bytes, password: str | bytes) -> Any:
        name = user if isinstance(user, bytes) else user.encode()
        secret = password if isinstance(password, bytes) else password.encode()
        outcome: list[Any] = []
        self.checker.requestAvatarId(UsernamePassword(name, secret)).addBoth(outcome.append)
        self.assertEqual(len(outcome), 1)
        return outcome[0]

    def bcryptRuns(self) -> list[tuple]:
        return [args for function, args in self.runs.calls if function is checkPassword]

    def test_provides_the_checker_interface(self) -> None:
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker))

    def test_right_password_gives_the_user(self) -> None:
        self.assertEqual(self.check("alice", "wonderland"), "alice")

    def test_wrong_password_and_unknown_user_fail_alike(self) -> None:
        wrongPassword = self.check("alice", "nope")
        unknownUser = self.check("mallory", "wonderland")
        for failure in (wrongPassword, unknownUser):
            failure.trap(UnauthorizedLogin)
        self.assertEqual(str(wrongPassword.value), str(unknownUser.value))

    def test_unknown_user_costs_one_bcrypt_against_the_dummy_hash(self) -> None:
        self.check("mallory", "x")
        self.check("alice", "x")
        runs = self.bcryptRuns()
        self.assertEqual(len(runs), 2)
        self.assertEqual(runs[0][1], self.users.dummy)
        self.assertEqual(runs[1][1], self.users.hashes["alice"])

    def test_unknown_user_fails_even_when_the_dummy_matched(self) -> None:
        self.patch(htpasswd, "checkPassword", lambda password, hashed: True)
        checker = HtpasswdChecker(self.users, self.clock, inline)
        failures: list[Any] = []
        checker.requestAvatarId(UsernamePassword(b"mallory", b"x")).addErrback(failures.append)
        self.assertEqual(len(failures), 1)

    def test_success_is_cached_for_a_minute(self) -> None:
        self.check("alice", "wonderland")
        self.check("alice", "wonderland")
        self.assertEqual(len(self.bcryptRuns()), 1)
        self.clock.advance(61)
        self.assertEqual(self.check("alice", "wonderland"), "alice")
        self.assertEqual(len(self.bcryptRuns()), 2)

    def test_the_cache_needs_the_same_password(self) -> None:
        self.check("alice", "wonderland")
        self.check("alice", "wonderland!").trap(UnauthorizedLogin)
        self.assertEqual(len(self.bcryptRuns()), 2)

    def test_failures_are_not_cached(self) -> None:
        self.check("alice", "nope")
        self.check("alice", "nope")
        self.assertEqual(len(self.bcryptRuns()), 2)

    def test_new_users_drop_the_cache(self) -> None:
        self.check("alice", "wonderland")
        self.checker.setUsers(loadUsers(htpasswdText(alice="changed"), "p"))
        self.check("alice", "wonderland").trap(UnauthorizedLogin)
        self.assertEqual(self.check("alice", "changed"), "alice")

    def test_a_check_started_before_new_users_is_not_cached(self) -> None:
        pending: list[Deferred] = []

        def later(function: Any, *args: Any) -> Deferred:
            pending.append(Deferred())
            pending[-1].addCallback(lambda _: function(*args))
            return pending[-1]

        checker = HtpasswdChecker(self.users, self.clock, later)
        checker.requestAvatarId(UsernamePassword(b"alice", b"wonderland"))
        checker.setUsers(loadUsers(htpasswdText(alice="changed"), "p"))
        pending[0].callback(None)
        checker.requestAvatarId(UsernamePassword(b"alice", b"wonderland")).addErrback(lambda f: None)
        self.assertEqual(len(pending), 2, "the second check ran bcrypt again")

    def test_identical_checks_in_flight_share_one_bcrypt(self) -> None:
        pending: list[Deferred] = []

        def later(function: Any, *args: Any) -> Deferred:
            pending.append(Deferred())
            pending[-1].addCallback(lambda _: function(*args))
            return pending[-1]

        checker = HtpasswdChecker(self.users, self.clock, later)
        results: list[Any] = []
        for _ in range(3):
            checker.requestAvatarId(UsernamePassword(b"alice", b"wonderland")).addBoth(results.append)
        checker.requestAvatarId(UsernamePassword(b"alice", b"other")).addBoth(results.append)
        self.assertEqual(len(pending), 2)
        for d in pending:
            d.callback(None)
        self.assertEqual(results[:3], ["alice"] * 3)
        results[3].trap(UnauthorizedLogin)

    def test_failed_check_in_flight_fails_every_sharer(self) -> None:
        pending: list[Deferred] = []

        def later(function: Any, *args: Any) -> Deferred:
            pending.append(Deferred())
            pending[-1].addCallback(lambda _: function(*args))
            return pending[-1]

        checker = HtpasswdChecker(self.users, self.clock, later)
        results: list[Any] = []
        for _ in range(2):
            checker.requestAvatarId(UsernamePassword(b"alice", b"bad")).addBoth(results.append)
        pending[0].callback(None)
        self.assertEqual(len(pending), 1)
        for failure in results:
            failure.trap(UnauthorizedLogin)

    def test_the_cache_is_bounded(self) -> None:
        checker = HtpasswdChecker(self.users, self.clock, self.runs, cacheSize=2)
        for user, password in [("alice", "wonderland"), ("bob", "builder"), ("alice", "wonderland")]:
            self.clock.advance(1)
            checker.requestAvatarId(UsernamePassword(user.encode(), password.encode()))
        self.assertLessEqual(len(checker._cache), 2)


class BcryptThreadTests(unittest.TestCase):
    """The production controller runs bcrypt off the reactor thread."""

    async def test_bcrypt_runs_in_a_thread(self) -> None:
        path = Path(self.mktemp())
        path.write_bytes(htpasswdText(alice="wonderland"))
        controller = controllerFromConfig(HtpasswdConfig("r", str(path)), reactor)
        threads: list[threading.Thread] = []
        original = bcrypt.checkpw

        def recording(password: bytes, hashed: bytes) -> bool:
            threads.append(threading.current_thread())
            return original(password, hashed)

        self.patch(htpasswd.bcrypt, "checkpw", recording)
        request = DummyRequest([b"v2", b""])
        request.requestHeaders.setRawHeaders(b"authorization", [basic("alice", "wonderland").encode()])
        identity = await controller.authorize(request, [])
        self.assertEqual(identity, Identity("alice", "htpasswd"))
        self.assertEqual(len(threads), 1)
        self.assertIsNot(threads[0], threading.main_thread())


class WatchedFileTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.path = Path(self.mktemp())
        self.path.write_bytes(b"one\n")
        self.parsed: list[bytes] = []
        self.changes: list[str] = []
        self.log = captureLog(self)
        self.watched = WatchedFile(
            str(self.path), self.parse, ("auth", "htpasswd", "path"), "users", self.clock, inline,
            onChange=self.changes.append,
        )  # fmt: skip

    def parse(self, data: bytes, path: str) -> str:
        self.parsed.append(data)
        text = data.decode()
        if "bad" in text:
            raise ValueError(f"{path}, line 1: bad entry")
        return text.strip()

    def refresh(self) -> None:
        d = self.watched.refresh()
        self.assertTrue(d.called)

    def errors(self) -> list[str]:
        return [line for line in self.log if "auth.htpasswd.path" in line]

    def test_load_reads_now_without_calling_on_change(self) -> None:
        self.assertEqual(self.watched.load(), "one")
        self.assertEqual(self.watched.current, "one")
        self.assertEqual(self.changes, [])

    def test_load_of_a_bad_file_is_a_config_error_naming_the_key(self) -> None:
        self.path.write_bytes(b"bad\n")
        with self.assertRaises(ConfigError) as caught:
            self.watched.load()
        self.assertEqual(caught.exception.keyPath, ("auth", "htpasswd", "path"))
        self.assertIn("line 1: bad entry", str(caught.exception))

    def test_a_change_is_taken_in_at_the_next_look(self) -> None:
        self.watched.load()
        self.path.write_bytes(b"two, longer\n")
        self.refresh()
        self.assertEqual(self.watched.current, "one", "looked again within the interval")
        self.clock.advance(1)
        self.refresh()
        self.assertEqual(self.watched.current, "two, longer")
        self.assertEqual(self.changes, ["two, longer"])

    def test_a_replaced_file_is_taken_in(self) -> None:
        self.watched.load()
        replacement = Path(self.mktemp())
        replacement.write_bytes(b"three\n")
        os.replace(replacement, self.path)
        self.clock.advance(1)
        self.refresh()
        self.assertEqual(self.watched.current, "three")

    def test_unchanged_content_is_not_parsed_again(self) -> None:
        self.watched.load()
        for _ in range(3):
            self.clock.advance(1)
            self.refresh()
        self.assertEqual(len(self.parsed), 1)
        self.assertEqual(self.changes, [])

    def test_a_bad_change_keeps_the_previous_value_and_is_logged_once(self) -> None:
        self.watched.load()
        self.path.write_bytes(b"bad\n")
        for _ in range(3):
            self.clock.advance(1)
            self.refresh()
        self.assertEqual(self.watched.current, "one")
        self.assertEqual(self.changes, [])
        errors = self.errors()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("line 1: bad entry; keeping the previous users", errors[0])
        self.path.write_bytes(b"fixed\n")
        self.clock.advance(1)
        self.refresh()
        self.assertEqual(self.watched.current, "fixed")
        self.assertIsNone(self.watched.problem)

    def test_a_deleted_file_keeps_the_previous_value(self) -> None:
        self.watched.load()
        self.path.unlink()
        self.clock.advance(1)
        self.refresh()
        self.assertEqual(self.watched.current, "one")
        self.assertIn("cannot read", self.watched.problem)

    def test_looks_in_flight_are_shared(self) -> None:
        pending: list[Deferred] = []

        def later(function: Any, *args: Any) -> Deferred:
            pending.append(Deferred())
            pending[-1].addCallback(lambda _: function(*args))
            return pending[-1]

        watched = WatchedFile(str(self.path), self.parse, ("k",), "users", self.clock, later)
        first, second = watched.refresh(), watched.refresh()
        self.assertEqual(len(pending), 1)
        self.assertFalse(second.called)
        pending[0].callback(None)
        self.assertTrue(first.called and second.called)
        self.assertEqual(watched.current, "one")


def configFor(path: Path, access: Path | None = None, realm: str = "registry") -> HtpasswdConfig:
    return HtpasswdConfig(realm, str(path), str(access) if access else None)


class ControllerFromConfigTests(unittest.TestCase):
    def test_built_through_the_auth_seam(self) -> None:
        path = Path(self.mktemp())
        path.write_bytes(htpasswdText(alice="a"))
        controller = accessControllerFor(AuthConfig(htpasswd=configFor(path)), reactor)
        self.assertIsInstance(controller, BasicAccessController)
        self.assertTrue(verifyObject(IAccessController, controller))

    async def test_a_missing_file_is_created_and_its_password_logged(self) -> None:
        log = captureLog(self)
        path = Path(self.mktemp()) / "auth" / "htpasswd"
        controller = controllerFromConfig(configFor(path), reactor)
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        [line] = [line for line in log if "did not exist" in line]
        self.assertIn("auth.htpasswd.path", line)
        self.assertIn("'docker'", line)
        password = line.rsplit("password ", 1)[1].strip("'")
        client = APIClient(makeAPI(accessController=controller))
        self.assertEqual(
            (await client.get("/v2/", headers={"Authorization": basic("docker", password)})).code, 200
        )
        self.assertEqual((await client.get("/v2/")).code, 401)

    def test_a_non_bcrypt_file_stops_start_up_naming_the_key_and_line(self) -> None:
        path = Path(self.mktemp())
        path.write_bytes(htpasswdText(alice="a") + b"bob:$apr1$x7b.nq8K$GhPZ5MJx7Ouvd1c1WQZkY/\n")
        with self.assertRaises(ConfigError) as caught:
            controllerFromConfig(configFor(path), reactor)
        self.assertEqual(caught.exception.keyPath, ("auth", "htpasswd", "path"))
        self.assertIn(f"{path}, line 2", str(caught.exception))

    def test_a_file_that_cannot_be_created_stops_start_up(self) -> None:
        blocker = Path(self.mktemp())
        blocker.write_bytes(b"a file, not a directory")
        with self.assertRaises(ConfigError) as caught:
            controllerFromConfig(configFor(blocker / "htpasswd"), reactor)
        self.assertEqual(caught.exception.keyPath, ("auth", "htpasswd", "path"))
        self.assertIn("cannot create", str(caught.exception))

    async def test_a_directory_path_starts_refuses_everyone_until_the_file_appears(self) -> None:
        """Debian's shipped config has path: /etc/docker/registry, a directory."""
        log = captureLog(self)
        clock = Clock()
        clock.advance(1000)
        path = Path(self.mktemp())
        path.mkdir()
        controller = controllerFromConfig(configFor(path), ClockedReactor(clock))
        errors = [line for line in log if "auth.htpasswd.path" in line and "cannot read" in line]
        self.assertEqual(len(errors), 1, log)
        self.assertIn("no users until it is fixed", errors[0])
        self.assertEqual(list(path.iterdir()), [], "nothing is created inside the directory")
        client = APIClient(makeAPI(accessController=controller))
        for user in ("docker", "alice"):
            answer = await client.get("/v2/", headers={"Authorization": basic(user, "a")})
            self.assertEqual(answer.code, 401)
        path.rmdir()
        path.write_bytes(htpasswdText(alice="a"))
        clock.advance(1)
        answer = await client.get("/v2/", headers={"Authorization": basic("alice", "a")})
        self.assertEqual(answer.code, 200)

    async def test_the_users_file_is_re_read_on_change(self) -> None:
        clock = Clock()
        path = Path(self.mktemp())
        path.write_bytes(htpasswdText(alice="a"))
        controller = controllerFromConfig(configFor(path), ClockedReactor(clock))
        client = APIClient(makeAPI(accessController=controller))
        self.assertEqual((await client.get("/v2/", headers={"Authorization": basic("alice", "a")})).code, 200)
        path.write_bytes(htpasswdText(bob="b"))
        clock.advance(1)
        self.assertEqual((await client.get("/v2/", headers={"Authorization": basic("alice", "a")})).code, 401)
        self.assertEqual((await client.get("/v2/", headers={"Authorization": basic("bob", "b")})).code, 200)

    async def test_a_bad_reload_keeps_the_previous_users(self) -> None:
        log = captureLog(self)
        clock = Clock()
        path = Path(self.mktemp())
        path.write_bytes(htpasswdText(alice="a"))
        controller = controllerFromConfig(configFor(path), ClockedReactor(clock))
        client = APIClient(makeAPI(accessController=controller))
        path.write_bytes(htpasswdText(alice="a") + b"eve:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
        clock.advance(1)
        self.assertEqual((await client.get("/v2/", headers={"Authorization": basic("alice", "a")})).code, 200)
        errors = [line for line in log if "auth.htpasswd.path" in line and "line 2" in line]
        self.assertEqual(len(errors), 1, log)
        self.assertIn("keeping the previous users", errors[0])


class BasicCredentialsTests(unittest.TestCase):
    def test_well_formed(self) -> None:
        self.assertEqual(basicCredentials(basic("alice", "p:w").encode()), ("alice", b"p:w"))
        self.assertEqual(basicCredentials(b"basic " + base64.b64encode(b"a:")), ("a", b""))
        self.assertEqual(basicCredentials(b"Basic " + base64.b64encode(b":")), ("", b""))

    def test_malformed_is_none(self) -> None:
        for value in [
            None,
            b"",
            b"Basic",
            b"Basic ",
            b"Basic !!!notbase64",
            b"Basic " + base64.b64encode(b"no colon"),
            b"Basic " + base64.b64encode(b"\xff\xfe:pw"),
            b"Bearer " + base64.b64encode(b"alice:pw"),
            b"Digest username=alice",
        ]:
            self.assertIsNone(basicCredentials(value), value)


class ControllerAPITests(unittest.TestCase):
    """The Basic controller's answers through the API, in memory."""

    def setUp(self) -> None:
        path = Path(self.mktemp())
        path.write_bytes(htpasswdText(alice="wonderland"))
        self.controller = controllerFromConfig(configFor(path, realm='My "Registry"'), reactor)
        self.client = APIClient(makeAPI(accessController=self.controller))

    def assertChallenged(self, answer: Answer) -> None:
        self.assertEqual(answer.code, 401, answer.body)
        self.assertEqual(answer.header("WWW-Authenticate"), 'Basic realm="My \\"Registry\\""')
        self.assertEqual(answer.header("Content-Type"), "application/json; charset=utf-8")
        [error] = answer.json()["errors"]
        self.assertEqual(error["code"], "UNAUTHORIZED")

    async def test_without_credentials_every_route_is_challenged_base_included(self) -> None:
        for method, path in [
            ("GET", "/v2/"),
            ("GET", "/v2/_catalog"),
            ("GET", "/v2/a/tags/list"),
            ("POST", "/v2/a/blobs/uploads/"),
            ("DELETE", "/v2/a/manifests/latest"),
        ]:
            self.assertChallenged(await self.client.request(method, path))

    async def test_good_credentials_pass(self) -> None:
        headers = {"Authorization": basic("alice", "wonderland")}
        self.assertEqual((await self.client.get("/v2/", headers=headers)).code, 200)
        digest = await self.pushWith(headers)
        self.assertEqual((await self.client.head(f"/v2/a/blobs/{digest}", headers=headers)).code, 200)

    async def pushWith(self, headers: dict[str, str]) -> str:
        from tests.test_api_base import digestOf

        answer = await self.client.post(
            f"/v2/a/blobs/uploads/?digest={digestOf(b'x')}", b"x", headers=headers
        )
        self.assertEqual(answer.code, 201, answer.body)
        return digestOf(b"x")

    async def test_wrong_password_and_unknown_user_get_the_same_answer(self) -> None:
        wrong = await self.client.get("/v2/", headers={"Authorization": basic("alice", "nope")})
        unknown = await self.client.get("/v2/", headers={"Authorization": basic("mallory", "nope")})
        self.assertChallenged(wrong)
        self.assertEqual((wrong.code, wrong.body), (unknown.code, unknown.body))
        self.assertEqual(wrong.header("WWW-Authenticate"), unknown.header("WWW-Authenticate"))

    async def test_malformed_authorization_is_401_never_500(self) -> None:
        for value in [
            "Basic",
            "Basic %%%",
            "Basic " + base64.b64encode(b"alice").decode(),
            "Basic " + base64.b64encode(b"\xff:wonderland").decode(),
            "Bearer abc",
            "",
        ]:
            self.assertChallenged(await self.client.get("/v2/", headers={"Authorization": value}))

    async def test_empty_credentials_without_access_rules_are_challenged(self) -> None:
        self.assertChallenged(await self.client.get("/v2/", headers={"Authorization": basic("", "")}))
        self.assertChallenged(
            await self.client.get("/v2/a/tags/list", headers={"Authorization": basic("", "")})
        )

    async def test_non_utf8_password_is_just_wrong(self) -> None:
        raw = b"Basic " + base64.b64encode(b"alice:\xff\xfe")
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"authorization", [raw])
        await self.assertFailure(self.controller.authorize(request, []), AuthenticationRequired)

    async def test_identity_names_the_user_and_method(self) -> None:
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"authorization", [basic("alice", "wonderland").encode()])
        self.assertEqual(await self.controller.authorize(request, []), Identity("alice", "htpasswd"))

    def test_users_are_the_files(self) -> None:
        self.assertIsInstance(self.controller.checker.users, Users)
        self.assertEqual(list(self.controller.checker.users.hashes), ["alice"])
        self.assertEqual(makeUsers({}).hashes, {})

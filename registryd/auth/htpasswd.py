"""
C{auth.htpasswd}: users from an htpasswd file of bcrypt entries, checked through twisted.cred.

Only bcrypt (C{$2y$}, C{$2a$}, C{$2b$}) is accepted, as in distribution: any other entry
(MD5 C{$apr1$}, C{{SHA}}, crypt, plain text) is refused when the file is loaded, naming the
file and line. A missing file is created at start-up with the user C{docker} and a random
password written to the log, so a first start is never an open registry.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from registryd.auth.basic import BasicAccessController, WatchedFile
from registryd.auth.rules import AccessRules, parseRules
from registryd.config.auth import HtpasswdConfig
from registryd.config.errors import ConfigError

log = Logger(namespace="registryd.auth.htpasswd")

PATH_KEY = ("auth", "htpasswd", "path")
ACCESS_KEY = ("auth", "htpasswd", "access")

#: The user a created htpasswd file holds (distribution's choice).
DEFAULT_USER = "docker"

#: The bcrypt cost of hashes registryd writes (bcrypt's own default).
DEFAULT_COST = 12

#: bcrypt looks at the first 72 bytes of a password; so do Apache's htpasswd and Go's bcrypt.
BCRYPT_PASSWORD_BYTES = 72

_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}\Z")

# What other htpasswd formats look like, to say which one a refused entry is.
_OTHER_SCHEMES = [
    ("$apr1$", "an MD5 (apr1) hash"),
    ("{SHA}", "a SHA-1 hash"),
    ("$1$", "an MD5-crypt hash"),
    ("$5$", "a SHA-256-crypt hash"),
    ("$6$", "a SHA-512-crypt hash"),
    ("$2", "a malformed bcrypt hash"),
]


class HtpasswdError(ValueError):
    """An htpasswd file that cannot be used; the message names the file and the line."""


def _describe(hashed: str) -> str:
    for prefix, description in _OTHER_SCHEMES:
        if hashed.startswith(prefix):
            return description
    return "a crypt or plain-text password"


def parseHtpasswd(data: bytes, path: str) -> dict[str, bytes]:
    """
    The users of an htpasswd file and their bcrypt hashes. Blank lines and C{#} comments are
    skipped; a later line for the same user wins (as in distribution).

    @raise HtpasswdError: for any line that is not C{user:bcrypt-hash}, naming path and line.
    """
    users: dict[str, bytes] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise HtpasswdError(f"{path}, line {number}: not UTF-8 text") from None
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon or not user:
            raise HtpasswdError(f"{path}, line {number}: expected user:hash")
        hashed = hashed.strip()
        if not _BCRYPT.match(hashed):
            raise HtpasswdError(
                f"{path}, line {number}: user {user!r} has {_describe(hashed)}; only bcrypt entries "
                "($2y$, $2a$, $2b$) are accepted: set the password with htpasswd -B"
            )
        users[user] = hashed.encode("ascii")
    return users


def _cost(hashed: bytes) -> int:
    return int(hashed[4:6])


@dataclass(frozen=True)
class Users:
    """
    The users of one htpasswd file.

    @ivar hashes: user name to bcrypt hash.
    @ivar dummy: a bcrypt hash of a random secret at the file's most common cost: an unknown
        user's password is checked against it, so a wrong user name costs what a wrong password does.
    """

    hashes: Mapping[str, bytes]
    dummy: bytes


def makeUsers(hashes: Mapping[str, bytes]) -> Users:
    """Users with a dummy hash to match their cost (runs bcrypt once: call it off the reactor)."""
    costs = collections.Counter(_cost(h) for h in hashes.values())
    cost = costs.most_common(1)[0][0] if costs else DEFAULT_COST
    dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
    return Users(dict(hashes), dummy)


def loadUsers(data: bytes, path: str) -> Users:
    """Parse an htpasswd file into L{Users}. @raise HtpasswdError."""
    return makeUsers(parseHtpasswd(data, path))


def checkPassword(password: bytes, hashed: bytes) -> bool:
    """Whether password matches the bcrypt hash (slow by design: run it in a thread)."""
    try:
        return bcrypt.checkpw(password[:BCRYPT_PASSWORD_BYTES], hashed)
    except ValueError:
        return False


def createHtpasswd(path: str, user: str = DEFAULT_USER) -> str:
    """
    Create an htpasswd file (mode 0600, its directory made as needed, 0700) holding one user
    with a random password. @return: the password. @raise OSError: it cannot be created.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    password = secrets.token_urlsafe(32)
    hashed = bcrypt.hashpw(password.encode("ascii"), bcrypt.gensalt(DEFAULT_COST))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(user.encode("utf-8") + b":" + hashed + b"\n")
    return password


@implementer(ICredentialsChecker)
class HtpasswdChecker:
    """
    Checks user names and passwords against htpasswd users, running bcrypt in a thread.

    A successful check is remembered for C{cacheSeconds} (keyed by a keyed hash of user and
    password, never the password itself) and forgotten when the users change. Identical
    checks in flight share one bcrypt run. An unknown user is checked against a dummy hash,
    and every failure is the same L{UnauthorizedLogin}: no user enumeration by answer or time.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(
        self,
        users: Users,
        clock: IReactorTime,
        runInThread: Callable[..., Deferred],
        cacheSeconds: float = 60.0,
        cacheSize: int = 1024,
    ) -> None:
        self._users = users
        self._clock = clock
        self._runInThread = runInThread
        self._cacheSeconds = cacheSeconds
        self._cacheSize = cacheSize
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, float] = {}
        self._inFlight: dict[bytes, list[Deferred]] = {}
        self._generation = 0

    @property
    def users(self) -> Users:
        """The users checked against."""
        return self._users

    def setUsers(self, users: Users) -> None:
        """Check against these users from now on, forgetting every remembered check."""
        self._users = users
        self._cache.clear()
        self._generation += 1

    def _cacheKey(self, user: bytes, password: bytes) -> bytes:
        message = len(user).to_bytes(4, "big") + user + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def requestAvatarId(self, credentials: Any) -> Deferred:
        """
        @return: a Deferred firing with the user name (str), or failing with L{UnauthorizedLogin}.
        """
        user = credentials.username
        password = credentials.password
        userBytes = user if isinstance(user, bytes) else user.encode("utf-8")
        passwordBytes = password if isinstance(password, bytes) else password.encode("utf-8")
        try:
            name = userBytes.decode("utf-8")
        except UnicodeDecodeError:
            name = None
        key = self._cacheKey(userBytes, passwordBytes)
        now = self._clock.seconds()
        expires = self._cache.get(key)
        if expires is not None and name is not None:
            if now < expires:
                return succeed(name)
            del self._cache[key]
        waiting = self._inFlight.get(key)
        if waiting is not None:
            shared: Deferred = Deferred()
            waiting.append(shared)
            return shared
        self._inFlight[key] = []
        hashed = self._users.hashes.get(name) if name is not None else None
        known = hashed is not None
        generation = self._generation
        checking = self._runInThread(checkPassword, passwordBytes, hashed if known else self._users.dummy)

        def checked(matched: bool) -> str:
            if not (matched and known and name is not None):
                raise UnauthorizedLogin("bad user name or password")
            if generation == self._generation:
                self._remember(key)
            return name

        checking.addCallback(checked)
        checking.addBoth(self._share, key)
        return checking

    def _share(self, result: Any, key: bytes) -> Any:
        for waiter in self._inFlight.pop(key, []):
            if isinstance(result, Failure):
                waiter.errback(UnauthorizedLogin("bad user name or password"))
            else:
                waiter.callback(result)
        return result

    def _remember(self, key: bytes) -> None:
        now = self._clock.seconds()
        if len(self._cache) >= self._cacheSize:
            for stale in [k for k, expires in self._cache.items() if expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._cacheSize:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = now + self._cacheSeconds


def _threads(reactor: Any) -> Callable[..., Deferred]:
    def run(function: Callable[..., Any], *args: Any) -> Deferred:
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return run


def _startUsers(users: WatchedFile[Users]) -> Users:
    """Load the users at start-up: create a missing file; live with an unreadable one (all refused)."""
    path = users.path
    if not os.path.lexists(path):
        try:
            password = createHtpasswd(path)
        except OSError as e:
            raise ConfigError(f"cannot create {path}: {e.strerror or e}", PATH_KEY) from None
        log.warn(
            "{key}: {path} did not exist: created it with user {user!r} and password {password!r}",
            key=".".join(PATH_KEY),
            path=path,
            user=DEFAULT_USER,
            password=password,
        )
    try:
        return users.load()
    except OSError as e:
        # Debian's shipped config names a directory here; distribution starts with it and
        # refuses every credential, so do we, until the file becomes readable.
        users.unreadable(e)
        return makeUsers({})


def _startRules(rules: WatchedFile[AccessRules]) -> AccessRules:
    try:
        return rules.load()
    except OSError as e:
        raise ConfigError(str(e), ACCESS_KEY) from None


def controllerFromConfig(config: HtpasswdConfig, reactor: Any) -> BasicAccessController:
    """
    Build the controller of C{auth.htpasswd}, loading its files now (at start-up).

    @raise ConfigError: an htpasswd file with a non-bcrypt entry, a missing file that cannot
        be created, or an access file that cannot be read or is wrong.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    runInThread = _threads(reactor)
    users: WatchedFile[Users] = WatchedFile(config.path, loadUsers, PATH_KEY, "users", reactor, runInThread)
    checker = HtpasswdChecker(_startUsers(users), reactor, runInThread)
    users.onChange = checker.setUsers
    files: list[WatchedFile[Any]] = [users]
    currentRules: Callable[[], AccessRules | None] = lambda: None  # noqa: E731
    if config.access is not None:
        rules: WatchedFile[AccessRules] = WatchedFile(
            config.access, parseRules, ACCESS_KEY, "access rules", reactor, runInThread
        )
        _startRules(rules)
        files.append(rules)
        currentRules = lambda: rules.current  # noqa: E731
    log.info(
        "basic authentication (realm {realm!r}) against {path}{rules}",
        realm=config.realm,
        path=config.path,
        rules=f" with access rules from {config.access}" if config.access else "",
    )
    return BasicAccessController(config.realm, checker, currentRules, files)

"""
HTTP Basic authentication for the registry: the access controller of C{auth.htpasswd}, and
the small machinery that re-reads its files (users, access rules) when they change on disk.

Credentials go through a twisted.cred checker (L{registryd.auth.htpasswd.HtpasswdChecker});
what an authenticated user may do comes from the access rules (L{registryd.auth.rules}),
or, without an access file, everything (distribution's behaviour).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from registryd.auth.challenges import basicChallenge
from registryd.auth.interfaces import (
    ANONYMOUS,
    Access,
    AccessDenied,
    AuthenticationRequired,
    IAccessController,
    Identity,
    scopeText,
)
from registryd.auth.rules import AccessRules
from registryd.config.errors import ConfigError

T = TypeVar("T")

#: How often, at most, a watched file is looked at (one stat in a thread) for changes.
CHECK_INTERVAL = 1.0

#: A file changed this recently (nanoseconds) may change again within the same timestamp tick
#: (the kernel's clock is coarse), so its next look reads it again rather than trusting the stat.
SETTLE_NS = 2_000_000_000

Signature = tuple[int, int, int, int, int, int]


def fileSignature(path: str) -> Signature | None:
    """
    What changes when a file is edited, replaced or has its permissions changed; None while
    it changed too recently for its timestamps to tell the next change. @raise OSError.
    """
    st = os.stat(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLE_NS:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _readFile(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class _Look:
    """What one look at a watched file found (made in a thread, taken in on the reactor)."""

    signature: Signature | None
    digest: bytes | None
    value: Any = None
    problem: str | None = None
    unchanged: bool = False


class WatchedFile(Generic[T]):
    """
    A small file parsed into a value, re-read when it changes on disk: at most once every
    C{interval} seconds a refresh stats it (in a thread) and, if it changed, reads it there;
    new content is parsed, content as before is not. A file that cannot be read or parsed on
    a refresh is logged once, and the last good value stays in force.

    @ivar current: the last good value, or None when there never was one.
    @ivar onChange: called with each new value a refresh takes in (not with the one L{load} reads).
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        parse: Callable[[bytes, str], T],
        keyPath: Sequence[str],
        what: str,
        clock: IReactorTime,
        runInThread: Callable[..., Deferred],
        onChange: Callable[[T], None] | None = None,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.path = path
        self.current: T | None = None
        self.onChange = onChange
        self._parse = parse
        self._keyPath = tuple(keyPath)
        self._what = what
        self._clock = clock
        self._runInThread = runInThread
        self._interval = interval
        self._signature: Signature | None = None
        self._digest: bytes | None = None
        self._problem: str | None = None
        self._lastCheck: float | None = None
        self._waiters: list[Deferred] | None = None

    @property
    def keyName(self) -> str:
        """The configuration key that names this file, e.g. C{auth.htpasswd.path}."""
        return ".".join(self._keyPath)

    @property
    def problem(self) -> str | None:
        """Why the file's latest state is not in force, or None when it is."""
        return self._problem

    def load(self) -> T:
        """
        Read and parse the file now, on the calling thread (at start-up, before the reactor runs).

        @raise ConfigError: the file does not parse (naming the key and the line or entry).
        @raise OSError: the file cannot be read.
        """
        look = self._look(None, None)
        if look.problem is not None:
            if look.digest is None:
                raise OSError(look.problem)
            raise ConfigError(look.problem, self._keyPath)
        self._lastCheck = self._clock.seconds()
        self._take(look, initial=True)
        return look.value

    def unreadable(self, error: OSError) -> None:
        """Record (and log) that the file could not be read at start-up; refreshes keep trying."""
        self._lastCheck = self._clock.seconds()
        self._report(str(error))

    def refresh(self) -> Deferred:
        """
        Look for a change if the last look was long enough ago, and take it in.
        @return: a Deferred firing None once the file's current state is in force.
        """
        if self._waiters is not None:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            return waiter
        now = self._clock.seconds()
        if self._lastCheck is not None and now - self._lastCheck < self._interval:
            return succeed(None)
        self._lastCheck = now
        self._waiters = []
        checked = self._runInThread(self._look, self._signature, self._digest)
        checked.addCallback(self._take)
        checked.addErrback(lambda failure: self.log.failure("checking {path}", failure, path=self.path))
        checked.addBoth(self._wake)
        return checked

    def _look(self, signature: Signature | None, digest: bytes | None) -> _Look:
        # Off the reactor (but for load): stat, and read and parse only what is new.
        try:
            now = fileSignature(self.path)
        except OSError as e:
            return _Look(None, None, problem=f"cannot read {self.path}: {e.strerror or e}")
        if now is not None and now == signature:
            return _Look(now, digest, unchanged=True)
        try:
            data = _readFile(self.path)
        except OSError as e:
            return _Look(now, None, problem=f"cannot read {self.path}: {e.strerror or e}")
        contentDigest = hashlib.sha256(data).digest()
        if contentDigest == digest:
            return _Look(now, digest, unchanged=True)
        try:
            return _Look(now, contentDigest, value=self._parse(data, self.path))
        except ValueError as e:
            return _Look(now, contentDigest, problem=str(e))

    def _take(self, look: _Look, initial: bool = False) -> None:
        self._signature = look.signature
        self._digest = look.digest
        if look.unchanged:
            return
        if look.problem is not None:
            if look.problem != self._problem:
                self._report(look.problem)
            return
        self._problem = None
        self.current = look.value
        if not initial:
            self.log.info("{key}: took in {path}", key=self.keyName, path=self.path)
            if self.onChange is not None:
                self.onChange(look.value)

    def _wake(self, result: object) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            waiter.callback(None)

    def _report(self, problem: str) -> None:
        self._problem = problem
        keeping = (
            f"keeping the previous {self._what}"
            if self.current is not None
            else f"no {self._what} until it is fixed"
        )
        self.log.error("{key}: {problem}; {keeping}", key=self.keyName, problem=problem, keeping=keeping)


def basicCredentials(value: bytes | None) -> tuple[str, bytes] | None:
    """
    The (user, password) of an C{Authorization: Basic} header value, or None when it is
    absent, of another scheme, or malformed (bad base64, no colon, a user name not UTF-8).
    Both may be empty: C{("", b"")} is what containers/image clients send without credentials.
    """
    if not value:
        return None
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


@implementer(IAccessController)
class BasicAccessController:
    """
    Lets in requests with credentials the checker accepts, for what the access rules grant.

    Without credentials a request is let in only when the rules' C{anonymous} section grants
    everything it needs; otherwise it is challenged (401) so the client sends credentials.
    Wrong or malformed credentials are always challenged, in one same answer.

    C{GET /v2/} without an Authorization header is always challenged, even when anonymous
    pulls are allowed: clients (containers/image, Docker) learn from that answer whether and
    how to authenticate, and one told 200 never sends the credentials it has. Without
    credentials of their own, containers/image clients then send C{Basic} with an empty user
    and password: that is an anonymous request, and is let in where anonymous requests are.
    """

    log = Logger()

    def __init__(
        self,
        realm: str,
        checker: ICredentialsChecker,
        rules: Callable[[], AccessRules | None] = lambda: None,
        files: Sequence[WatchedFile[Any]] = (),
    ) -> None:
        self.realm = realm
        self.checker = checker
        self._rules = rules
        self._files = tuple(files)

    def refresh(self) -> Deferred:
        """Take in changes to the users and rules files. @return: Deferred firing None."""
        if not self._files:
            return succeed(None)
        done = DeferredList([f.refresh() for f in self._files], consumeErrors=True)
        done.addCallback(lambda _: None)
        return done

    def authorize(self, request: Any, accesses: Sequence[Access]) -> Deferred:
        return Deferred.fromCoroutine(self._authorize(request, list(accesses)))

    def _challenge(self) -> AuthenticationRequired:
        return AuthenticationRequired(basicChallenge(self.realm))

    async def _authorize(self, request: Any, accesses: list[Access]) -> Identity:
        await self.refresh()
        rules = self._rules()
        header = request.getHeader(b"Authorization")
        if header is None:
            if accesses and rules is not None and rules.anonymousAllowed(accesses):
                return ANONYMOUS
            raise self._challenge()
        credentials = basicCredentials(header)
        if credentials is None:
            raise self._challenge()
        user, password = credentials
        if not user and not password:
            if rules is not None and rules.anonymousAllowed(accesses):
                return ANONYMOUS
            raise self._challenge()
        try:
            await self.checker.requestAvatarId(UsernamePassword(user.encode("utf-8"), password))
        except UnauthorizedLogin:
            self.log.info("basic authentication failed for user {user!r}", user=user)
            raise self._challenge() from None
        if rules is None:
            return Identity(user, "htpasswd")
        groups = rules.groupsOf(user)
        missing = [access for access in accesses if not rules.allows(user, groups, access)]
        if missing:
            raise AccessDenied({"scope": scopeText(missing)})
        return Identity(user, "htpasswd", groups)

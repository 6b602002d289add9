"""
A small Redis client over Twisted: the RESP2 wire protocol, and a pool of connections.

Only what the blob descriptor cache needs: commands sent as arrays of bulk strings,
pipelined on one connection, replies parsed incrementally as they arrive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

CRLF = b"\r\n"


class RedisError(Exception):
    """The server answered a command with an error reply (C{-ERR ...})."""


class RedisConnectionError(Exception):
    """No connection to any configured server, or it was lost before the reply came."""


class _Incomplete(Exception):
    """The buffer holds only part of a reply."""


def encodeCommand(args: Sequence[bytes | str | int]) -> bytes:
    """One command as RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, int):
            data = str(arg).encode("ascii")
        else:
            data = bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parseReply(buffer: bytes, position: int = 0) -> tuple[Any, int]:
    """
    One reply from buffer at position: (value, position after it). Error replies come back as
    L{RedisError} values. L{_Incomplete} when more bytes are needed.
    """
    end = buffer.find(CRLF, position)
    if end < 0:
        raise _Incomplete()
    kind, line, after = buffer[position : position + 1], buffer[position + 1 : end], end + 2
    if kind == b"+":
        return line.decode("utf-8", "replace"), after
    if kind == b"-":
        return RedisError(line.decode("utf-8", "replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            raise _Incomplete()
        return buffer[after : after + length], after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parseReply(buffer, after)
            items.append(item)
        return items, after
    raise ValueError(f"not a RESP reply: {buffer[position : position + 20]!r}")


class RedisProtocol(Protocol):
    """One connection: commands go out in order, each Deferred fires with its reply in order."""

    def __init__(self, clock: Any, replyTimeout: float | None) -> None:
        self._clock = clock
        self._replyTimeout = replyTimeout
        self._buffer = b""
        self._waiting: deque[Deferred] = deque()
        self._timer: IDelayedCall | None = None
        self.connected = False
        self.lastUsed = 0.0
        self.lost: Deferred = Deferred()

    def connectionMade(self) -> None:
        """Ready for commands."""
        self.connected = True

    def execute(self, *args: bytes | str | int) -> Deferred:
        """Send one command. @return: Deferred firing with its reply; L{RedisError}."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Deferred]:
        """Send several commands at once. @return: one Deferred per command, in order."""
        if not self.connected:
            return [_failed(RedisConnectionError("not connected")) for _ in commands]
        waiting = [Deferred() for _ in commands]
        self._waiting.extend(waiting)
        self.transport.write(b"".join(encodeCommand(command) for command in commands))
        self._armTimer()
        return waiting

    def _armTimer(self) -> None:
        if self._replyTimeout and self._timer is None and self._waiting:
            self._timer = self._clock.callLater(self._replyTimeout, self._timedOut)

    def _timedOut(self) -> None:
        self._timer = None
        self._failAll(TimeoutError(f"no reply from redis within {self._replyTimeout:g}s"))
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        """Fire the Deferreds of every complete reply."""
        self._buffer += data
        position = 0
        while self._waiting:
            try:
                value, position = parseReply(self._buffer, position)
            except _Incomplete:
                break
            waiting = self._waiting.popleft()
            if isinstance(value, RedisError):
                waiting.errback(value)
            else:
                waiting.callback(value)
        self._buffer = self._buffer[position:]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armTimer()

    def _failAll(self, error: Exception) -> None:
        self.connected = False
        waiting, self._waiting = self._waiting, deque()
        for each in waiting:
            each.errback(Failure(error))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        """Fail whatever is still waiting for a reply."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._failAll(RedisConnectionError(f"connection to redis lost: {reason.getErrorMessage()}"))
        self.lost.callback(None)

    def close(self) -> None:
        """Close the connection."""
        self.connected = False
        self.transport.loseConnection()


def _failed(error: Exception) -> Deferred:
    waiting: Deferred = Deferred()
    waiting.errback(Failure(error))
    return waiting


@dataclass(frozen=True)
class PoolSettings:
    """How the pool connects and how many connections it keeps (0 maxActive: no limit)."""

    database: int = 0
    username: str | None = None
    password: str | None = None
    replyTimeout: float | None = None
    maxIdle: int = 16
    maxActive: int = 64
    idleTimeout: float = 300.0


class RedisPool:
    """
    Connections to one Redis server shared by the whole process. C{endpoints} are tried in
    order until one connects (distribution 3's C{addrs}); each new connection authenticates
    and selects the database before use.
    """

    log = Logger()

    def __init__(self, clock: Any, endpoints: Sequence[Any], settings: PoolSettings) -> None:
        self._clock = clock
        self._endpoints = list(endpoints)
        self._settings = settings
        self._idle: list[RedisProtocol] = []
        self._active = 0
        self._waiters: deque[Deferred] = deque()
        self._closed = False

    def pipeline(self, commands: Sequence[Sequence[bytes | str | int]]) -> Deferred:
        """Run commands back to back on one connection. @return: Deferred firing with their replies."""
        return Deferred.fromCoroutine(self._pipeline(commands))

    async def _pipeline(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Any]:
        connection = await self._acquire()
        try:
            results = await DeferredList(connection.pipeline(commands), consumeErrors=True)
        except BaseException:
            self._release(connection)
            raise
        self._release(connection)
        replies = []
        for ok, value in results:
            if not ok:
                value.raiseException()
            replies.append(value)
        return replies

    def execute(self, *args: bytes | str | int) -> Deferred:
        """Run one command. @return: Deferred firing with its reply."""
        return self.pipeline([args]).addCallback(lambda replies: replies[0])

    async def _acquire(self) -> RedisProtocol:
        if self._closed:
            raise RedisConnectionError("the redis pool is closed")
        now = self._clock.seconds()
        while self._idle:
            connection = self._idle.pop()
            if connection.connected and (
                not self._settings.idleTimeout or now - connection.lastUsed < self._settings.idleTimeout
            ):
                return connection
            self._active -= 1
            connection.close()
        if self._settings.maxActive and self._active >= self._settings.maxActive:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            return await waiter
        self._active += 1
        try:
            return await self._connect()
        except BaseException:
            self._active -= 1
            raise

    async def _connect(self) -> RedisProtocol:
        failures = []
        for endpoint in self._endpoints:
            factory = Factory.forProtocol(lambda: RedisProtocol(self._clock, self._settings.replyTimeout))
            try:
                connection = await endpoint.connect(factory)
            except Exception as error:  # try the next address
                failures.append(str(error))
                continue
            try:
                await self._prepare(connection)
            except BaseException:
                connection.close()
                raise
            return connection
        raise RedisConnectionError("cannot connect to redis: " + "; ".join(failures))

    async def _prepare(self, connection: RedisProtocol) -> None:
        settings = self._settings
        if settings.password is not None:
            if settings.username:
                await connection.execute("AUTH", settings.username, settings.password)
            else:
                await connection.execute("AUTH", settings.password)
        if settings.database:
            await connection.execute("SELECT", settings.database)

    def _release(self, connection: RedisProtocol) -> None:
        if not connection.connected or self._closed:
            self._active -= 1
            connection.close()
            if self._waiters and not self._closed:
                # A slot came free: the next waiter gets a new connection.
                self._active += 1
                waiter = self._waiters.popleft()
                Deferred.fromCoroutine(self._connect()).addCallbacks(
                    waiter.callback, lambda failure: self._gaveUp(waiter, failure)
                )
            return
        connection.lastUsed = self._clock.seconds()
        if self._waiters:
            self._waiters.popleft().callback(connection)
        elif len(self._idle) < self._settings.maxIdle:
            self._idle.append(connection)
        else:
            self._active -= 1
            connection.close()

    def _gaveUp(self, waiter: Deferred, failure: Failure) -> None:
        self._active -= 1
        waiter.errback(failure)

    def close(self) -> Deferred:
        """Close idle connections; those in use close when released. @return: Deferred firing when closed."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._active -= 1
            connection.close()
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.errback(Failure(RedisConnectionError("the redis pool is closed")))
        return DeferredList([connection.lost for connection in idle]).addCallback(lambda _: None)


__all__ = ["PoolSettings", "RedisConnectionError", "RedisError", "RedisPool", "encodeCommand", "parseReply"]

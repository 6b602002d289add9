"""
The blob descriptor cache (C{storage.cache.blobdescriptor}): what a blob stat learned from
storage, kept so the next stat needs no storage round trip.

As in distribution, two facts are kept apart: the global descriptor of a digest (its size,
media type), and per repository which digests are linked into it. A stat hits only when
both are known. Deleting a blob's data forgets the descriptor; unlinking from a repository
forgets that repository's link; a stat then goes back to storage.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from registryd.metrics import DESCRIPTOR_CACHE
from registryd.registry.cache import LRUCache
from registryd.registry.descriptors import Descriptor
from registryd.registry.interfaces import IBlobDescriptorCache
from registryd.registry.resp import RedisPool


@implementer(IBlobDescriptorCache)
class NoDescriptorCache:
    """No cache: every stat goes to storage (no C{storage.cache.blobdescriptor} configured)."""

    def stat(self, repository: str, digest: str) -> Deferred:
        """@return: Deferred firing None."""
        return succeed(None)

    def remember(self, repository: str, digest: str, descriptor: Descriptor) -> Deferred:
        """Forget it at once. @return: Deferred firing None."""
        return succeed(None)

    def forgetLink(self, repository: str, digest: str) -> Deferred:
        """@return: Deferred firing None."""
        return succeed(None)

    def forget(self, digest: str) -> Deferred:
        """@return: Deferred firing None."""
        return succeed(None)

    def close(self) -> Deferred:
        """@return: Deferred firing None."""
        return succeed(None)


@implementer(IBlobDescriptorCache)
class InMemoryDescriptorCache:
    """Bounded LRU maps in this process: C{size} descriptors and C{size} repository links."""

    def __init__(self, size: int) -> None:
        self._descriptors: LRUCache[str, Descriptor] = LRUCache(size)
        self._links: LRUCache[tuple[str, str], bool] = LRUCache(size)

    def stat(self, repository: str, digest: str) -> Deferred:
        """@return: Deferred firing with the cached Descriptor, or None."""
        found = self._descriptors.get(digest) if self._links.get((repository, digest)) else None
        DESCRIPTOR_CACHE.labels("inmemory", "miss" if found is None else "hit").inc()
        return succeed(found)

    def remember(self, repository: str, digest: str, descriptor: Descriptor) -> Deferred:
        """Remember that digest is linked into repository with that descriptor. @return: Deferred."""
        self._descriptors.put(digest, descriptor)
        self._links.put((repository, digest), True)
        return succeed(None)

    def forgetLink(self, repository: str, digest: str) -> Deferred:
        """Forget that digest is linked into repository. @return: Deferred firing None."""
        self._links.discard((repository, digest))
        return succeed(None)

    def forget(self, digest: str) -> Deferred:
        """Forget digest's descriptor (its data is gone). @return: Deferred firing None."""
        self._descriptors.discard(digest)
        return succeed(None)

    def close(self) -> Deferred:
        """@return: Deferred firing None."""
        return succeed(None)


def _cachedDescriptor(digest: str, member: object, fields: Any) -> Descriptor | None:
    """The Descriptor a Redis answer holds, or None when the link or a field is missing."""
    if member != 1 or not fields or _text(fields[0]) != digest or fields[1] is None:
        return None
    try:
        size = int(fields[1])
    except ValueError:
        return None
    return Descriptor(digest, size, _text(fields[2]) or None)


def descriptorKey(digest: str) -> str:
    """The Redis hash holding a digest's descriptor (distribution's key)."""
    return f"blobs::{digest}"


def repositoryKey(repository: str) -> str:
    """The Redis set of digests linked into a repository (distribution's key)."""
    return f"repository::{repository}::blobs"


def _text(value: object) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else None


@implementer(IBlobDescriptorCache)
class RedisDescriptorCache:
    """
    The cache in Redis, shared by every registryd using the same server and database.

    A Redis failure on stat or remember is logged and the stat goes to storage: the cache
    only ever spares work. A failure while forgetting is logged too; the entry may then
    outlive the blob, which distribution accepts as well.
    """

    log = Logger()

    def __init__(self, pool: RedisPool) -> None:
        self._pool = pool

    def stat(self, repository: str, digest: str) -> Deferred:
        """@return: Deferred firing with the cached Descriptor, or None (also when Redis fails)."""
        return Deferred.fromCoroutine(self._stat(repository, digest))

    async def _stat(self, repository: str, digest: str) -> Descriptor | None:
        try:
            member, fields = await self._pool.pipeline(
                [
                    ("SISMEMBER", repositoryKey(repository), digest),
                    ("HMGET", descriptorKey(digest), "digest", "size", "mediatype"),
                ]
            )
        except Exception:
            self.log.failure("blob descriptor cache: redis stat of {digest} failed", digest=digest)
            DESCRIPTOR_CACHE.labels("redis", "error").inc()
            return None
        descriptor = _cachedDescriptor(digest, member, fields)
        DESCRIPTOR_CACHE.labels("redis", "miss" if descriptor is None else "hit").inc()
        return descriptor

    def remember(self, repository: str, digest: str, descriptor: Descriptor) -> Deferred:
        """Store the descriptor and the link. @return: Deferred firing None (errors are logged)."""
        fields: list[Any] = ["digest", digest, "size", descriptor.size]
        if descriptor.mediaType:
            fields += ["mediatype", descriptor.mediaType]
        return self._quietly(
            "remember",
            digest,
            [("HSET", descriptorKey(digest), *fields), ("SADD", repositoryKey(repository), digest)],
        )

    def forgetLink(self, repository: str, digest: str) -> Deferred:
        """Forget that digest is linked into repository. @return: Deferred firing None."""
        return self._quietly("forget link to", digest, [("SREM", repositoryKey(repository), digest)])

    def forget(self, digest: str) -> Deferred:
        """Forget digest's descriptor. @return: Deferred firing None."""
        return self._quietly("forget", digest, [("DEL", descriptorKey(digest))])

    def _quietly(self, what: str, digest: str, commands: list[tuple[Any, ...]]) -> Deferred:
        def failed(failure: Any) -> None:
            self.log.failure(
                "blob descriptor cache: redis {what} {digest} failed", failure, what=what, digest=digest
            )

        return self._pool.pipeline(commands).addCallbacks(lambda _: None, failed)

    def close(self) -> Deferred:
        """Close the pool's connections. @return: Deferred firing when closed."""
        return self._pool.close()


def redisPoolFor(reactor: Any, config: Any) -> RedisPool:
    """A pool for a L{registryd.config.redis.RedisConfig}: TCP or TLS endpoints, one per address."""
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
    from twisted.internet.ssl import optionsForClientTLS

    from registryd.registry.resp import PoolSettings

    endpoints = []
    for host, port in config.addresses:
        endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=config.dialTimeout or 30)
        if config.tls:
            endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
        endpoints.append(endpoint)
    replyTimeout = (config.readTimeout or 0.0) + (config.writeTimeout or 0.0) or None
    settings = PoolSettings(
        database=config.db,
        username=config.username,
        password=config.password,
        replyTimeout=replyTimeout,
        maxIdle=config.maxIdle,
        maxActive=config.maxActive,
        idleTimeout=config.idleTimeout,
    )
    return RedisPool(reactor, endpoints, settings)


def descriptorCacheFor(reactor: Any, storage: Any, redis: Any) -> Any:
    """The cache C{storage.cache.blobdescriptor} asks for (a L{StorageConfig}, a L{RedisConfig} or None)."""
    if storage.blobDescriptorCache == "inmemory":
        return InMemoryDescriptorCache(storage.blobDescriptorCacheSize)
    if storage.blobDescriptorCache == "redis":
        return RedisDescriptorCache(redisPoolFor(reactor, redis))
    return NoDescriptorCache()

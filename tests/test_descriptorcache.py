"""The blob descriptor cache through the core: hits spare storage, deletes invalidate (memory, Redis)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from registryd.config.errors import ConfigError
from registryd.config.loader import parseDocument
from registryd.config.redis import parseRedis
from registryd.gc import GarbageCollector
from registryd.registry import layout, uploads
from registryd.registry.core import Registry
from registryd.registry.descriptorcache import (
    InMemoryDescriptorCache,
    NoDescriptorCache,
    RedisDescriptorCache,
    descriptorCacheFor,
    redisPoolFor,
)
from registryd.registry.descriptors import Descriptor
from registryd.registry.errors import BlobUnknown
from registryd.registry.interfaces import IBlobDescriptorCache
from registryd.registry.resp import RedisError, encodeCommand, parseReply
from registryd.storage.inmemory import InMemoryDriver
from tests.support.redis import RedisServer
from tests.test_gc import laterClock, pushImage
from tests.test_registry_helpers import pushBlob

LAYER = b"a layer worth caching"


class CountingDriver:
    """A storage driver that counts the calls made to it."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self.calls: Counter[str] = Counter()
        self._before: dict[tuple[str, Any], Callable[[], Any]] = {}
        self._after: dict[tuple[str, Any], Callable[[], Any]] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._driver, name)
        if not callable(method):
            return method

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            key = (name, args[0] if args else None)
            hook = self._before.pop(key, None)
            if hook is not None:
                await hook()
            result = await method(*args, **kwargs)
            hook = self._after.pop(key, None)
            if hook is not None:
                await hook()
            return result

        return lambda *args, **kwargs: Deferred.fromCoroutine(counted(*args, **kwargs))

    def before(self, name: str, path: str, hook: Callable[[], Any]) -> None:
        """Run C{hook} once, just before the next C{name} call on C{path} (a racing request)."""
        self._before[(name, path)] = hook

    def after(self, name: str, path: str, hook: Callable[[], Any]) -> None:
        """Run C{hook} once, just after the next C{name} call on C{path} answered."""
        self._after[(name, path)] = hook


def config(**redis: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": "0.1",
        "storage": {"inmemory": {}, "cache": {"blobdescriptor": "redis"}},
    }
    if redis:
        document["redis"] = redis
    return document


class ConfigTests(TestCase):
    """storage.cache.blobdescriptor and the redis section."""

    def test_redis_section_read_with_distribution_keys(self) -> None:
        parsed = parseDocument(
            config(
                addr="cache.example:6380",
                addrs=["[::1]:6381"],
                username="registry",
                password="secret",
                db=2,
                dialtimeout="10ms",
                readtimeout="10ms",
                writetimeout="10ms",
                tls={"enabled": True},
                pool={"maxidle": 4, "maxactive": 8, "idletimeout": "60s"},
            )
        )
        redis = parsed.redis
        assert redis is not None
        self.assertEqual(redis.addresses, (("cache.example", 6380), ("::1", 6381)))
        self.assertEqual((redis.username, redis.password, redis.db), ("registry", "secret", 2))
        self.assertEqual((redis.dialTimeout, redis.readTimeout, redis.writeTimeout), (0.01, 0.01, 0.01))
        self.assertTrue(redis.tls)
        self.assertEqual((redis.maxIdle, redis.maxActive, redis.idleTimeout), (4, 8, 60.0))
        self.assertEqual(parsed.storage.blobDescriptorCache, "redis")

    def test_bare_host_gets_the_default_port(self) -> None:
        self.assertEqual(parseRedis({"addr": "localhost"}).addresses, (("localhost", 6379),))

    def test_redis_cache_without_redis_section_names_the_key(self) -> None:
        error = self.assertRaises(ConfigError, parseDocument, config())
        self.assertIn("storage.cache.blobdescriptor", str(error))

    def test_bad_parameters_name_their_key(self) -> None:
        for redis, key in [
            ({"addr": "host:notaport"}, "redis.addr"),
            ({"addr": "h:1", "db": -1}, "redis.db"),
            ({"addr": "h:1", "readtimeout": "soon"}, "redis.readtimeout"),
            ({"addr": "h:1", "pool": {"maxidle": "many"}}, "redis.pool.maxidle"),
            ({"addr": "h:1", "tls": {"certificate": "/c.pem"}}, "redis.tls.certificate"),
            ({"addr": "h:1", "sentinel": "x"}, "redis"),
            ({"password": "p"}, "redis.addr"),
        ]:
            error = self.assertRaises(ConfigError, parseDocument, config(**redis))
            self.assertIn(key, str(error))

    def test_unknown_cache_refused(self) -> None:
        document = config(addr="h:1")
        document["storage"]["cache"]["blobdescriptor"] = "memcached"
        error = self.assertRaises(ConfigError, parseDocument, document)
        self.assertIn("storage.cache.blobdescriptor", str(error))

    def test_no_cache_configured_means_none(self) -> None:
        document = {"version": "0.1", "storage": {"inmemory": {}}}
        storage = parseDocument(document).storage
        self.assertIsInstance(descriptorCacheFor(reactor, storage, None), NoDescriptorCache)


class ServiceTests(TestCase):
    """makeService wires the configured cache into the registry and closes it on stop."""

    async def test_redis_cache_wired_and_closed(self) -> None:
        from registryd.service import makeService

        server = RedisServer()
        self.addCleanup(server.stop)
        document = config(addr=server.addr)
        document["http"] = {"addr": "127.0.0.1:0"}
        service = makeService(parseDocument(document), reactor)
        caches = [child._cache for child in service if type(child).__name__ == "_CacheCloser"]
        self.assertEqual([type(cache) for cache in caches], [RedisDescriptorCache])
        await caches[0].remember("r", "sha256:00", Descriptor("sha256:00", 1))
        await caches[0].close()
        self.assertEqual(caches[0]._pool._idle, [])


class RESPTests(TestCase):
    """The wire format."""

    def test_encode_command(self) -> None:
        self.assertEqual(encodeCommand(["SET", b"k", 12]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n")

    def test_parse_replies(self) -> None:
        data = b"+OK\r\n:3\r\n$-1\r\n*2\r\n$2\r\nab\r\n$-1\r\n-ERR no\r\n"
        values, position = [], 0
        while position < len(data):
            value, position = parseReply(data, position)
            values.append(value)
        self.assertEqual(values[:4], ["OK", 3, None, [b"ab", None]])
        self.assertIsInstance(values[4], RedisError)


class DescriptorCacheTestsMixin:
    """Through the core: hits avoid storage stats; unlinks, manifest-less deletes and GC invalidate."""

    def makeCache(self) -> Any:
        raise NotImplementedError

    async def registry(self, driver: Any = None, cache: Any = None) -> Registry:
        self.addCleanup(uploads._states.clear)
        cache = cache if cache is not None else self.makeCache()
        return Registry(driver or CountingDriver(InMemoryDriver()), deleteEnabled=True, descriptorCache=cache)

    def test_provides_interface(self) -> None:
        verifyObject(IBlobDescriptorCache, self.makeCache())

    async def test_hit_avoids_storage(self) -> None:
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        first = await repository.blobs.stat(digest)
        self.assertEqual(first, Descriptor(digest, len(LAYER), None))
        registry.driver.calls.clear()
        again = await repository.blobs.stat(digest)
        self.assertEqual(again, first)
        self.assertEqual(sum(registry.driver.calls.values()), 0, registry.driver.calls)

    cacheLabel = ""

    async def test_hits_and_misses_are_counted(self) -> None:
        """registryd_blob_descriptor_cache_lookups counts each lookup by cache and result."""
        from registryd.metrics import DESCRIPTOR_CACHE

        def count(result: str) -> float:
            return DESCRIPTOR_CACHE.labels(self.cacheLabel, result)._value.get()

        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        hits, misses = count("hit"), count("miss")
        await repository.blobs.stat(digest)
        await repository.blobs.stat(digest)
        self.assertEqual((count("hit") - hits, count("miss") - misses), (1, 1))

    async def test_other_repository_is_not_a_hit(self) -> None:
        registry = await self.registry()
        digest = await pushBlob(registry.repository("library/app"), LAYER)
        await registry.repository("library/app").blobs.stat(digest)
        with self.assertRaises(BlobUnknown):
            await registry.repository("library/other").blobs.stat(digest)

    async def test_unlink_invalidates(self) -> None:
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        await repository.blobs.stat(digest)
        await repository.blobs.delete(digest)
        with self.assertRaises(BlobUnknown):
            await repository.blobs.stat(digest)

    async def test_garbage_collection_invalidates(self) -> None:
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        self.assertEqual((await repository.blobs.stat(digest)).size, len(LAYER))
        collected = await GarbageCollector(registry, clock=laterClock()).run()
        self.assertEqual([blob.digest for blob in collected.deletedBlobs], [digest])
        with self.assertRaises(BlobUnknown):
            await repository.blobs.stat(digest)

    async def test_manifest_delete_invalidates_its_revision_as_a_blob(self) -> None:
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushImage(repository, "v1", b"{}", [LAYER])
        self.assertEqual((await repository.blobs.stat(digest)).digest, digest)
        await repository.manifests.delete(digest)
        with self.assertRaises(BlobUnknown):
            await repository.blobs.stat(digest)

    async def test_deleted_data_is_not_served_from_cache(self) -> None:
        # The blob store loses the data (another registry's GC): the global descriptor is forgotten.
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        await repository.blobs.stat(digest)
        await registry.descriptorCache.forget(digest)
        registry.driver.calls.clear()
        await repository.blobs.stat(digest)
        self.assertGreater(registry.driver.calls["stat"], 0)


    async def test_stat_racing_an_unlink_leaves_no_entry(self) -> None:
        # The unlink (and its forgetLink) lands between the stat's look at storage and its
        # remember: the stat must not leave an entry behind that outlives the link.
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        registry.driver.before("stat", layout.blobDataPath(digest), lambda: repository.blobs.delete(digest))
        try:
            await repository.blobs.stat(digest)
        except BlobUnknown:
            pass
        with self.assertRaises(BlobUnknown):
            await repository.blobs.stat(digest)

    async def test_stat_racing_a_collection_leaves_no_descriptor(self) -> None:
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        dataPath = layout.blobDataPath(digest)

        async def collect() -> None:
            # After the stat's own look at the data: the data goes, its descriptor is forgotten.
            await registry.driver.delete(dataPath)
            await registry.descriptorCache.forget(digest)

        registry.driver.after("stat", dataPath, collect)
        with self.assertRaises(BlobUnknown):
            await repository.blobs.stat(digest)
        self.assertIsNone(await registry.descriptorCache.stat("library/app", digest))


class InMemoryDescriptorCacheTests(DescriptorCacheTestsMixin, TestCase):
    """The bounded LRU in this process."""

    cacheLabel = "inmemory"

    def makeCache(self) -> Any:
        return InMemoryDescriptorCache(100)

    async def test_bounded(self) -> None:
        cache = InMemoryDescriptorCache(2)
        for n in range(3):
            await cache.remember("r", f"sha256:{n}", Descriptor(f"sha256:{n}", n))
        self.assertIsNone(await cache.stat("r", "sha256:0"))
        self.assertEqual(await cache.stat("r", "sha256:2"), Descriptor("sha256:2", 2))


class RedisDescriptorCacheTests(DescriptorCacheTestsMixin, TestCase):
    """In a real redis-server, started by the test."""

    cacheLabel = "redis"

    password = "registryd-test"

    def setUp(self) -> None:
        self.server = RedisServer(password=self.password)
        self.addCleanup(self.server.stop)

    def makeCache(self, **overrides: Any) -> Any:
        settings = {"addr": self.server.addr, "password": self.password, "db": 3, "readtimeout": "5s"}
        settings.update(overrides)
        cache = RedisDescriptorCache(redisPoolFor(reactor, parseRedis(settings)))
        self.addCleanup(cache.close)
        return cache

    async def test_entries_use_distributions_keys_in_the_configured_db(self) -> None:
        cache = self.makeCache()
        await cache.remember("library/app", "sha256:ab", Descriptor("sha256:ab", 7, "application/x"))
        pool = redisPoolFor(
            reactor, parseRedis({"addr": self.server.addr, "password": self.password, "db": 3})
        )
        self.addCleanup(pool.close)
        fields = await pool.execute("HGETALL", "blobs::sha256:ab")
        self.assertEqual(
            dict(zip(fields[::2], fields[1::2], strict=True)),
            {b"digest": b"sha256:ab", b"size": b"7", b"mediatype": b"application/x"},
        )
        self.assertEqual(await pool.execute("SMEMBERS", "repository::library/app::blobs"), [b"sha256:ab"])
        self.assertEqual(
            await cache.stat("library/app", "sha256:ab"), Descriptor("sha256:ab", 7, "application/x")
        )

    async def test_two_registries_sharing_the_cache_see_each_others_deletes(self) -> None:
        driver = CountingDriver(InMemoryDriver())
        first = await self.registry(driver)
        second = await self.registry(driver)
        digest = await pushBlob(first.repository("library/app"), LAYER)
        await first.repository("library/app").blobs.stat(digest)
        driver.calls.clear()
        # The second registry's first stat is a hit on what the first one learned...
        await second.repository("library/app").blobs.stat(digest)
        self.assertEqual(driver.calls["stat"], 0)
        # ...and its delete is seen by the first.
        await second.repository("library/app").blobs.delete(digest)
        with self.assertRaises(BlobUnknown):
            await first.repository("library/app").blobs.stat(digest)

    async def test_wrong_password_falls_back_to_storage(self) -> None:
        registry = await self.registry(cache=self.makeCache(password="wrong"))
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        self.assertEqual((await repository.blobs.stat(digest)).size, len(LAYER))
        self.flushLoggedErrors(RedisError)

    async def test_server_gone_falls_back_to_storage(self) -> None:
        registry = await self.registry()
        repository = registry.repository("library/app")
        digest = await pushBlob(repository, LAYER)
        await repository.blobs.stat(digest)
        self.server.stop()
        registry.driver.calls.clear()
        self.assertEqual((await repository.blobs.stat(digest)).size, len(LAYER))
        self.assertGreater(registry.driver.calls["stat"], 0)
        self.flushLoggedErrors()

    async def test_pool_limits_active_connections(self) -> None:
        from twisted.internet.defer import gatherResults

        cache = self.makeCache(pool={"maxactive": 2, "maxidle": 1})
        await gatherResults(
            [cache.remember("r", f"sha256:{n}", Descriptor(f"sha256:{n}", n)) for n in range(20)]
        )
        results = await gatherResults([cache.stat("r", f"sha256:{n}") for n in range(20)])
        self.assertEqual([d.size for d in results], list(range(20)))
        self.assertLessEqual(cache._pool._active, 2)

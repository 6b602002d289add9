"""
The pull-through cache as an L{IRegistry}: the registry core in front, upstream registries
behind (C{proxy.remoteurl} or C{proxy.upstreams}, chosen by repository-name prefix).

What storage holds is served from it. A blob it lacks is fetched once and streamed to its
readers while an upload of the core stores it (L{registryd.proxy.fetches}). A manifest it
lacks is fetched, stored and tagged; a cached tag older than the upstream's C{ttl} is
re-validated with a HEAD, and served as cached when the upstream cannot answer. When a
tag was last validated is kept in storage under C{_proxy/}, beside distribution's layout
(which neither distribution's nor our garbage collection reads), so restarts and replicas
share it. Blobs are never expired by the cache: what no manifest references any more is
left to garbage collection, which keeps whatever a cached manifest still references.

Pushes and deletes are refused (C{UNSUPPORTED}, as distribution's proxy) except in the
repositories C{proxy.localrepositories} names, which are plain local repositories.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from registryd import metrics
from registryd.config.proxy import longestPrefix, matchesAny
from registryd.proxy.fetches import BlobFetches, SharedCalls, unavailable
from registryd.proxy.interfaces import IUpstream, UpstreamUnavailable
from registryd.registry import layout
from registryd.registry.blobs import storedSize
from registryd.registry.core import Registry
from registryd.registry.descriptors import Descriptor, Manifest
from registryd.registry.errors import BlobUnknown, ManifestInvalid, ManifestUnknown, Unsupported
from registryd.registry.interfaces import IBlobs, IDescriptor, IManifests, IRegistry, IRepository
from registryd.registry.names import checkName, checkTag, digestOf, isDigest, parseDigest
from registryd.registry.schema import MAX_MANIFEST_SIZE, parseManifest
from registryd.storage.interfaces import PathNotFound

PROXY_STATE = f"{layout.ROOT}/_proxy"
"""The cache's own records, beside distribution's layout: no repository or blob path starts here."""


def validationPath(name: str, tag: str) -> str:
    """Where the last validation of a cached tag is recorded (C{_tags} cannot be part of a name)."""
    return f"{PROXY_STATE}/{name}/_tags/{tag}"


def _refused(name: str) -> Unsupported:
    return Unsupported(
        detail={"repository": name, "reason": "pull-through cache: not in proxy.localrepositories"},
        message="The operation is unsupported.",
    )


@dataclass(frozen=True)
class Route:
    """An upstream registry serving the repository names under C{prefix} (C{""}: every name)."""

    upstream: IUpstream
    prefix: str = ""
    ttl: float = 168 * 3600.0

    def upstreamName(self, name: str) -> str:
        """The name to ask upstream: name without the prefix."""
        return name[len(self.prefix) :]

    @property
    def label(self) -> str:
        """How metrics and logs name the upstream."""
        return str(self.upstream.url)


@implementer(IRegistry)
class ProxyRegistry:
    """The core registry with its repositories falling back to upstream registries."""

    log = Logger()

    def __init__(
        self,
        core: Registry,
        routes: Sequence[Route],
        clock: IReactorTime,
        localRepositories: Sequence[str] = (),
        fetches: BlobFetches | None = None,
    ) -> None:
        self.core = core
        self.clock = clock
        self.routes = tuple(routes)
        self.localRepositories = tuple(localRepositories)
        self.fetches = fetches if fetches is not None else BlobFetches(core, clock)
        self.manifestFetches = SharedCalls()

    @property
    def driver(self) -> Any:
        return self.core.driver

    @property
    def descriptorCache(self) -> Any:
        return self.core.descriptorCache

    @property
    def readOnly(self) -> bool:
        return self.core.readOnly

    @property
    def deleteEnabled(self) -> bool:
        return self.core.deleteEnabled

    def isLocal(self, name: str) -> bool:
        """True when name is pushed to here, never proxied."""
        return matchesAny(self.localRepositories, name)

    def routeFor(self, name: str) -> Route | None:
        """The upstream serving name (the longest prefix leaving a name), or None."""
        return longestPrefix(self.routes, name)

    def namespaced(self, name: str, namespace: str) -> str:
        """
        C{<namespace>/<name>} when an upstream serves the prefix C{<namespace>/} and name is not
        under it already: containerd, mirroring C{docker.io} here, asks for C{library/alpine}
        with C{?ns=docker.io}, which the upstream for C{docker.io/} serves.
        """
        prefix = namespace.strip().strip("/") + "/"
        if name.startswith(prefix) or not any(route.prefix == prefix for route in self.routes):
            return name
        return prefix + name

    def repository(self, name: str) -> IRepository:
        """A local repository, or a cached one (reads only, falling back upstream when it has a route)."""
        checkName(name)
        if self.isLocal(name):
            return self.core.repository(name)
        return ProxyRepository(self, name, self.routeFor(name))

    def catalog(self, n: int | None = None, last: str | None = None) -> Deferred:
        """What is cached (and local), as distribution's proxy lists it."""
        return self.core.catalog(n, last)

    def close(self) -> Deferred:
        """Close every upstream's connections. @return: Deferred firing None."""
        closing = DeferredList([route.upstream.close() for route in self.routes], consumeErrors=True)
        return closing.addCallback(lambda _: None)


@implementer(IRepository)
class ProxyRepository:
    """A repository of the cache."""

    def __init__(self, proxy: ProxyRegistry, name: str, route: Route | None) -> None:
        self.name = name
        self._local = proxy.core.repository(name)
        self.blobs = ProxyBlobs(proxy, name, route, self._local.blobs)
        self.manifests = ProxyManifests(proxy, name, route, self._local.manifests)

    def tags(self, n: int | None = None, last: str | None = None) -> Deferred:
        """The cached tags (distribution's proxy lists those too)."""
        return self._local.tags(n, last)


@implementer(IBlobs)
class ProxyBlobs:
    """Cached blobs from storage; the others fetched upstream while clients read them."""

    def __init__(self, proxy: ProxyRegistry, name: str, route: Route | None, local: IBlobs) -> None:
        self._proxy = proxy
        self._name = name
        self._route = route
        self._local = local

    def _fetch(self, digest: str) -> Deferred:
        route = self._route
        if route is None:
            raise BlobUnknown(detail={"digest": digest})
        metrics.PROXY_REQUESTS.labels("blob", "miss").inc()
        return Deferred.fromCoroutine(
            self._proxy.fetches.fetch(
                self._name,
                digest,
                lambda: route.upstream.blob(route.upstreamName(self._name), digest),
                route.label,
            )
        )

    def stat(self, digest: str) -> Deferred:
        """@return: Deferred firing with the blob's descriptor, from storage or the upstream's headers."""
        return Deferred.fromCoroutine(self._stat(digest))

    async def _stat(self, digest: str) -> IDescriptor:
        parseDigest(digest)
        fetch = self._proxy.fetches.current(self._name, digest)
        if fetch is None:
            try:
                descriptor = await self._local.stat(digest)
            except BlobUnknown:
                pass
            else:
                metrics.PROXY_REQUESTS.labels("blob", "hit").inc()
                return descriptor
            fetch = await self._fetch(digest)
        else:
            await fetch.whenReady()
        return Descriptor(digest, fetch.size, None)

    def open(self, digest: str, offset: int = 0, descriptor: IDescriptor | None = None) -> Deferred:
        """@return: Deferred firing with (descriptor, reader from offset): storage, or following a fetch."""
        return Deferred.fromCoroutine(self._open(digest, offset, descriptor))

    async def _open(self, digest: str, offset: int, descriptor: IDescriptor | None) -> tuple:
        parseDigest(digest)
        fetch = self._proxy.fetches.current(self._name, digest)
        if fetch is None:
            try:
                return await self._local.open(digest, offset, descriptor)
            except BlobUnknown:
                if self._route is None:
                    raise
            fetch = await self._fetch(digest)
        else:
            await fetch.whenReady()
        return Descriptor(digest, fetch.size, None), fetch.reader(offset)

    def redirectURL(self, method: str, digest: str) -> Deferred:
        """Storage's URL for a cached blob; None while it is only upstream (it is streamed)."""
        return Deferred.fromCoroutine(self._redirectURL(method, digest))

    async def _redirectURL(self, method: str, digest: str) -> str | None:
        if self._proxy.fetches.current(self._name, digest) is not None:
            return None
        if await storedSize(self._proxy.core, digest) is None:
            return None
        return await self._local.redirectURL(method, digest)

    def delete(self, digest: str) -> Deferred:
        raise _refused(self._name)

    def mount(self, digest: str, fromRepository: str | None) -> Deferred:
        raise _refused(self._name)

    def createUpload(self) -> Deferred:
        raise _refused(self._name)

    def resumeUpload(self, uuid: str, keepWriter: bool = False) -> Deferred:
        raise _refused(self._name)


@implementer(IManifests)
class ProxyManifests:
    """Cached manifests: by digest for good, by tag while fresh (then re-validated upstream)."""

    log = Logger()

    def __init__(self, proxy: ProxyRegistry, name: str, route: Route | None, local: IManifests) -> None:
        self._proxy = proxy
        self._name = name
        self._route = route
        self._local = local

    def get(self, reference: str) -> Deferred:
        """@return: Deferred firing with the L{Manifest} a tag or digest names. L{ManifestUnknown}."""
        return Deferred.fromCoroutine(self._get(reference))

    def stat(self, reference: str) -> Deferred:
        """As L{get}: a HEAD through the cache caches the manifest too (manifests are small)."""
        return Deferred.fromCoroutine(self._get(reference))

    async def _get(self, reference: str) -> Manifest:
        if self._route is None:
            return await self._local.get(reference)
        if isDigest(reference):
            parseDigest(reference)
            try:
                manifest = await self._local.get(reference)
            except ManifestUnknown:
                return await self._fetchShared(reference, None)
            metrics.PROXY_REQUESTS.labels("manifest", "hit").inc()
            return manifest
        checkTag(reference)
        cached = await layout.readLink(self._proxy.driver, layout.tagCurrentLinkPath(self._name, reference))
        if cached is None:
            return await self._fetchShared(reference, reference)
        if await self._fresh(reference, cached):
            metrics.PROXY_REQUESTS.labels("manifest", "hit").inc()
            return await self._local.get(reference)
        return await self._revalidate(reference, cached)

    async def _fresh(self, tag: str, digest: str) -> bool:
        """True while the tag's last validation (of this digest) is younger than the ttl."""
        if self._route.ttl == 0:
            return True
        try:
            record = json.loads(bytes(await self._proxy.driver.getContent(validationPath(self._name, tag))))
            validated = float(record["validated"])
            recorded = record["digest"]
        except (PathNotFound, ValueError, KeyError, TypeError):
            return False
        return recorded == digest and self._proxy.clock.seconds() - validated < self._route.ttl

    async def _validated(self, tag: str, digest: str) -> None:
        record = json.dumps({"digest": digest, "validated": self._proxy.clock.seconds()})
        await self._proxy.driver.putContent(validationPath(self._name, tag), record.encode("ascii"))

    async def _revalidate(self, tag: str, cached: str) -> Manifest:
        """An expired tag: HEAD upstream; unchanged → keep, changed → fetch, failing → serve cached."""
        route = self._route
        try:
            head = await route.upstream.manifest(route.upstreamName(self._name), tag, "HEAD")
        except (UpstreamUnavailable, ManifestUnknown) as e:
            if isinstance(e, UpstreamUnavailable):
                metrics.PROXY_UPSTREAM_ERRORS.labels(route.label).inc()
            metrics.PROXY_REQUESTS.labels("manifest", "stale").inc()
            self.log.warn(
                "upstream {upstream} cannot re-validate {name}:{tag}, serving the cached {digest}: {error}",
                upstream=route.label,
                name=self._name,
                tag=tag,
                digest=cached,
                error=e,
            )
            return await self._local.get(tag)
        if head.digest == cached:
            await self._validated(tag, cached)
            metrics.PROXY_REQUESTS.labels("manifest", "revalidated").inc()
            return await self._local.get(tag)
        self.log.info(
            "{name}:{tag} moved upstream from {old} to {new}",
            name=self._name,
            tag=tag,
            old=cached,
            new=head.digest,
        )
        return await self._fetchShared(tag, tag)

    def _fetchShared(self, reference: str, tag: str | None) -> Deferred:
        """One upstream GET per repository and reference at a time, however many ask."""
        metrics.PROXY_REQUESTS.labels("manifest", "miss").inc()
        return self._proxy.manifestFetches.call(
            (self._name, reference), lambda: Deferred.fromCoroutine(self._fetch(reference, tag))
        )

    async def _fetch(self, reference: str, tag: str | None) -> Manifest:
        route = self._route
        try:
            fetched = await route.upstream.manifest(route.upstreamName(self._name), reference, "GET")
        except UpstreamUnavailable as e:
            metrics.PROXY_UPSTREAM_ERRORS.labels(route.label).inc()
            self.log.warn(
                "upstream {upstream}: cannot fetch {name}:{reference}: {error}",
                upstream=route.label,
                name=self._name,
                reference=reference,
                error=e,
            )
            raise unavailable(f"upstream {route.label}: {e}") from None
        return await self._store(reference, tag, bytes(fetched.content), fetched.mediaType)

    async def _store(
        self, reference: str, tag: str | None, content: bytes, mediaType: str | None
    ) -> Manifest:
        """
        Store a manifest from upstream as a push would (blob, revision link, tag links), but
        without requiring its blobs: they are fetched when asked for.
        """
        algorithm = parseDigest(reference)[0] if isDigest(reference) else "sha256"
        digest = digestOf(content, algorithm)
        if isDigest(reference) and digest != reference:
            raise unavailable(f"the upstream's manifest for {reference} has digest {digest}")
        if len(content) > MAX_MANIFEST_SIZE:
            raise unavailable(f"the upstream's manifest is {len(content)} bytes, over {MAX_MANIFEST_SIZE}")
        try:
            parsed = parseManifest(content, mediaType)
        except ManifestInvalid as e:
            raise unavailable(f"the upstream's manifest is not one registryd stores: {e}") from None
        driver = self._proxy.driver
        if await storedSize(self._proxy.core, digest) != len(content):
            await driver.putContent(layout.blobDataPath(digest), content)
        await layout.writeLink(driver, layout.revisionLinkPath(self._name, digest), digest)
        if tag is not None:
            await layout.writeLink(driver, layout.tagIndexLinkPath(self._name, tag, digest), digest)
            await layout.writeLink(driver, layout.tagCurrentLinkPath(self._name, tag), digest)
            await self._validated(tag, digest)
        self._proxy.core.rememberManifest(digest, content, parsed.info)
        self.log.info(
            "cached manifest {name}@{digest}{tag} from {upstream}",
            name=self._name,
            digest=digest,
            tag=f" (tag {tag})" if tag else "",
            upstream=self._route.label,
        )
        return Manifest(digest, len(content), parsed.info.mediaType, content)

    def put(self, reference: str, mediaType: str | None, content: bytes) -> Deferred:
        raise _refused(self._name)

    def delete(self, reference: str) -> Deferred:
        raise _refused(self._name)

    def referrers(self, digest: str, artifactType: str | None = None) -> Deferred:
        """The referrers among cached manifests."""
        return self._local.referrers(digest, artifactType)

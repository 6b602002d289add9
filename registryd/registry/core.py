"""The registry over one storage driver, and its repositories."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import implementer

from registryd.registry import catalog, layout
from registryd.registry.blobs import Blobs
from registryd.registry.cache import LRUCache
from registryd.registry.descriptorcache import NoDescriptorCache
from registryd.registry.errors import Unsupported
from registryd.registry.interfaces import IBlobDescriptorCache, IRegistry, IRepository
from registryd.registry.manifests import Manifests
from registryd.registry.names import checkName
from registryd.registry.schema import ManifestInfo, describeStored
from registryd.registry.tags import listTags
from registryd.storage.interfaces import IStorageDriver, PathNotFound

MANIFEST_INFO_ENTRIES = 100_000
MANIFEST_CONTENT_BYTES = 32 * 1024 * 1024


@implementer(IRepository)
class Repository:
    """One repository (it need not exist in storage yet)."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.name = name
        self.blobs = Blobs(registry, name)
        self.manifests = Manifests(registry, name)
        self._registry = registry

    def tags(self, n: int | None = None, last: str | None = None) -> Deferred:
        """@return: Deferred firing with (a page of tag names, more). L{NameUnknown}."""
        return Deferred.fromCoroutine(listTags(self._registry, self.name, n, last))


@implementer(IRegistry)
class Registry:
    """The whole registry in distribution's layout over one storage driver."""

    def __init__(
        self,
        driver: IStorageDriver,
        *,
        deleteEnabled: bool = False,
        readOnly: bool = False,
        descriptorCache: IBlobDescriptorCache | None = None,
    ) -> None:
        self.driver = driver
        self.descriptorCache = descriptorCache if descriptorCache is not None else NoDescriptorCache()
        self.deleteEnabled = deleteEnabled
        self.readOnly = readOnly
        self._manifestInfo: LRUCache[str, ManifestInfo] = LRUCache(MANIFEST_INFO_ENTRIES)
        self._manifestContent: LRUCache[str, bytes] = LRUCache(
            MANIFEST_INFO_ENTRIES, MANIFEST_CONTENT_BYTES, weigh=len
        )

    def repository(self, name: str) -> Repository:
        """The repository of that name. L{NameInvalid} at once for a bad name."""
        return Repository(self, checkName(name))

    def namespaced(self, name: str, namespace: str) -> str:
        """name: C{?ns=} means nothing to a registry that mirrors nothing (distribution ignores it too)."""
        return name

    def catalog(self, n: int | None = None, last: str | None = None) -> Deferred:
        """@return: Deferred firing with (a page of repository names, more)."""
        return Deferred.fromCoroutine(catalog.catalog(self, n, last))

    def checkWritable(self) -> None:
        """Raise L{Unsupported} when the registry is in read-only mode (storage.maintenance.readonly)."""
        if self.readOnly:
            raise Unsupported(
                detail={"reason": "registry is in read-only mode"}, message="registry is read-only"
            )

    def checkDeletable(self) -> None:
        """Raise L{Unsupported} unless deletes are enabled (storage.delete.enabled) and writes allowed."""
        if not self.deleteEnabled:
            raise Unsupported(detail={"reason": "deletes are disabled (storage.delete.enabled)"})
        self.checkWritable()

    async def manifestContent(self, digest: str) -> bytes | None:
        """A stored manifest's bytes by digest (cached: content never changes), or None when absent."""
        content = self._manifestContent.get(digest)
        if content is None:
            try:
                content = bytes(await self.driver.getContent(layout.blobDataPath(digest)))
            except PathNotFound:
                return None
            self._manifestContent.put(digest, content)
        return content

    def manifestInfo(self, digest: str, content: bytes) -> ManifestInfo:
        """What a manifest says of itself (media type, subject...), parsed once per digest."""
        info = self._manifestInfo.get(digest)
        if info is None:
            info = describeStored(content)
            self._manifestInfo.put(digest, info)
        return info

    async def storedManifestInfo(self, digest: str) -> ManifestInfo | None:
        """As L{manifestInfo}, reading the content only when not cached; None when it is not stored."""
        info = self._manifestInfo.get(digest)
        if info is not None:
            return info
        content = await self.manifestContent(digest)
        return None if content is None else self.manifestInfo(digest, content)

    def rememberManifest(self, digest: str, content: bytes, info: ManifestInfo) -> None:
        """Cache what a push just stored and parsed."""
        self._manifestContent.put(digest, content)
        self._manifestInfo.put(digest, info)

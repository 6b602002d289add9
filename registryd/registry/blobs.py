"""The blobs of one repository: what is linked into it, reading, unlinking, mounting, uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import implementer

from registryd.registry import layout, uploads
from registryd.registry.descriptorcache import NoDescriptorCache
from registryd.registry.descriptors import Descriptor
from registryd.registry.errors import BlobUnknown, NameInvalid, RangeInvalid
from registryd.registry.interfaces import IBlobs, IDescriptor
from registryd.registry.names import checkName, parseDigest
from registryd.storage.interfaces import InvalidOffset, PathNotFound, UnsupportedMethod

if TYPE_CHECKING:
    from registryd.registry.core import Registry


async def isLinked(registry: Registry, name: str, digest: str) -> bool:
    """
    True when digest is linked into the repository: as a blob (C{_layers}) or, as distribution
    also accepts for blob reads, as a manifest revision.
    """
    driver = registry.driver
    if await layout.readLink(driver, layout.layerLinkPath(name, digest)) is not None:
        return True
    return await layout.readLink(driver, layout.revisionLinkPath(name, digest)) is not None


async def storedSize(registry: Registry, digest: str) -> int | None:
    """The size of a blob's data in the blob store, or None when it is not there."""
    try:
        info = await registry.driver.stat(layout.blobDataPath(digest))
    except PathNotFound:
        return None
    return None if info.isDir else info.size


@implementer(IBlobs)
class Blobs:
    """The blobs linked into one repository."""

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name

    def stat(self, digest: str) -> Deferred:
        """@return: Deferred firing with the blob's Descriptor. L{BlobUnknown}, L{DigestInvalid}."""
        return Deferred.fromCoroutine(self._stat(digest))

    async def _stat(self, digest: str) -> Descriptor:
        parseDigest(digest)
        cache = self._registry.descriptorCache
        cached = await cache.stat(self._name, digest)
        if cached is not None:
            return cached
        if await isLinked(self._registry, self._name, digest):
            size = await storedSize(self._registry, digest)
            if size is not None:
                descriptor = Descriptor(digest, size, None)
                await cache.remember(self._name, digest, descriptor)
                if isinstance(cache, NoDescriptorCache) or await self._stillStored(digest):
                    return descriptor
        raise BlobUnknown(detail={"digest": digest})

    async def _stillStored(self, digest: str) -> bool:
        """
        Look again after remembering: an unlink or a collection that finished between the
        first look and the remember has already forgotten its entry, so ours would outlive the
        blob. Found gone, the entry is dropped; later deletes forget it themselves.
        """
        if not await isLinked(self._registry, self._name, digest):
            await self._registry.descriptorCache.forgetLink(self._name, digest)
            return False
        if await storedSize(self._registry, digest) is None:
            await self._registry.descriptorCache.forget(digest)
            return False
        return True

    def open(self, digest: str, offset: int = 0, descriptor: IDescriptor | None = None) -> Deferred:
        """
        @return: Deferred firing with (Descriptor, IFileReader from offset); with the
            descriptor a L{stat} just returned, without looking the blob up again. L{BlobUnknown}.
        """
        return Deferred.fromCoroutine(self._open(digest, offset, descriptor))

    async def _open(self, digest: str, offset: int, descriptor: IDescriptor | None) -> tuple:
        if descriptor is None or descriptor.digest != digest:
            descriptor = await self._stat(digest)
        if offset < 0 or offset > descriptor.size:
            raise RangeInvalid(detail={"digest": digest, "offset": offset, "size": descriptor.size})
        try:
            reader = await self._registry.driver.reader(layout.blobDataPath(digest), offset)
        except PathNotFound:
            raise BlobUnknown(detail={"digest": digest}) from None
        except InvalidOffset:
            raise RangeInvalid(detail={"digest": digest, "offset": offset}) from None
        return descriptor, reader

    def redirectURL(self, method: str, digest: str) -> Deferred:
        """@return: Deferred firing with a URL serving the blob's data directly, or None."""
        return Deferred.fromCoroutine(self._redirectURL(method, digest))

    async def _redirectURL(self, method: str, digest: str) -> str | None:
        parseDigest(digest)
        try:
            return await self._registry.driver.redirectURL(method, layout.blobDataPath(digest))
        except UnsupportedMethod:
            return None

    def delete(self, digest: str) -> Deferred:
        """Unlink the blob from this repository; the data stays for garbage collection."""
        return Deferred.fromCoroutine(self._delete(digest))

    async def _delete(self, digest: str) -> None:
        self._registry.checkDeletable()
        parseDigest(digest)
        unlinked = await layout.deleteIfPresent(
            self._registry.driver, layout.layerLinkDirectory(self._name, digest)
        )
        # After the unlink, so a stat racing with it cannot put the link back in the cache.
        await self._registry.descriptorCache.forgetLink(self._name, digest)
        if not unlinked:
            raise BlobUnknown(detail={"digest": digest})

    def mount(self, digest: str, fromRepository: str | None) -> Deferred:
        """Link a blob another repository holds (or, with None, any stored blob) into this one."""
        return Deferred.fromCoroutine(self._mount(digest, fromRepository))

    async def _mount(self, digest: str, fromRepository: str | None) -> Descriptor:
        self._registry.checkWritable()
        parseDigest(digest)
        if fromRepository is not None:
            try:
                checkName(fromRepository)
            except NameInvalid:
                raise BlobUnknown(detail={"digest": digest, "from": fromRepository}) from None
            if not await isLinked(self._registry, fromRepository, digest):
                raise BlobUnknown(detail={"digest": digest, "from": fromRepository})
        size = await storedSize(self._registry, digest)
        if size is None:
            raise BlobUnknown(detail={"digest": digest})
        await layout.writeLink(self._registry.driver, layout.layerLinkPath(self._name, digest), digest)
        return Descriptor(digest, size, None)

    def createUpload(self) -> Deferred:
        """@return: Deferred firing with a new L{uploads.Upload}."""
        return Deferred.fromCoroutine(uploads.createUpload(self._registry, self._name))

    def resumeUpload(self, uuid: str, keepWriter: bool = False) -> Deferred:
        """@return: Deferred firing with the upload of that id. L{BlobUploadUnknown}."""
        return Deferred.fromCoroutine(uploads.resumeUpload(self._registry, self._name, uuid, keepWriter))

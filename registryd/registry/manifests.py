"""
The manifests of one repository: stored as blobs, linked as revisions, named by tags.

Manifests are immutable by digest, so what is parsed from one (its media type, subject,
artifact type) is cached on the L{Registry} by digest and shared by every repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from registryd.registry import layout, referrers
from registryd.registry.blobs import isLinked, storedSize
from registryd.registry.descriptors import Manifest
from registryd.registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestTooLarge,
    ManifestUnknown,
)
from registryd.registry.interfaces import IManifests
from registryd.registry.names import checkTag, digestOf, isDigest, parseDigest
from registryd.registry.schema import MAX_MANIFEST_SIZE, ManifestInfo, parseManifest
from registryd.registry.tags import tagsPointingAt

if TYPE_CHECKING:
    from registryd.registry.core import Registry


@implementer(IManifests)
class Manifests:
    """The manifests of one repository."""

    log = Logger()

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name

    async def _resolve(self, reference: str) -> str:
        """The digest of the revision a tag or digest names. L{ManifestUnknown}, L{TagInvalid}."""
        driver = self._registry.driver
        if isDigest(reference):
            parseDigest(reference)
            digest = reference
        else:
            checkTag(reference)
            digest = await layout.readLink(driver, layout.tagCurrentLinkPath(self._name, reference))
            if digest is None:
                raise ManifestUnknown(detail={"tag": reference})
        if await layout.readLink(driver, layout.revisionLinkPath(self._name, digest)) is None:
            raise ManifestUnknown(detail={"digest": digest, "reference": reference})
        return digest

    def get(self, reference: str) -> Deferred:
        """@return: Deferred firing with the L{Manifest} a tag or digest names. L{ManifestUnknown}."""
        return Deferred.fromCoroutine(self._get(reference))

    def stat(self, reference: str) -> Deferred:
        """As L{get} (manifests are small and their content is cached by digest)."""
        return Deferred.fromCoroutine(self._get(reference))

    async def _get(self, reference: str) -> Manifest:
        digest = await self._resolve(reference)
        content = await self._registry.manifestContent(digest)
        if content is None:
            raise ManifestUnknown(detail={"digest": digest, "reference": reference})
        info = self._registry.manifestInfo(digest, content)
        return Manifest(digest, len(content), info.mediaType, content)

    def put(self, reference: str, mediaType: str | None, content: bytes) -> Deferred:
        """Validate, store and maybe tag a manifest. @return: Deferred firing (Manifest, subject or None)."""
        return Deferred.fromCoroutine(self._put(reference, mediaType, bytes(content)))

    async def _put(
        self, reference: str, mediaType: str | None, content: bytes
    ) -> tuple[Manifest, str | None]:
        self._registry.checkWritable()
        tag = None
        if isDigest(reference):
            algorithm, _ = parseDigest(reference)
        else:
            tag = checkTag(reference)
            algorithm = "sha256"
        if len(content) > MAX_MANIFEST_SIZE:
            raise ManifestTooLarge(detail={"size": len(content), "limit": MAX_MANIFEST_SIZE})
        parsed = parseManifest(content, mediaType)
        digest = digestOf(content, algorithm)
        if tag is None and digest != reference:
            raise DigestInvalid(detail={"digest": reference, "computed": digest})
        for blob in parsed.blobs:
            if (
                not await isLinked(self._registry, self._name, blob)
                or await storedSize(self._registry, blob) is None
            ):
                raise ManifestBlobUnknown(detail={"digest": blob})
        for child in parsed.children:
            if (
                await layout.readLink(self._registry.driver, layout.revisionLinkPath(self._name, child))
                is None
            ):
                raise ManifestBlobUnknown(detail={"digest": child, "reason": "index child manifest unknown"})

        driver = self._registry.driver
        revisionIsNew = await layout.readLink(driver, layout.revisionLinkPath(self._name, digest)) is None
        previousTag = None
        if tag is not None:
            previousTag = await layout.readLink(driver, layout.tagCurrentLinkPath(self._name, tag))
        if await storedSize(self._registry, digest) != len(content):
            await driver.putContent(layout.blobDataPath(digest), content)
        await layout.writeLink(driver, layout.revisionLinkPath(self._name, digest), digest)
        if tag is not None:
            await layout.writeLink(driver, layout.tagIndexLinkPath(self._name, tag, digest), digest)
            await layout.writeLink(driver, layout.tagCurrentLinkPath(self._name, tag), digest)
        missing = await self._missingAfterWrite(digest, parsed.blobs, parsed.children)
        if missing is not None:
            await self._takeBack(digest, tag, revisionIsNew, previousTag)
            raise ManifestBlobUnknown(
                detail={"digest": missing, "reason": "removed by garbage collection during the push"}
            )
        self._registry.rememberManifest(digest, content, parsed.info)
        self.log.debug("stored manifest {repository}@{digest}", repository=self._name, digest=digest)
        return Manifest(digest, len(content), parsed.info.mediaType, content), parsed.info.subject

    async def _missingAfterWrite(
        self, digest: str, blobs: tuple[str, ...], children: tuple[str, ...]
    ) -> str | None:
        """
        The garbage collection race guard (L{registryd.gc.collector}): with this push's links
        written, a collector that sets anything aside from now on sees them and puts it back, so
        only what it took before can be missing. @return: the first missing digest, or None.
        """
        driver = self._registry.driver
        if await layout.readLink(driver, layout.revisionLinkPath(self._name, digest)) is None:
            return digest
        for blob in (digest, *blobs, *children):
            if await storedSize(self._registry, blob) is None:
                return blob
        for child in children:
            if await layout.readLink(driver, layout.revisionLinkPath(self._name, child)) is None:
                return child
        return None

    async def _takeBack(
        self, digest: str, tag: str | None, revisionIsNew: bool, previousTag: str | None
    ) -> None:
        """Undo what a push that lost the race with garbage collection wrote: its tag, its new revision."""
        driver = self._registry.driver
        if tag is not None and previousTag != digest:
            if previousTag is None:
                await layout.deleteIfPresent(driver, layout.tagPath(self._name, tag))
            else:
                await layout.writeLink(driver, layout.tagCurrentLinkPath(self._name, tag), previousTag)
        if revisionIsNew:
            await layout.deleteIfPresent(driver, layout.revisionLinkDirectory(self._name, digest))
            await self._registry.descriptorCache.forgetLink(self._name, digest)
            if tag is not None:
                indexEntry = layout.tagIndexLinkPath(self._name, tag, digest).rsplit("/", 1)[0]
                await layout.deleteIfPresent(driver, indexEntry)

    def delete(self, reference: str) -> Deferred:
        """Remove a revision and the tags pointing at it, or one tag. @return: Deferred firing None."""
        return Deferred.fromCoroutine(self._delete(reference))

    async def _delete(self, reference: str) -> None:
        self._registry.checkDeletable()
        driver = self._registry.driver
        if not isDigest(reference):
            checkTag(reference)
            if not await layout.deleteIfPresent(driver, layout.tagPath(self._name, reference)):
                raise ManifestUnknown(detail={"tag": reference})
            return
        parseDigest(reference)
        if not await layout.deleteIfPresent(driver, layout.revisionLinkDirectory(self._name, reference)):
            raise ManifestUnknown(detail={"digest": reference})
        # Blob reads accept a manifest revision too (isLinked), so its cached link goes with it.
        await self._registry.descriptorCache.forgetLink(self._name, reference)
        for tag in await tagsPointingAt(self._registry, self._name, reference):
            await layout.deleteIfPresent(driver, layout.tagPath(self._name, tag))

    def referrers(self, digest: str, artifactType: str | None = None) -> Deferred:
        """@return: Deferred firing with descriptor dicts of the manifests whose subject is digest."""
        return Deferred.fromCoroutine(referrers.referrers(self._registry, self._name, digest, artifactType))


__all__ = ["Manifests", "ManifestInfo"]

"""
distribution's storage layout: where every blob, link, tag and upload lives.

The paths are byte-for-byte those distribution uses under C{/docker/registry/v2}, so
registryd and distribution can take turns serving the same storage. Names, tags, digests
and upload ids must be validated (L{registryd.registry.names}) before they reach here.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from registryd.storage.interfaces import IStorageDriver, PathNotFound

ROOT = "/docker/registry/v2"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"


def _split(digest: str) -> tuple[str, str]:
    algorithm, encoded = digest.split(":", 1)
    return algorithm, encoded


def _byDigest(directory: str, digest: str) -> str:
    """C{<directory>/<alg>/<hex>}: how links are filed by digest below a directory."""
    algorithm, encoded = _split(digest)
    return f"{directory}/{algorithm}/{encoded}"


def blobDirectory(digest: str) -> str:
    """The directory holding one blob: C{blobs/<alg>/<hex[0:2]>/<hex>}."""
    algorithm, encoded = _split(digest)
    return f"{BLOBS}/{algorithm}/{encoded[:2]}/{encoded}"


def blobDataPath(digest: str) -> str:
    """Where a blob's content (layer, config or manifest) is stored."""
    return f"{blobDirectory(digest)}/data"


def repositoryPath(name: str) -> str:
    """The directory of one repository."""
    return f"{REPOSITORIES}/{name}"


def layersPath(name: str) -> str:
    """The C{_layers} directory of a repository: the blobs linked into it."""
    return f"{repositoryPath(name)}/_layers"


def layerLinkDirectory(name: str, digest: str) -> str:
    """The directory of a blob's link into a repository (removed to unlink it)."""
    return _byDigest(layersPath(name), digest)


def layerLinkPath(name: str, digest: str) -> str:
    """The link file that makes a blob part of a repository."""
    return f"{layerLinkDirectory(name, digest)}/link"


def manifestsPath(name: str) -> str:
    """The C{_manifests} directory of a repository: its presence makes the repository a catalog entry."""
    return f"{repositoryPath(name)}/_manifests"


def revisionsPath(name: str) -> str:
    """The directory of every manifest revision of a repository."""
    return f"{manifestsPath(name)}/revisions"


def revisionLinkDirectory(name: str, digest: str) -> str:
    """The directory of one manifest revision's link (removed to delete the revision)."""
    return _byDigest(revisionsPath(name), digest)


def revisionLinkPath(name: str, digest: str) -> str:
    """The link file of one manifest revision."""
    return f"{revisionLinkDirectory(name, digest)}/link"


def tagsPath(name: str) -> str:
    """The directory of every tag of a repository."""
    return f"{manifestsPath(name)}/tags"


def tagPath(name: str, tag: str) -> str:
    """The directory of one tag (removed to delete the tag)."""
    return f"{tagsPath(name)}/{tag}"


def tagCurrentLinkPath(name: str, tag: str) -> str:
    """The link file naming what a tag points at now."""
    return f"{tagPath(name, tag)}/current/link"


def tagIndexLinkPath(name: str, tag: str, digest: str) -> str:
    """The link file recording that a tag has pointed at a revision."""
    return f"{_byDigest(f'{tagPath(name, tag)}/index', digest)}/link"


def uploadsPath(name: str) -> str:
    """The directory of a repository's uploads in progress."""
    return f"{repositoryPath(name)}/_uploads"


def uploadPath(name: str, uuid: str) -> str:
    """The directory of one upload in progress."""
    return f"{uploadsPath(name)}/{uuid}"


def uploadDataPath(name: str, uuid: str) -> str:
    """The bytes received so far for an upload."""
    return f"{uploadPath(name, uuid)}/data"


def uploadStartedAtPath(name: str, uuid: str) -> str:
    """The RFC 3339 time an upload started."""
    return f"{uploadPath(name, uuid)}/startedat"


def uploadHashStatePath(name: str, uuid: str, algorithm: str, offset: int) -> str:
    """The saved state of an upload's running hash after its first offset bytes (distribution's path)."""
    return f"{uploadPath(name, uuid)}/hashstates/{algorithm}/{offset}"


def linkContent(digest: str) -> bytes:
    """What a link file holds: the digest text, no newline."""
    return digest.encode("ascii")


async def readLink(driver: IStorageDriver, path: str) -> str | None:
    """The digest a link file names, or None when the link does not exist."""
    try:
        content = await driver.getContent(path)
    except PathNotFound:
        return None
    return bytes(content).decode("ascii", "replace").strip()


def writeLink(driver: IStorageDriver, path: str, digest: str) -> Deferred:
    """Write a link file naming digest. @return: Deferred firing None."""
    return driver.putContent(path, linkContent(digest))


async def exists(driver: IStorageDriver, path: str) -> bool:
    """True when something (file or directory) is stored at path."""
    try:
        await driver.stat(path)
    except PathNotFound:
        return False
    return True


async def deleteIfPresent(driver: IStorageDriver, path: str) -> bool:
    """Delete path recursively; True if something was there."""
    try:
        await driver.delete(path)
    except PathNotFound:
        return False
    return True


async def listNames(driver: IStorageDriver, path: str) -> list[str]:
    """The sorted base names of a directory's children; [] when the directory is missing."""
    try:
        children = await driver.list(path)
    except PathNotFound:
        return []
    return sorted(child.rsplit("/", 1)[-1] for child in children)

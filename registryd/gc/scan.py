"""
Reading what storage holds for garbage collection: the repositories, their revision, tag
and layer links, and the blob store. Paths come from L{registryd.registry.layout}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registryd.registry import layout
from registryd.registry.errors import DigestInvalid
from registryd.registry.names import parseDigest
from registryd.storage.interfaces import SKIP_DIR, IStorageDriver, PathNotFound


@dataclass(frozen=True)
class StoredBlob:
    """One blob in the blob store: its size and when its data was last written."""

    digest: str
    size: int
    modTime: float


@dataclass
class RepositoryLinks:
    """What one repository links: revisions and layers (digest -> link time), tags (tag -> digest)."""

    name: str
    revisions: dict[str, float] = field(default_factory=dict)
    layers: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _digestOf(algorithm: str, encoded: str) -> str | None:
    digest = f"{algorithm}:{encoded}"
    try:
        parseDigest(digest)
    except DigestInvalid:
        return None
    return digest


async def repositoryNames(driver: IStorageDriver) -> list[str]:
    """
    Every repository holding manifests or linked blobs. Unlike the catalog this includes a
    repository whose first push has uploaded blobs but not yet its manifest: its layer links
    are what protects those blobs.
    """
    prefix = layout.REPOSITORIES + "/"
    names: set[str] = set()

    def visit(info: Any) -> object:
        if not info.isDir:
            return None
        parent, _, base = info.path.rpartition("/")
        if base in ("_manifests", "_layers"):
            if parent.startswith(prefix):
                names.add(parent[len(prefix) :])
            return SKIP_DIR
        if base.startswith("_"):
            return SKIP_DIR
        return None

    try:
        await driver.walk(layout.REPOSITORIES, visit)
    except PathNotFound:
        return []
    return sorted(names)


async def linksByDigest(driver: IStorageDriver, directory: str) -> dict[str, float]:
    """The C{<alg>/<hex>/link} files below directory: digest -> the link's modification time."""
    found: dict[str, float] = {}
    base = directory.rstrip("/") + "/"

    def visit(info: Any) -> object:
        parts = info.path[len(base) :].split("/")
        if info.isDir:
            return SKIP_DIR if len(parts) > 2 else None
        if len(parts) == 3 and parts[2] == "link":
            digest = _digestOf(parts[0], parts[1])
            if digest is not None:
                found[digest] = info.modTime
        return None

    try:
        await driver.walk(directory, visit)
    except PathNotFound:
        pass
    return found


async def repositoryLinks(driver: IStorageDriver, name: str) -> RepositoryLinks:
    """Read one repository's revision, layer and tag links."""
    links = RepositoryLinks(name)
    links.revisions = await linksByDigest(driver, layout.revisionsPath(name))
    # Tags after revisions: a push writes its revision link before its tag, so a tag found
    # here that names a revision written meanwhile is seen as the revision's tag, not missed.
    for tag in await layout.listNames(driver, layout.tagsPath(name)):
        digest = await layout.readLink(driver, layout.tagCurrentLinkPath(name, tag))
        if digest is not None:
            links.tags[tag] = digest
    links.layers = await linksByDigest(driver, layout.layersPath(name))
    return links


async def storedBlobs(driver: IStorageDriver, progress: Any = None) -> dict[str, StoredBlob]:
    """Every blob whose data is in the blob store; progress(count) is called as they are found."""
    found: dict[str, StoredBlob] = {}
    base = layout.BLOBS + "/"

    def visit(info: Any) -> object:
        parts = info.path[len(base) :].split("/")
        if info.isDir:
            return SKIP_DIR if len(parts) > 3 else None
        if len(parts) == 4 and parts[3] == "data" and parts[2][:2] == parts[1]:
            digest = _digestOf(parts[0], parts[2])
            if digest is not None:
                found[digest] = StoredBlob(digest, info.size, info.modTime)
                if progress is not None:
                    progress(len(found))
        return None

    try:
        await driver.walk(layout.BLOBS, visit)
    except PathNotFound:
        pass
    return found

"""
The referrers of a manifest (OCI distribution 1.1): every revision in the repository whose
C{subject} names it. Found by scanning the revisions, so manifests pushed by distribution
(which keeps no referrers index of its own on disk) are seen; what each revision says is
cached by digest, so a repeated scan costs only directory listings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registryd.registry import layout
from registryd.registry.errors import DigestInvalid
from registryd.registry.names import DIGEST_LENGTHS, parseDigest

if TYPE_CHECKING:
    from registryd.registry.core import Registry


async def referrers(
    registry: Registry, name: str, digest: str, artifactType: str | None = None
) -> list[dict[str, Any]]:
    """Descriptor dicts of the manifests whose subject is digest, filtered by artifactType when given."""
    parseDigest(digest)
    found: list[dict[str, Any]] = []
    revisions = layout.revisionsPath(name)
    for algorithm in await layout.listNames(registry.driver, revisions):
        if algorithm not in DIGEST_LENGTHS:
            continue
        for encoded in await layout.listNames(registry.driver, f"{revisions}/{algorithm}"):
            revision = f"{algorithm}:{encoded}"
            try:
                parseDigest(revision)
            except DigestInvalid:
                continue
            info = await registry.storedManifestInfo(revision)
            if info is None or info.subject != digest:
                continue
            if artifactType is not None and info.artifactType != artifactType:
                continue
            descriptor: dict[str, Any] = {"mediaType": info.mediaType, "digest": revision, "size": info.size}
            if info.artifactType is not None:
                descriptor["artifactType"] = info.artifactType
            if info.annotations is not None:
                descriptor["annotations"] = dict(info.annotations)
            found.append(descriptor)
    return found

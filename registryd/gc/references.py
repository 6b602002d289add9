"""
What a stored manifest keeps alive, and which manifests of a repository reach which.

A manifest keeps its own content, its config and layers (the blobs), the manifests an
index lists (its children) and, through its C{subject}, nothing: it is the other way
round, a manifest whose subject is reachable is itself reachable (a signature or SBOM
lives as long as the image it describes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registryd.registry.errors import DigestInvalid, ManifestInvalid
from registryd.registry.names import parseDigest
from registryd.registry.schema import parseManifest


class UnreadableManifest(Exception):
    """A stored manifest is not JSON: what it references cannot be known, so nothing may be swept."""


@dataclass(frozen=True)
class References:
    """The digests one manifest refers to."""

    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None


def _digest(value: object) -> str | None:
    """value when it is a well-formed digest, else None."""
    if not isinstance(value, str):
        return None
    try:
        parseDigest(value)
    except DigestInvalid:
        return None
    return value


def _field(document: Mapping[str, Any], key: str, inner: str) -> list[str]:
    """The digests at document[key][*][inner] (or document[key][inner] for one object)."""
    value = document.get(key)
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        if isinstance(item, dict):
            digest = _digest(item.get(inner))
            if digest is not None:
                found.append(digest)
    return found


def _lenient(content: bytes) -> References:
    """
    Every digest a manifest names where descriptors live (schema 1's C{fsLayers} too): for
    manifests another registry stored that registryd would refuse today. Keeping too much is
    harmless; missing a reference would delete a blob a pull needs.
    """
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise UnreadableManifest("not a JSON object")
    blobs = _field(document, "config", "digest") + _field(document, "layers", "digest")
    blobs += _field(document, "fsLayers", "blobSum") + _field(document, "blobs", "digest")
    subject = _field(document, "subject", "digest")
    return References(
        blobs=tuple(dict.fromkeys(blobs)),
        children=tuple(dict.fromkeys(_field(document, "manifests", "digest"))),
        subject=subject[0] if subject else None,
    )


def references(content: bytes) -> References:
    """
    What a stored manifest refers to: read as a push reads it (L{parseManifest}) when it is
    a manifest registryd accepts, else leniently. L{UnreadableManifest} when it is not JSON.
    """
    try:
        parsed = parseManifest(content, None)
    except ManifestInvalid:
        return _lenient(content)
    return References(parsed.blobs, parsed.children, parsed.info.subject)


def reachable(roots: Iterable[str], manifests: Mapping[str, References]) -> set[str]:
    """
    The manifest digests reached from roots in one repository: through index children, and
    from a manifest to every manifest whose subject it is. Roots and children that are not
    among manifests are included (their content is kept) but lead nowhere.
    """
    referrers: dict[str, list[str]] = {}
    for digest, refs in manifests.items():
        if refs.subject is not None:
            referrers.setdefault(refs.subject, []).append(digest)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        refs = manifests.get(digest)
        if refs is not None:
            stack.extend(refs.children)
        stack.extend(referrers.get(digest, ()))
    return seen


def keptBlobs(reached: Iterable[str], manifests: Mapping[str, References]) -> set[str]:
    """Every blob the reached manifests keep: their own content, configs and layers."""
    kept: set[str] = set()
    for digest in reached:
        kept.add(digest)
        refs = manifests.get(digest)
        if refs is not None:
            kept.update(refs.blobs)
            kept.update(refs.children)
    return kept

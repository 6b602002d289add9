"""The values the core hands back: descriptors of blobs and stored manifests."""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import implementer

from registryd.registry.interfaces import IDescriptor, IManifest


@implementer(IDescriptor)
@dataclass(frozen=True)
class Descriptor:
    """A blob known by digest: its size, and its media type when one is known."""

    digest: str
    size: int
    mediaType: str | None = None


@implementer(IManifest)
@dataclass(frozen=True)
class Manifest:
    """A stored manifest: digest, size, the media type parsed from it, and its exact bytes."""

    digest: str
    size: int
    mediaType: str
    content: bytes

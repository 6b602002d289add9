"""
Manifest formats: the media types the registry stores, and what a manifest's JSON must
hold to be accepted. Pure functions over bytes; storage checks live in L{manifests}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registryd.registry.errors import DigestInvalid, ManifestInvalid
from registryd.registry.names import parseDigest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
SUPPORTED = IMAGE_MANIFESTS | INDEXES
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
KNOWN = SUPPORTED | SCHEMA1

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
"""Manifests larger than this are refused (distribution's default limit)."""


@dataclass(frozen=True)
class ManifestInfo:
    """What the registry needs to know of a stored manifest; manifests are immutable, so this is cacheable."""

    mediaType: str
    size: int
    subject: str | None = None
    artifactType: str | None = None
    annotations: dict[str, str] | None = None


@dataclass(frozen=True)
class ParsedManifest:
    """An accepted manifest: its media type, the blobs and manifests it needs, and its referrer facts."""

    info: ManifestInfo
    blobs: tuple[str, ...] = field(default=())
    children: tuple[str, ...] = field(default=())


def normaliseMediaType(value: str | None) -> str | None:
    """A Content-Type without parameters or case differences, or None when empty."""
    if value is None:
        return None
    value = value.split(";", 1)[0].strip().lower()
    return value or None


def _invalid(reason: str, **detail: Any) -> ManifestInvalid:
    return ManifestInvalid(detail={"reason": reason, **detail})


def _inferMediaType(document: dict[str, Any]) -> str | None:
    """The media type a manifest without a mediaType field has, judged by its structure."""
    if document.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in document else DOCKER_SCHEMA1
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document:
        return OCI_MANIFEST
    return None


def _loads(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def describeStored(content: bytes) -> ManifestInfo:
    """
    The facts of a manifest already in storage, never failing: it may have been written by
    another registry, so anything unreadable is described as well as it can be.
    """
    document = _loads(content)
    if not isinstance(document, dict):
        return ManifestInfo(OCI_MANIFEST, len(content))
    mediaType = document.get("mediaType")
    if not isinstance(mediaType, str) or not mediaType:
        mediaType = _inferMediaType(document) or OCI_MANIFEST
    subject = document.get("subject")
    subjectDigest = subject.get("digest") if isinstance(subject, dict) else None
    return _info(document, mediaType, len(content), subjectDigest if isinstance(subjectDigest, str) else None)


def _info(document: dict[str, Any], mediaType: str, size: int, subject: str | None) -> ManifestInfo:
    """The cacheable facts of a manifest document whose media type and subject are settled."""
    return ManifestInfo(
        mediaType=mediaType,
        size=size,
        subject=subject,
        artifactType=_artifactType(document),
        annotations=_annotations(document),
    )


def _artifactType(document: dict[str, Any]) -> str | None:
    """artifactType, or for image manifests without one the config's media type (OCI referrers rule)."""
    artifactType = document.get("artifactType")
    if isinstance(artifactType, str) and artifactType:
        return artifactType
    config = document.get("config")
    if "manifests" not in document and isinstance(config, dict):
        configType = config.get("mediaType")
        if isinstance(configType, str) and configType:
            return configType
    return None


def _annotations(document: dict[str, Any]) -> dict[str, str] | None:
    annotations = document.get("annotations")
    if isinstance(annotations, dict) and annotations:
        return dict(annotations)
    return None


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    """Check one descriptor's shape: mediaType text, a supported digest, a non-negative integer size."""
    if not isinstance(value, dict):
        raise _invalid(f"{where} is not a descriptor object")
    mediaType = value.get("mediaType")
    if not isinstance(mediaType, str) or not mediaType:
        raise _invalid(f"{where} has no mediaType")
    digest = value.get("digest")
    try:
        parseDigest(digest)
    except DigestInvalid:
        raise _invalid(f"{where} has an invalid digest", digest=digest) from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where} has an invalid size", digest=digest)
    urls = value.get("urls")
    if urls is not None and (not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
        raise _invalid(f"{where} has invalid urls", digest=digest)
    annotations = value.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid(f"{where} has invalid annotations", digest=digest)
    return value


def _descriptorList(document: dict[str, Any], key: str, required: bool) -> list[dict[str, Any]]:
    value = document.get(key)
    if value is None:
        if required:
            raise _invalid(f"manifest has no {key}")
        return []
    if not isinstance(value, list):
        raise _invalid(f"{key} is not a list")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def parseManifest(content: bytes, declaredType: str | None) -> ParsedManifest:
    """
    Validate a pushed manifest against its media type (the body's mediaType field, else
    the Content-Type, else inferred from its structure). Raises L{ManifestInvalid}.
    """
    declared = normaliseMediaType(declaredType)
    document = _loads(content)
    if not isinstance(document, dict):
        raise _invalid("manifest is not a JSON object")
    ownType = document.get("mediaType")
    if ownType is not None and (not isinstance(ownType, str) or not ownType):
        raise _invalid("mediaType is not a string")
    if ownType is not None and declared is not None and ownType != declared:
        raise _invalid(
            "mediaType in manifest does not match Content-Type", mediaType=ownType, contentType=declared
        )
    if document.get("schemaVersion") == 1 or ownType in SCHEMA1 or (ownType is None and declared in SCHEMA1):
        raise _invalid("schema 1 manifests are not supported; push a schema 2 or OCI manifest")
    schemaVersion = document.get("schemaVersion")
    if schemaVersion != 2 or isinstance(schemaVersion, bool):
        raise _invalid("schemaVersion must be 2", schemaVersion=schemaVersion)
    if ownType is not None:
        mediaType = ownType
    else:
        # What the registry will later serve is inferred from the stored bytes, so a
        # Content-Type may only confirm the structure, never contradict it.
        mediaType = _inferMediaType(document)
        if mediaType is None:
            raise _invalid("cannot tell the manifest's media type: it has neither config nor manifests")
        if declared in KNOWN and declared != mediaType:
            raise _invalid(
                "Content-Type does not match the manifest and the manifest names no mediaType",
                contentType=declared,
            )
    if mediaType not in SUPPORTED:
        raise _invalid("unsupported manifest media type", mediaType=mediaType)
    artifactType = document.get("artifactType")
    if artifactType is not None and (not isinstance(artifactType, str) or not artifactType):
        raise _invalid("artifactType is not a string")
    annotations = document.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid("annotations is not an object")
    subject = document.get("subject")
    subjectDigest = _descriptor(subject, "subject")["digest"] if subject is not None else None

    blobs: list[str] = []
    children: list[str] = []
    if mediaType in IMAGE_MANIFESTS:
        if "manifests" in document:
            raise _invalid("an image manifest has no manifests list")
        config = _descriptor(document.get("config"), "config")
        blobs.append(config["digest"])
        for layer in _descriptorList(document, "layers", required=False):
            # Foreign layers (with urls) live elsewhere, as distribution allows.
            if not layer.get("urls"):
                blobs.append(layer["digest"])
    else:
        children = [child["digest"] for child in _descriptorList(document, "manifests", required=True)]

    return ParsedManifest(
        info=_info(document, mediaType, len(content), subjectDigest),
        blobs=tuple(dict.fromkeys(blobs)),
        children=tuple(dict.fromkeys(children)),
    )

"""Shared helpers for the registry core tests: bodies, blobs and manifests to push."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from registryd.registry.interfaces import IBodyStream

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY = "application/vnd.oci.empty.v1+json"


@implementer(IBodyStream)
class ListBody:
    """A request body that hands out the chunks of a list, then b""; optionally fails after them."""

    def __init__(self, chunks: list[bytes], failure: Exception | None = None) -> None:
        self._chunks = list(chunks)
        self._failure = failure

    def read(self) -> Deferred:
        if self._chunks:
            return succeed(self._chunks.pop(0))
        if self._failure is not None:
            return fail(self._failure)
        return succeed(b"")


def sha256(data: bytes) -> str:
    """The sha256 digest text of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(mediaType: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """A descriptor of data."""
    return {"mediaType": mediaType, "digest": sha256(data), "size": len(data), **extra}


def dumps(document: dict[str, Any]) -> bytes:
    """Manifest bytes, formatted the way a client might (indentation kept, so bytes matter)."""
    return json.dumps(document, indent=3).encode()


async def pushBlob(repository: Any, data: bytes) -> str:
    """Upload data as one chunk and commit it; return its digest."""
    upload = await repository.blobs.createUpload()
    await upload.write(ListBody([data]))
    digest = sha256(data)
    await upload.commit(digest)
    return digest


def imageManifest(
    config: bytes, layers: list[bytes], mediaType: str | None = OCI_MANIFEST, **extra: Any
) -> dict[str, Any]:
    """An OCI (or, with the Docker media type, Docker v2.2) image manifest document."""
    docker = mediaType == DOCKER_MANIFEST
    document: dict[str, Any] = {"schemaVersion": 2}
    if mediaType is not None:
        document["mediaType"] = mediaType
    document["config"] = descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config)
    document["layers"] = [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer) for layer in layers]
    document.update(extra)
    return document


async def pushImage(repository: Any, reference: str, seed: bytes = b"", **extra: Any) -> tuple[Any, bytes]:
    """Push a config, two layers and an OCI manifest for them; return (the stored Manifest, its bytes)."""
    config = b'{"architecture":"amd64","os":"linux","seed":"' + seed + b'"}'
    layers = [b"layer one " + seed, b"layer two " + seed]
    for blob in [config, *layers]:
        await pushBlob(repository, blob)
    content = dumps(imageManifest(config, layers, **extra))
    manifest, _ = await repository.manifests.put(reference, OCI_MANIFEST, content)
    return manifest, content

"""
OCI image layouts built by the tests themselves: random gzipped layers, a config, manifests, indexes.

The layout format is the OCI image spec's: C{oci-layout}, C{index.json}, C{blobs/<alg>/<hex>}.
Layers are tar archives of random bytes (incompressible, so sizes stay what the test asked for).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

MiB = 1 << 20


def _canonical(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode("utf-8")


def digestOf(data: bytes) -> str:
    """The sha256 digest string of C{data}."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digestOfFile(path: Path) -> str:
    """The sha256 digest string of a file, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


@dataclass
class Descriptor:
    """An OCI descriptor of a blob written into a layout."""

    mediaType: str
    digest: str
    size: int
    platform: dict | None = None
    annotations: dict | None = None

    def asJSON(self) -> dict:
        """The descriptor as the image spec's JSON object."""
        document: dict = {"mediaType": self.mediaType, "digest": self.digest, "size": self.size}
        if self.platform is not None:
            document["platform"] = self.platform
        if self.annotations is not None:
            document["annotations"] = self.annotations
        return document


@dataclass
class Image:
    """What L{OCILayout.addImage} wrote: the manifest's descriptor and every blob it references."""

    manifest: Descriptor
    config: Descriptor
    layers: list[Descriptor] = field(default_factory=list)

    def blobDigests(self) -> set[str]:
        """Every digest the image consists of, manifest included."""
        return {self.manifest.digest, self.config.digest} | {layer.digest for layer in self.layers}


class OCILayout:
    """An OCI image layout directory, created empty, filled by the add* methods."""

    def __init__(self, path: Path, seed: int = 0) -> None:
        self.path = Path(path)
        self.random = random.Random(seed)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.manifests: list[dict] = []
        self._writeIndex()

    def _writeIndex(self) -> None:
        index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": self.manifests}
        (self.path / "index.json").write_bytes(_canonical(index))

    def blobPath(self, digest: str) -> Path:
        """Where the blob with C{digest} lives in this layout."""
        algorithm, hexadecimal = digest.split(":", 1)
        return self.path / "blobs" / algorithm / hexadecimal

    def writeBlob(self, data: bytes, mediaType: str) -> Descriptor:
        """Store C{data} as a blob and return its descriptor."""
        digest = digestOf(data)
        self.blobPath(digest).write_bytes(data)
        return Descriptor(mediaType, digest, len(data))

    def _layer(self, size: int, name: str) -> tuple[Descriptor, str]:
        """Write a gzipped tar layer holding C{size} random bytes; return it and its uncompressed digest."""
        payload = self.random.randbytes(size)
        tarball = io.BytesIO()
        with tarfile.open(fileobj=tarball, mode="w", format=tarfile.PAX_FORMAT) as archive:
            member = tarfile.TarInfo(name)
            member.size = size
            member.mode = 0o644
            member.mtime = 1700000000
            archive.addfile(member, io.BytesIO(payload))
        uncompressed = tarball.getvalue()
        compressed = gzip.compress(uncompressed, compresslevel=1, mtime=0)
        return self.writeBlob(compressed, MEDIA_TYPE_LAYER), digestOf(uncompressed)

    def addImage(
        self,
        layerSizes: list[int],
        tag: str | None = None,
        architecture: str = "amd64",
        os: str = "linux",
        tagged: bool = True,
    ) -> Image:
        """Write an image (config, layers of the given uncompressed sizes, manifest); tag it in index.json."""
        layers: list[Descriptor] = []
        diffIDs: list[str] = []
        for number, size in enumerate(layerSizes):
            layer, diffID = self._layer(size, f"layer-{number}-{self.random.getrandbits(32):08x}.bin")
            layers.append(layer)
            diffIDs.append(diffID)
        config = {
            "created": "2024-01-01T00:00:00Z",
            "architecture": architecture,
            "os": os,
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"test": str(self.random.getrandbits(64))}},
            "rootfs": {"type": "layers", "diff_ids": diffIDs},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "registryd e2e"} for _ in diffIDs],
        }
        configDescriptor = self.writeBlob(_canonical(config), MEDIA_TYPE_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": configDescriptor.asJSON(),
            "layers": [layer.asJSON() for layer in layers],
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
        manifestDescriptor = self.writeBlob(_canonical(manifest), MEDIA_TYPE_MANIFEST)
        manifestDescriptor.platform = {"architecture": architecture, "os": os}
        if tagged and tag is not None:
            self._tag(manifestDescriptor, tag)
        return Image(manifestDescriptor, configDescriptor, layers)

    def addIndex(self, images: list[Image], tag: str) -> Descriptor:
        """Write an image index over C{images} (each with its platform) and tag it in index.json."""
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [image.manifest.asJSON() for image in images],
        }
        descriptor = self.writeBlob(_canonical(index), MEDIA_TYPE_INDEX)
        self._tag(descriptor, tag)
        return descriptor

    def _tag(self, descriptor: Descriptor, tag: str) -> None:
        entry = {"mediaType": descriptor.mediaType, "digest": descriptor.digest, "size": descriptor.size}
        entry["annotations"] = {REF_NAME: tag}
        self.manifests.append(entry)
        self._writeIndex()


def taggedDescriptor(layoutPath: Path, tag: str) -> dict:
    """The descriptor index.json of a layout gives for C{tag}; KeyError when the tag is absent."""
    index = json.loads((Path(layoutPath) / "index.json").read_bytes())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get(REF_NAME) == tag:
            return entry
    raise KeyError(f"no tag {tag!r} in {layoutPath}/index.json")


def reachableBlobs(layoutPath: Path, digest: str) -> set[str]:
    """Every digest reachable from the manifest or index C{digest} in a layout (itself included)."""
    layoutPath = Path(layoutPath)
    seen: set[str] = set()
    pending = [digest]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        algorithm, hexadecimal = current.split(":", 1)
        path = layoutPath / "blobs" / algorithm / hexadecimal
        try:
            document = json.loads(path.read_bytes())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        for child in document.get("manifests", []):
            pending.append(child["digest"])
        if "config" in document and isinstance(document["config"], dict) and "digest" in document["config"]:
            seen.add(document["config"]["digest"])
            for layer in document.get("layers", []):
                seen.add(layer["digest"])
    return seen

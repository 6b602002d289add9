"""
Pushing a small image into a registry over its HTTP API (no client tool needed): blobs by
POST + PUT, then an OCI manifest by tag. For tests that need content in an upstream registry.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urljoin

from tests.support.http import Response
from tests.support.layouts import MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST, digestOf

MEDIA_TYPE_PLAIN_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class PushedImage:
    """What was pushed: the manifest's bytes and digest, and each layer's digest and bytes."""

    manifest: bytes
    digest: str
    layers: dict[str, bytes]


class PushFailed(Exception):
    """The registry refused part of a push."""


class Pusher:
    """Pushes into the registry at C{url}, sending C{headers} (credentials) and trusting C{context}."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = headers or {}
        self.context = context

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict | None = None
    ) -> Response:
        """One request with the pusher's headers; the response whatever its status."""
        prepared = urllib.request.Request(
            url, data=body, method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(prepared, timeout=120, context=self.context) as response:
                return Response(response.status, response.headers, response.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def _expect(self, response: Response, status: int, what: str) -> Response:
        if response.status != status:
            raise PushFailed(f"{what}: {response.status} {response.body[:300]!r}")
        return response

    def blob(self, name: str, data: bytes) -> str:
        """Upload one blob; return its digest."""
        digest = digestOf(data)
        started = self._expect(
            self.request("POST", f"{self.url}/v2/{name}/blobs/uploads/", b"", {"Content-Length": "0"}),
            202,
            f"starting an upload to {name}",
        )
        location = urljoin(self.url + "/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        self._expect(
            self.request(
                "PUT",
                f"{location}{separator}digest={digest}",
                data,
                {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            ),
            201,
            f"finishing the upload of {digest}",
        )
        return digest

    def image(self, name: str, tag: str, layers: list[bytes]) -> PushedImage:
        """Push layers, a config and an OCI manifest tagged C{tag}."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        configDigest = self.blob(name, config)
        pushed = {self.blob(name, layer): layer for layer in layers}
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_MANIFEST,
                "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": configDigest, "size": len(config)},
                "layers": [
                    {"mediaType": MEDIA_TYPE_PLAIN_LAYER, "digest": digest, "size": len(layer)}
                    for digest, layer in pushed.items()
                ],
            }
        ).encode()
        self._expect(
            self.request(
                "PUT",
                f"{self.url}/v2/{name}/manifests/{tag}",
                manifest,
                {"Content-Type": MEDIA_TYPE_MANIFEST},
            ),
            201,
            f"putting the manifest {name}:{tag}",
        )
        return PushedImage(manifest, digestOf(manifest), pushed)

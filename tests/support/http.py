"""A tiny synchronous HTTP client for end-to-end checks that no registry client exposes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message


@dataclass
class Response:
    """A finished HTTP exchange: status, headers and the whole (small) body."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> dict:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def errorCodes(self) -> list[str]:
        """The C{code} of every error in a registry error body."""
        try:
            return [error.get("code") for error in self.json().get("errors", [])]
        except ValueError:
            return []


def request(
    method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> Response:
    """Send one request and return the response, whatever its status."""
    prepared = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

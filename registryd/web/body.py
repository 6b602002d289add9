"""
Request bodies as asynchronous streams (L{IBodyStream}), whatever carried them.

Upload requests arrive through L{registryd.web.request.RegistryRequest} with
C{request.content} already a live stream from the socket; anything else (a small body
twisted.web buffered, or an in-memory test request) is wrapped here so that route code
reads every body the same way.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from registryd.registry.interfaces import IBodyStream

_CHUNK = 1 << 20


@implementer(IBodyStream)
class FileBody:
    """An L{IBodyStream} over a file-like object twisted.web already holds."""

    def __init__(self, fileObject: Any) -> None:
        self._file = fileObject
        if self._file is not None:
            self._file.seek(0)

    def read(self) -> Deferred:
        if self._file is None:
            return succeed(b"")
        return succeed(self._file.read(_CHUNK))


def bodyStream(request: Any) -> IBodyStream:
    """Return the request's body as an L{IBodyStream}."""
    content = getattr(request, "content", None)
    if IBodyStream.providedBy(content):
        return content
    return FileBody(content)


async def readBody(request: Any, limit: int) -> bytes | None:
    """
    Read a small body whole (manifests): the bytes, or None when it is longer than limit
    (the rest is drained so the connection stays usable).
    """
    stream = bodyStream(request)
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = await stream.read()
        if not chunk:
            break
        total += len(chunk)
        if total <= limit:
            parts.append(chunk)
        else:
            parts = []
    if total > limit:
        return None
    return b"".join(parts)

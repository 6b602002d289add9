"""
C{/v2/<name>/blobs/<digest>}: fetch (whole or by Range), check, and delete blobs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.answers import emptyAnswer
from registryd.api.base import contentDigestHeaders, endpoint, etagMatches, eventsFor, header
from registryd.api.download import sendContent
from registryd.api.errors import writeError
from registryd.registry.errors import RangeInvalid

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)\Z")


class Unsatisfiable(Exception):
    """A Range that selects no byte of the content."""


def parseRange(value: str | None, size: int) -> tuple[int, int] | None:
    """
    The (start, end inclusive) one byte range selects, or None to send everything (no
    Range, or one we ignore: several ranges, other units). @raise Unsatisfiable.
    """
    if value is None:
        return None
    match = _RANGE.match(value.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        # A suffix: the last N bytes.
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise Unsatisfiable()
    return start, end


@endpoint(needs.pull)
async def getBlob(api: RegistryAPI, request: IRequest, name: str, digest: str) -> bytes | None:
    """C{GET}/C{HEAD}: the blob's bytes (or a redirect to where the driver serves them)."""
    blobs = api.registry.repository(name).blobs
    descriptor = await blobs.stat(digest)
    # distribution's pull event: GET and HEAD alike, also a redirect, a range or a 304
    # (sent only if the request answers successfully).
    eventsFor(api, request).blobPulled(name, descriptor)
    contentDigestHeaders(request, descriptor.digest)
    if not api.settings.redirectDisabled:
        url = await blobs.redirectURL(request.method.decode("ascii"), descriptor.digest)
        if url:
            request.setHeader(b"Location", url.encode("utf-8"))
            return emptyAnswer(request, 307)

    size = descriptor.size
    request.setHeader(b"Accept-Ranges", b"bytes")
    # Content-addressed: the bytes at a digest never change.
    request.setHeader(b"Cache-Control", b"max-age=31536000")
    if etagMatches(request, descriptor.digest):
        request.setResponseCode(304)
        return None

    try:
        wanted = parseRange(header(request, "Range"), size)
    except Unsatisfiable:
        request.setHeader(b"Content-Range", b"bytes */%d" % (size,))
        return writeError(request, RangeInvalid({"size": size, "range": header(request, "Range")}))

    request.setHeader(b"Content-Type", b"application/octet-stream")
    if wanted is None:
        start, length = 0, size
        request.setResponseCode(200)
    else:
        start, end = wanted
        length = end - start + 1
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (start, end, size))
    request.setHeader(b"Content-Length", b"%d" % (length,))
    if request.method == b"HEAD" or length == 0:
        return None

    _, reader = await blobs.open(descriptor.digest, start, descriptor)
    await sendContent(request, reader, length)
    return None


@endpoint(needs.delete, write=True)
async def deleteBlob(api: RegistryAPI, request: IRequest, name: str, digest: str) -> bytes | None:
    """C{DELETE}: unlink the blob from the repository (garbage collection frees the bytes)."""
    await api.registry.repository(name).blobs.delete(digest)
    eventsFor(api, request).blobDeleted(name, digest)
    request.setHeader(b"Docker-Content-Digest", digest.encode("utf-8"))
    return emptyAnswer(request, 202)

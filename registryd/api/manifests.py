"""
C{/v2/<name>/manifests/<reference>}: fetch, check, push and delete manifests by tag or
digest, served byte-for-byte as pushed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.answers import emptyAnswer
from registryd.api.base import (
    contentDigestHeaders,
    endpoint,
    etagMatches,
    eventsFor,
    externalURL,
    header,
    queryArgs,
)
from registryd.registry.errors import ManifestTooLarge, ManifestUnknown, TagInvalid
from registryd.registry.names import isDigest
from registryd.registry.schema import MAX_MANIFEST_SIZE, OCI_MANIFEST, normaliseMediaType
from registryd.registry.tags import tagsPointingAt
from registryd.web.body import readBody

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI


@endpoint(needs.pull)
async def getManifest(api: RegistryAPI, request: IRequest, name: str, reference: str) -> bytes | None:
    """C{GET}/C{HEAD}: the manifest's exact bytes with its media type and digest."""
    manifests = api.registry.repository(name).manifests
    head = request.method == b"HEAD"
    try:
        manifest = await (manifests.stat(reference) if head else manifests.get(reference))
    except TagInvalid as e:
        # Neither a tag nor a digest: distribution's route does not match it, so the OCI
        # conformance suite expects 404 for a fetch (PUT still answers 400 TAG_INVALID).
        raise ManifestUnknown(e.detail) from None
    contentDigestHeaders(request, manifest.digest)
    if etagMatches(request, manifest.digest):
        request.setResponseCode(304)
        return None
    # distribution's pull event: GET and HEAD alike (not a 304), with the tag fetched by.
    eventsFor(api, request).manifestPulled(name, manifest, None if isDigest(reference) else reference)
    request.setHeader(b"Content-Type", (manifest.mediaType or OCI_MANIFEST).encode("utf-8"))
    request.setHeader(b"Content-Length", b"%d" % (manifest.size,))
    request.setResponseCode(200)
    if head:
        return None
    return bytes(manifest.content)


@endpoint(needs.push, write=True)
async def putManifest(api: RegistryAPI, request: IRequest, name: str, reference: str) -> bytes | None:
    """C{PUT}: validate and store a manifest; by digest, C{?tag=} may tag it too (C{OCI-Tag})."""
    manifests = api.registry.repository(name).manifests
    content = await readBody(request, MAX_MANIFEST_SIZE)
    if content is None:
        raise ManifestTooLarge({"limit": MAX_MANIFEST_SIZE})
    mediaType = normaliseMediaType(header(request, "Content-Type"))
    manifest, subject = await manifests.put(reference, mediaType, content)
    events = eventsFor(api, request)
    events.manifestPushed(name, manifest, None if isDigest(reference) else reference)

    tagged = []
    if isDigest(reference):
        for tag in queryArgs(request, "tag"):
            await manifests.put(tag, mediaType, content)
            # One push event per store, as distribution's listener sees each put.
            events.manifestPushed(name, manifest, tag)
            tagged.append(tag)

    location = externalURL(api, request, f"/v2/{name}/manifests/{manifest.digest}")
    request.setHeader(b"Location", location.encode("utf-8"))
    request.setHeader(b"Docker-Content-Digest", manifest.digest.encode("ascii"))
    if subject:
        request.setHeader(b"OCI-Subject", subject.encode("ascii"))
    if tagged:
        request.responseHeaders.setRawHeaders(b"OCI-Tag", [t.encode("ascii") for t in tagged])
    return emptyAnswer(request, 201)


@endpoint(needs.delete, write=True)
async def deleteManifest(api: RegistryAPI, request: IRequest, name: str, reference: str) -> bytes | None:
    """C{DELETE}: by digest the manifest (and its tags), by tag only the tag."""
    events = eventsFor(api, request)
    if not isDigest(reference):
        await api.registry.repository(name).manifests.delete(reference)
        events.tagDeleted(name, reference)
        return emptyAnswer(request, 202)
    # The delete removes the tags pointing at the manifest too; distribution sends an event
    # for each. Which they are is only looked up when someone listens.
    tags = await tagsPointingAt(api.registry, name, reference) if events.enabled else []
    await api.registry.repository(name).manifests.delete(reference)
    events.manifestDeleted(name, reference)
    for tag in tags:
        events.tagDeleted(name, tag)
    return emptyAnswer(request, 202)

"""
C{/v2/<name>/blobs/uploads/}: start an upload (resumable, monolithic, or a cross-repository
mount), send chunks, check progress, finish and cancel. Request bodies stream into the
core's L{IUpload.write}; nothing here holds a blob.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.answers import emptyAnswer
from registryd.api.base import contentLength, contentRange, endpoint, eventsFor, externalURL, header, queryArg
from registryd.api.state import UploadState, packState, unpackState
from registryd.registry.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    NameInvalid,
    NameUnknown,
    RangeInvalid,
    SizeInvalid,
)
from registryd.registry.names import checkDigest, isUploadID
from registryd.web.body import bodyStream

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI

log = Logger(namespace="registryd.api")


def uploadLocation(api: RegistryAPI, request: IRequest, name: str, upload: object) -> str:
    """The upload's URL with a freshly signed C{_state}."""
    startedAt = upload.startedAt
    state = UploadState(
        name=name,
        uuid=upload.uuid,
        offset=upload.size,
        startedAt=startedAt.isoformat() if hasattr(startedAt, "isoformat") else str(startedAt),
    )
    return externalURL(
        api,
        request,
        f"/v2/{name}/blobs/uploads/{upload.uuid}",
        {"_state": packState(api.settings.secret, state)},
    )


def _progressHeaders(api: RegistryAPI, request: IRequest, name: str, upload: object) -> None:
    # distribution's Range: "0-0" for an empty upload, else the offset of the last byte.
    end = max(upload.size - 1, 0)
    request.setHeader(b"Location", uploadLocation(api, request, name, upload).encode("utf-8"))
    request.setHeader(b"Range", b"0-%d" % (end,))
    request.setHeader(b"Docker-Upload-UUID", upload.uuid.encode("ascii"))


def _progress(api: RegistryAPI, request: IRequest, name: str, upload: object, status: int) -> None:
    _progressHeaders(api, request, name, upload)
    return emptyAnswer(request, status)


def _created(api: RegistryAPI, request: IRequest, name: str, digest: str) -> None:
    request.setHeader(b"Location", externalURL(api, request, f"/v2/{name}/blobs/{digest}").encode("utf-8"))
    request.setHeader(b"Docker-Content-Digest", digest.encode("ascii"))
    return emptyAnswer(request, 201)


async def _resume(
    api: RegistryAPI, request: IRequest, name: str, uuid: str, keepWriter: bool = False
) -> object:
    """The upload an upload URL names, after checking its C{_state} when it has one."""
    blobs = api.registry.repository(name).blobs
    if not isUploadID(uuid):
        raise BlobUploadUnknown({"uuid": uuid})
    token = queryArg(request, "_state")
    if token is not None:
        state = unpackState(api.settings.secret, token)
        if state.name != name or state.uuid != uuid:
            raise BlobUploadInvalid("upload state does not match this upload")
    return await blobs.resumeUpload(uuid, keepWriter)


async def _writeChunk(
    api: RegistryAPI, request: IRequest, name: str, upload: object, resumable: bool = False
) -> None:
    """
    Append the request body to the upload, checking its Content-Range (which must start
    where the upload ends) and Content-Length. Out of order → 416 with the progress headers.
    C{resumable}: more requests follow (a PATCH), so the running hash is saved for them.
    """
    try:
        chunkRange = contentRange(request)
        length = contentLength(request)
        start = None
        if chunkRange is not None:
            start, end = chunkRange
            if start != upload.size or end < start:
                raise RangeInvalid({"contentRange": header(request, "Content-Range"), "size": upload.size})
            if length is not None and length != end - start + 1:
                raise SizeInvalid({"contentRange": header(request, "Content-Range"), "contentLength": length})
        await upload.write(bodyStream(request), start, length, resumable=resumable)
    except RangeInvalid:
        _progressHeaders(api, request, name, upload)
        raise


@endpoint(needs.pushOrMount, write=True)
async def startUpload(api: RegistryAPI, request: IRequest, name: str) -> bytes | None:
    """C{POST}: mount (C{?mount=&from=}), a whole blob at once (C{?digest=}), or a new upload session."""
    blobs = api.registry.repository(name).blobs
    mount = queryArg(request, "mount")
    if mount is not None:
        source = queryArg(request, "from") or None
        try:
            descriptor = await blobs.mount(mount, source)
        except (BlobUnknown, NameInvalid, NameUnknown) as e:
            # The spec: a registry that cannot mount starts an upload session instead.
            log.debug("cannot mount {digest} into {name}: {error}", digest=mount, name=name, error=e)
        else:
            eventsFor(api, request).blobMounted(name, descriptor, source)
            return _created(api, request, name, descriptor.digest)

    digest = queryArg(request, "digest")
    if digest is not None:
        checkDigest(digest)
    upload = await blobs.createUpload()
    if digest is None:
        return _progress(api, request, name, upload, 202)

    # Monolithic: the body is the whole blob.
    try:
        await upload.write(bodyStream(request), None, contentLength(request))
        descriptor = await upload.commit(digest)
    except (Exception, CancelledError):
        await _discard(upload)
        raise
    eventsFor(api, request).blobPushed(name, descriptor)
    return _created(api, request, name, descriptor.digest)


async def _discard(upload: object) -> None:
    try:
        await upload.cancel()
    except BlobUploadUnknown:
        pass
    except Exception:
        log.failure("discarding a failed upload {uuid}", uuid=upload.uuid)


@endpoint(needs.push)
async def getUpload(api: RegistryAPI, request: IRequest, name: str, uuid: str) -> bytes | None:
    """C{GET}: how far the upload got (204 with Range)."""
    upload = await _resume(api, request, name, uuid)
    return _progress(api, request, name, upload, 204)


@endpoint(needs.push, write=True)
async def patchUpload(api: RegistryAPI, request: IRequest, name: str, uuid: str) -> bytes | None:
    """C{PATCH}: append a chunk (with or without Content-Range, or chunked transfer-encoding)."""
    upload = await _resume(api, request, name, uuid, keepWriter=True)
    try:
        await _writeChunk(api, request, name, upload, resumable=True)
    finally:
        await upload.release()
    return _progress(api, request, name, upload, 202)


@endpoint(needs.push, write=True)
async def finishUpload(api: RegistryAPI, request: IRequest, name: str, uuid: str) -> bytes | None:
    """C{PUT ?digest=}: append an optional last chunk, verify the digest, make the blob visible."""
    upload = await _resume(api, request, name, uuid)
    digest = queryArg(request, "digest")
    if not digest:
        raise DigestInvalid("digest missing")
    checkDigest(digest)
    if contentLength(request) != 0 or header(request, "Content-Range") is not None:
        await _writeChunk(api, request, name, upload)
    descriptor = await upload.commit(digest)
    eventsFor(api, request).blobPushed(name, descriptor)
    return _created(api, request, name, descriptor.digest)


@endpoint(needs.push, write=True)
async def cancelUpload(api: RegistryAPI, request: IRequest, name: str, uuid: str) -> bytes | None:
    """C{DELETE}: discard the upload."""
    upload = await _resume(api, request, name, uuid)
    await upload.cancel()
    return emptyAnswer(request, 204)

"""
The gcs driver: paths as objects in one Google Cloud Storage bucket, over the JSON API
(media downloads and uploads, resumable upload sessions, rewrite for moves) with OAuth2
bearer tokens, and V4 signed URLs for redirects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import treq
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers
from zope.interface import implementer

from registryd.storage.gcs.auth import ServiceAccount, TokenSource
from registryd.storage.gcs.streams import SIDECAR_SUFFIX, ResumableWriter, decodeSidecar
from registryd.storage.inmemory import FileInfo
from registryd.storage.interfaces import (
    IStorageDriver,
    PathNotFound,
    StorageDriverError,
)
from registryd.storage.objectstore import (
    ObjectStoreDriver,
    RootedNames,
    failWith,
    rootedDirectory,
    sendOverPool,
    streamBody,
)
from registryd.storage.paths import checkPath

NAME = "gcs"
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
DEFAULT_CHUNK_SIZE = 5 * 1024 * 1024
CHUNK_UNIT = 256 * 1024
_SIGNED_URL_LIFETIME = 20 * 60
_SAFE = "-_.~"


class _GCSError(Exception):
    """An unexpected answer from the storage service."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        super().__init__(status, body[:500])


def _modTime(stamp: str | None) -> float:
    """Seconds since the epoch of an RFC 3339 time from the JSON API."""
    if not stamp:
        return time.time()
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@implementer(IStorageDriver)
class GCSDriver(RootedNames, ObjectStoreDriver):
    """Paths are object names below an optional root directory in one bucket."""

    name = NAME
    log = Logger()

    def __init__(
        self,
        reactor: Any,
        bucket: str,
        account: ServiceAccount | None = None,
        anonymous: bool = False,
        rootDirectory: str = "",
        chunkSize: int = DEFAULT_CHUNK_SIZE,
        endpoint: str | None = None,
    ) -> None:
        self._reactor = reactor
        self.bucket = bucket
        self.account = account
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self._root = rootedDirectory(rootDirectory)
        self.chunkSize = chunkSize
        self._bucketURL = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}"
        self._uploadURL = f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        self._tokens = None if anonymous else TokenSource(reactor, self._pool, account)

    # -- names ---------------------------------------------------------------------------

    def _objectURL(self, name: str) -> str:
        return f"{self._bucketURL}/o/{quote(name, safe=_SAFE)}"

    # -- requests ------------------------------------------------------------------------

    async def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        """Send one authorized request; return the response with its body unread."""
        allHeaders = dict(headers or {})
        if self._tokens is not None:
            allHeaders["Authorization"] = "Bearer " + await self._tokens.token()
        if method in ("PUT", "POST") and not body:
            allHeaders["Content-Length"] = "0"
        return await sendOverPool(
            lambda: treq.request(
                method,
                url,
                headers=Headers({k.encode(): [v.encode()] for k, v in allHeaders.items()}),
                data=body if body else None,
                pool=self._pool,
                unbuffered=True,
                allow_redirects=False,
                reactor=self._reactor,
            )
        )

    async def _callURL(
        self,
        method: str,
        url: str,
        path: str | None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        expect: Iterable[int] = (200,),
    ) -> tuple[Any, bytes]:
        """A request whose answer is read whole; PathNotFound on 404, _GCSError unless expected."""
        response = await self._request(method, url, headers, body)
        content = await treq.content(response)
        if response.code in expect:
            return response, content
        if response.code == 404 and path is not None:
            raise PathNotFound(self.name, path)
        raise _GCSError(response.code, content)

    async def _upload(self, name: str, data: bytes, path: str) -> None:
        """Store an object in one media upload."""
        query = urlencode({"uploadType": "media", "name": name}, quote_via=quote, safe="")
        await self._callURL(
            "POST",
            f"{self._uploadURL}?{query}",
            path,
            headers={"Content-Type": "application/octet-stream"},
            body=data,
        )

    # -- resumable uploads (used by the writer) ------------------------------------------

    async def _startSession(self, path: str) -> str:
        """Open a resumable upload session for path; return its URI."""
        query = urlencode(
            {"uploadType": "resumable", "name": self._objectName(path)}, quote_via=quote, safe=""
        )
        response, _ = await self._callURL(
            "POST",
            f"{self._uploadURL}?{query}",
            None,
            headers={
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Type": "application/octet-stream",
            },
            body=b"{}",
        )
        location = response.headers.getRawHeaders(b"location")
        if not location:
            raise StorageDriverError(self.name, path, "no session URI in the answer")
        return location[0].decode()

    async def _putSidecar(self, path: str, content: bytes) -> None:
        await self._upload(self._objectName(path) + SIDECAR_SUFFIX, content, path)

    async def _getSidecar(self, path: str) -> bytes:
        url = self._objectURL(self._objectName(path) + SIDECAR_SUFFIX) + "?alt=media"
        _, content = await self._callURL("GET", url, path)
        return content

    async def _deleteSidecar(self, path: str) -> None:
        url = self._objectURL(self._objectName(path) + SIDECAR_SUFFIX)
        await self._callURL("DELETE", url, None, expect=(200, 204, 404))

    async def _abandon(self, path: str, session: str | None) -> None:
        """Cancel an upload session (if any) and forget the sidecar."""
        if session is not None:
            try:
                await self._callURL("DELETE", session, None, expect=(499, 200, 204, 404, 410))
            except _GCSError as e:
                self.log.warn("could not cancel upload session of {path}: {error}", path=path, error=e)
        await self._deleteSidecar(path)

    # -- operations ----------------------------------------------------------------------

    async def _getContent(self, path: str) -> bytes:
        self._checkObject(path)
        _, content = await self._callURL("GET", self._objectURL(self._objectName(path)) + "?alt=media", path)
        return content

    async def _putContent(self, path: str, data: bytes) -> None:
        self._checkObject(path)
        await self._upload(self._objectName(path), bytes(data), path)

    async def _reader(self, path: str, offset: int) -> Any:
        self._checkRead(path, offset)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = await self._request("GET", self._objectURL(self._objectName(path)) + "?alt=media", headers)
        if response.code == 200 and not offset or response.code == 206:
            return streamBody(response)
        content = await treq.content(response)
        if response.code == 404:
            raise PathNotFound(self.name, path)
        if response.code == 416:
            return await self._readPastEnd(path, offset)
        raise _GCSError(response.code, content)

    async def _writer(self, path: str, append: bool) -> ResumableWriter:
        self._checkObject(path)
        try:
            content = await self._getSidecar(path)
        except PathNotFound:
            if append:
                raise
            return ResumableWriter(self, path)
        try:
            session, sent, tail = decodeSidecar(content)
        except (ValueError, KeyError, TypeError):
            raise StorageDriverError(self.name, path, "unreadable upload state") from None
        if not append:
            await self._abandon(path, session)
            return ResumableWriter(self, path)
        return ResumableWriter(self, path, session, sent, tail, hasSidecar=True)

    async def _pages(self, prefix: str, delimiter: bool, pageSize: int = 1000) -> Any:
        """Yield (items, prefixes) page by page of a listing below prefix."""
        token = ""
        while True:
            query = {"prefix": prefix, "maxResults": str(pageSize)}
            if delimiter:
                query["delimiter"] = "/"
            if token:
                query["pageToken"] = token
            url = f"{self._bucketURL}/o?" + urlencode(query, quote_via=quote, safe="")
            _, content = await self._callURL("GET", url, None)
            answer = json.loads(content or b"{}")
            yield answer.get("items", []), answer.get("prefixes", [])
            token = answer.get("nextPageToken") or ""
            if not token:
                return

    async def _entries(self, path: str, delimiter: bool = True) -> list[FileInfo]:
        """The objects (and, with delimiter, the directories) below a directory path; no sidecars."""
        entries: list[FileInfo] = []
        now = time.time()
        async for items, prefixes in self._pages(self._prefix(path), delimiter):
            for item in items:
                name = item.get("name", "")
                if name.endswith(SIDECAR_SUFFIX):
                    continue
                entries.append(
                    FileInfo(
                        self._pathOf(name), int(item.get("size", 0)), _modTime(item.get("updated")), False
                    )
                )
            for prefix in prefixes:
                entries.append(FileInfo(self._pathOf(prefix.rstrip("/")), 0, now, True))
        entries.sort(key=lambda info: info.path)
        return entries

    async def _anyBelow(self, path: str) -> bool:
        """Whether some object (not a sidecar) lies below a directory path."""
        async for items, _ in self._pages(self._prefix(path), False, pageSize=100):
            if any(not item.get("name", "").endswith(SIDECAR_SUFFIX) for item in items):
                return True
        return False

    async def _stat(self, path: str) -> FileInfo:
        checkPath(self.name, path)
        if path == "/":
            return FileInfo(path, 0, time.time(), True)
        try:
            _, content = await self._callURL("GET", self._objectURL(self._objectName(path)), path)
        except PathNotFound:
            if await self._anyBelow(path):
                return FileInfo(path, 0, time.time(), True)
            raise
        item = json.loads(content)
        return FileInfo(path, int(item.get("size", 0)), _modTime(item.get("updated")), False)

    async def _move(self, sourcePath: str, destPath: str) -> None:
        checkPath(self.name, sourcePath)
        checkPath(self.name, destPath)
        if sourcePath == "/" or destPath == "/":
            raise PathNotFound(self.name, sourcePath)
        source = quote(self._objectName(sourcePath), safe=_SAFE)
        dest = quote(self._objectName(destPath), safe=_SAFE)
        url = f"{self._bucketURL}/o/{source}/rewriteTo/b/{quote(self.bucket, safe='')}/o/{dest}"
        token = ""
        # Rewrite copies large objects in several calls, each handing back a token to go on with.
        while True:
            call = url + ("?" + urlencode({"rewriteToken": token}, quote_via=quote, safe="") if token else "")
            _, content = await self._callURL(
                "POST", call, sourcePath, headers={"Content-Type": "application/json"}, body=b"{}"
            )
            answer = json.loads(content or b"{}")
            if answer.get("done", True):
                break
            token = answer.get("rewriteToken") or ""
            if not token:
                raise StorageDriverError(self.name, destPath, "rewrite neither done nor resumable")
        await self._callURL(
            "DELETE", self._objectURL(self._objectName(sourcePath)), sourcePath, expect=(200, 204)
        )

    async def _deleteObject(self, name: str) -> bool:
        """Delete one object; whether it was there."""
        response, _ = await self._callURL("DELETE", self._objectURL(name), None, expect=(200, 204, 404))
        return response.code != 404

    async def _delete(self, path: str) -> None:
        checkPath(self.name, path)
        deleted = False
        if path != "/":
            deleted = await self._deleteObject(self._objectName(path))
        names = []
        async for items, _ in self._pages(self._prefix(path), False):
            names += [item.get("name", "") for item in items]
        for name in names:
            if await self._deleteObject(name) and not name.endswith(SIDECAR_SUFFIX):
                deleted = True
        if not deleted:
            raise PathNotFound(self.name, path)

    def redirectURL(self, method: str, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
        except StorageDriverError as e:
            return Deferred.fromCoroutine(failWith(e))
        if self.account is None or method.upper() not in ("GET", "HEAD"):
            return succeed(None)
        url = self.account.signedURL(
            self.endpoint,
            self.bucket,
            self._objectName(path),
            method.upper(),
            _SIGNED_URL_LIFETIME,
            time.time(),
        )
        return succeed(url)

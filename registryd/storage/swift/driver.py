"""
The swift driver: paths as objects in one Swift container, below an optional prefix.

Layout in the container (P is the prefix, "" or "a/b/"):
  - P + "files" + path: the content (a plain object, or a DLO manifest for written content);
  - P + "segments/" + ID + "/" + 8-digit index: the segments of one writer session ID;
  - P + "writers" + path: a small record naming the session of a closed, uncommitted writer.

Why Dynamic Large Objects: a DLO manifest is one zero-byte object naming a segment prefix, so it
has no segment-count limit (an SLO allows 1000 segments by default, 5 GB at 5 MiB chunks), no
minimum segment size, and it can be copied by writing the same header elsewhere. Each session's
prefix is unique and its segments never change after commit, so listing-based assembly is safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from registryd.storage.inmemory import FileInfo
from registryd.storage.interfaces import (
    IStorageDriver,
    PathNotFound,
)
from registryd.storage.objectstore import ObjectStoreDriver, sendOverPool, streamBody
from registryd.storage.paths import checkPath
from registryd.storage.swift.auth import Credentials, authenticate
from registryd.storage.swift.streams import SegmentWriter

NAME = "swift"
DEFAULT_CHUNK_SIZE = 5 << 20
_TEMP_URL_LIFETIME = 20 * 60
#: A token this close to its expiry (seconds) is renewed before use rather than sent to be refused.
_TOKEN_RENEWAL_MARGIN = 60
_SAFE = "/-_.~"


class _SwiftError(Exception):
    """An unexpected answer from Swift."""

    def __init__(self, method: str, status: int, body: bytes) -> None:
        self.status = status
        super().__init__(method, status, body[:300])


@implementer(IPolicyForHTTPS)
class _NoVerification:
    """TLS without certificate checks (insecureskipverify)."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return CertificateOptions(verify=False)


def _header(response: Any, name: str) -> str:
    """One response header as text ("" when absent)."""
    return (response.headers.getRawHeaders(name.encode()) or [b""])[0].decode()


@implementer(IStorageDriver)
class SwiftDriver(ObjectStoreDriver):
    """Paths are objects below a prefix in one container."""

    name = NAME
    log = Logger()
    pageSize = 10000

    def __init__(
        self,
        reactor: Any,
        credentials: Credentials,
        container: str,
        prefix: str = "",
        chunkSize: int = DEFAULT_CHUNK_SIZE,
        secretKey: str = "",
        accessKey: str = "",
        insecureSkipVerify: bool = False,
        tempURLContainerKey: bool = False,
        tempURLMethods: Iterable[str] = ("GET", "HEAD"),
    ) -> None:
        self._reactor = reactor
        self.credentials = credentials
        self.container = container
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.chunkSize = chunkSize
        self.secretKey = secretKey
        self.accessKey = accessKey
        self.tempURLContainerKey = tempURLContainerKey
        self.tempURLMethods = {m.upper() for m in tempURLMethods}
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        policy = _NoVerification() if insecureSkipVerify else BrowserLikePolicyForHTTPS()
        self._client = HTTPClient(Agent(reactor, contextFactory=policy, pool=self._pool))
        self._token = ""
        self.storageURL = ""
        self._tenantID = ""
        #: When the token expires (POSIX time), if the auth service said.
        self.tokenExpires: float | None = None
        self._ready: Deferred | None = None

    # -- names ---------------------------------------------------------------------------

    def _file(self, path: str) -> str:
        """The object name holding a path's content."""
        return self._prefix + "files" + (path if path != "/" else "")

    def _filesPrefix(self, path: str) -> str:
        """The object name prefix of everything below a directory path."""
        return self._prefix + "files" + (path.rstrip("/") + "/" if path != "/" else "/")

    def _record(self, path: str) -> str:
        """The object name of a path's uncommitted-writer record."""
        return self._prefix + "writers" + path

    def segmentPrefix(self, session: str) -> str:
        """The object name prefix of one writer session's segments."""
        return f"{self._prefix}segments/{session}/"

    def _pathOf(self, name: str) -> str:
        """The storage path of an object name below the files prefix."""
        return name[len(self._prefix + "files") :].rstrip("/")

    # -- requests ------------------------------------------------------------------------

    async def _login(self) -> None:
        """Authenticate, create the container, and set the temp URL key when one is configured."""
        login = await authenticate(self._client, self.credentials)
        self._token, self._tenantID, self.tokenExpires = login.token, login.tenantID, login.expires
        self.storageURL = login.storageURL.rstrip("/")
        response = await self._send("PUT", self._containerURL(), {})
        await treq.content(response)
        if response.code not in (201, 202, 204):
            raise _SwiftError("PUT container", response.code, b"")
        if self.secretKey:
            if self.tempURLContainerKey:
                url, header = self._containerURL(), "X-Container-Meta-Temp-URL-Key"
            else:
                url, header = self.storageURL, "X-Account-Meta-Temp-URL-Key"
            response = await self._send("POST", url, {header: self.secretKey})
            await treq.content(response)
            if response.code not in (200, 202, 204):
                raise _SwiftError("POST temp URL key", response.code, b"")

    async def _ensureReady(self) -> None:
        """Log in once (again after a failure, or when the token expires within a minute)."""
        if (
            self._ready is not None
            and self._ready.called
            and self.tokenExpires is not None
            and self._reactor.seconds() > self.tokenExpires - _TOKEN_RENEWAL_MARGIN
        ):
            self._ready = None
        if self._ready is None:
            self._ready = Deferred.fromCoroutine(self._login())

            def failed(failure: Failure) -> Failure:
                self._ready = None
                return failure

            self._ready.addErrback(failed)
        waiting: Deferred = Deferred()
        self._ready.addBoth(lambda result: (waiting.callback(result), None)[1])
        result = await waiting
        if isinstance(result, Failure):
            result.raiseException()

    def _containerURL(self) -> str:
        return f"{self.storageURL}/{quote(self.container, safe='')}"

    def _objectURL(self, name: str) -> str:
        return f"{self._containerURL()}/{quote(name, safe=_SAFE)}"

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> Deferred:
        allHeaders = {"X-Auth-Token": self._token, **headers}
        return Deferred.fromCoroutine(
            sendOverPool(
                lambda: self._client.request(
                    method,
                    url,
                    headers=Headers({k.encode(): [v.encode()] for k, v in allHeaders.items()}),
                    data=body,
                    unbuffered=True,
                )
            )
        )

    async def request(
        self,
        method: str,
        name: str | None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Any:
        """Send one request for an object (or the container when name is None), logging in again on 401."""
        await self._ensureReady()
        for attempt in (1, 2):
            url = self._containerURL() if name is None else self._objectURL(name)
            if query:
                url += "?" + urlencode(query, quote_via=quote, safe="")
            sent = self._token
            response = await self._send(method, url, dict(headers or {}), body)
            if response.code != 401 or attempt == 2:
                return response
            await treq.content(response)
            # Requests refused together share one new login: only the first to see the refused
            # token still in use starts it; the others wait for it or already have a new token.
            if self._token == sent and self._ready is not None and self._ready.called:
                self._ready = None
            await self._ensureReady()
        raise AssertionError("unreachable")

    async def call(
        self,
        method: str,
        name: str | None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        expect: Iterable[int] = (200, 201, 202, 204),
        path: str | None = None,
    ) -> tuple[Any, bytes]:
        """A request whose answer is read whole; PathNotFound(path) on 404, _SwiftError unless expected."""
        response = await self.request(method, name, query, headers, body)
        content = await treq.content(response)
        if response.code in expect:
            return response, content
        if response.code == 404:
            raise PathNotFound(self.name, path)
        raise _SwiftError(method, response.code, content)

    async def listNames(
        self, prefix: str, delimiter: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The container listing entries below a name prefix, following markers across pages."""
        entries: list[dict[str, Any]] = []
        marker = ""
        while True:
            query = {"format": "json", "prefix": prefix, "limit": str(limit or self.pageSize)}
            if delimiter:
                query["delimiter"] = "/"
            if marker:
                query["marker"] = marker
            _, content = await self.call("GET", None, query=query, expect=(200, 204))
            page = json.loads(content) if content else []
            entries += page
            if not page or len(page) < int(query["limit"]) or limit is not None:
                return entries
            last = page[-1]
            marker = last.get("name") or last.get("subdir") or ""

    async def deleteNames(self, names: Iterable[str]) -> None:
        """Delete objects, ignoring those already gone."""
        for name in names:
            await self.call("DELETE", name, expect=(204, 404))

    async def deleteSegments(self, session: str) -> None:
        """Delete every segment of a writer session."""
        entries = await self.listNames(self.segmentPrefix(session))
        await self.deleteNames(entry["name"] for entry in entries)

    def _sessionOf(self, response: Any) -> str | None:
        """The writer session a DLO manifest's X-Object-Manifest header names, if it is ours."""
        manifest = _header(response, "X-Object-Manifest")
        ours = f"{self.container}/{self._prefix}segments/"
        if manifest.startswith(ours):
            return manifest[len(ours) :].rstrip("/")
        return None

    async def _manifestSession(self, name: str) -> str | None:
        """The session of the manifest at an object name, None if absent or not a manifest."""
        response = await self.request("HEAD", name)
        await treq.content(response)
        return self._sessionOf(response) if response.code in (200, 204) else None

    # -- operations ----------------------------------------------------------------------

    async def _getContent(self, path: str) -> bytes:
        self._checkObject(path)
        _, content = await self.call("GET", self._file(path), expect=(200,), path=path)
        return content

    async def _putContent(self, path: str, data: bytes) -> None:
        self._checkObject(path)
        await self.call("PUT", self._file(path), body=bytes(data), expect=(201,), path=path)

    async def _reader(self, path: str, offset: int) -> Any:
        self._checkRead(path, offset)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = await self.request("GET", self._file(path), headers=headers)
        if response.code in (200, 206):
            return streamBody(response)
        await treq.content(response)
        if response.code == 404:
            raise PathNotFound(self.name, path)
        if response.code == 416:
            return await self._readPastEnd(path, offset)
        raise _SwiftError("GET", response.code, b"")

    async def _writer(self, path: str, append: bool) -> SegmentWriter:
        self._checkObject(path)
        record = self._record(path)
        try:
            _, content = await self.call("GET", record, expect=(200,), path=path)
            session: str | None = content.decode().strip()
        except PathNotFound:
            session = None
        if not append:
            if session:
                await self.deleteSegments(session)
                await self.call("DELETE", record, expect=(204, 404))
            return SegmentWriter(self, path, uuid.uuid4().hex, [])
        if not session:
            raise PathNotFound(self.name, path)
        segments = []
        for entry in await self.listNames(self.segmentPrefix(session)):
            index = entry["name"].rsplit("/", 1)[-1]
            if index.isdigit() and int(index) == len(segments):
                segments.append(int(entry["bytes"]))
        return SegmentWriter(self, path, session, segments)

    async def saveRecord(self, path: str, session: str) -> None:
        """Remember the session of a closed writer, for a later writer to resume."""
        await self.call("PUT", self._record(path), body=session.encode(), expect=(201,))

    async def dropRecord(self, path: str) -> None:
        """Forget a path's uncommitted writer."""
        await self.call("DELETE", self._record(path), expect=(204, 404))

    async def commitManifest(self, path: str, session: str | None) -> None:
        """Make a session's segments (or, with None, nothing) the content at path."""
        name = self._file(path)
        previous = await self._manifestSession(name)
        if session is None:
            await self.call("PUT", name, body=b"", expect=(201,))
        else:
            manifest = f"{self.container}/{self.segmentPrefix(session)}"
            await self.call("PUT", name, headers={"X-Object-Manifest": manifest}, body=b"", expect=(201,))
        if previous and previous != session:
            await self.deleteSegments(previous)

    def _info(self, path: str, response: Any) -> FileInfo:
        size = int(_header(response, "Content-Length") or 0)
        modified = _header(response, "Last-Modified")
        modTime = parsedate_to_datetime(modified).timestamp() if modified else time.time()
        return FileInfo(path, size, modTime, False)

    async def _stat(self, path: str) -> FileInfo:
        checkPath(self.name, path)
        if path == "/":
            return FileInfo(path, 0, time.time(), True)
        response = await self.request("HEAD", self._file(path))
        await treq.content(response)
        if response.code in (200, 204):
            return self._info(path, response)
        if response.code != 404:
            raise _SwiftError("HEAD", response.code, b"")
        if await self.listNames(self._filesPrefix(path), limit=1):
            return FileInfo(path, 0, time.time(), True)
        raise PathNotFound(self.name, path)

    async def _entries(self, path: str, exactSizes: bool = False) -> list[FileInfo]:
        """The files and directories directly below a directory path."""
        now = time.time()
        infos = []
        for entry in await self.listNames(self._filesPrefix(path), delimiter=True):
            if "subdir" in entry:
                infos.append(FileInfo(self._pathOf(entry["subdir"]), 0, now, True))
                continue
            childPath = self._pathOf(entry["name"])
            if exactSizes and entry.get("bytes") == 0:
                infos.append(await self._stat(childPath))  # a manifest lists as zero bytes
                continue
            modified = entry.get("last_modified")
            try:
                modTime = datetime.fromisoformat(modified).replace(tzinfo=UTC).timestamp()
            except (TypeError, ValueError):
                modTime = now
            infos.append(FileInfo(childPath, int(entry.get("bytes", 0)), modTime, False))
        infos.sort(key=lambda info: info.path)
        return infos

    async def _move(self, sourcePath: str, destPath: str) -> None:
        checkPath(self.name, sourcePath)
        checkPath(self.name, destPath)
        if sourcePath == "/" or destPath == "/":
            raise PathNotFound(self.name, sourcePath)
        source, dest = self._file(sourcePath), self._file(destPath)
        response = await self.request("HEAD", source)
        await treq.content(response)
        if response.code == 404:
            raise PathNotFound(self.name, sourcePath)
        if response.code not in (200, 204):
            raise _SwiftError("HEAD", response.code, b"")
        if sourcePath == destPath:
            return
        previous = await self._manifestSession(dest)
        session = self._sessionOf(response)
        if session is not None:
            # A manifest is copied by writing the same manifest header at the destination.
            manifest = _header(response, "X-Object-Manifest")
            await self.call("PUT", dest, headers={"X-Object-Manifest": manifest}, body=b"", expect=(201,))
        else:
            copyFrom = quote(f"/{self.container}/{source}", safe=_SAFE)
            await self.call("PUT", dest, headers={"X-Copy-From": copyFrom}, body=b"", expect=(201,))
        await self.call("DELETE", source, expect=(204, 404))
        if previous and previous != session:
            await self.deleteSegments(previous)

    async def _deleteFile(self, name: str) -> bool:
        """Delete one content object and, for a manifest, its segments; False if it was absent."""
        session = await self._manifestSession(name)
        response, _ = await self.call("DELETE", name, expect=(204, 404))
        if session:
            await self.deleteSegments(session)
        return response.code == 204

    async def _delete(self, path: str) -> None:
        checkPath(self.name, path)
        deleted = False
        if path != "/":
            deleted = await self._deleteFile(self._file(path))
        for entry in await self.listNames(self._filesPrefix(path)):
            deleted = await self._deleteFile(entry["name"]) or deleted
        for entry in await self.listNames(self._prefix + "writers" + (path if path != "/" else "")):
            name = entry["name"]
            recordPath = name[len(self._prefix + "writers") :]
            if recordPath == path or recordPath.startswith(path.rstrip("/") + "/"):
                _, content = await self.call("GET", name, expect=(200, 404))
                if content:
                    await self.deleteSegments(content.decode().strip())
                await self.call("DELETE", name, expect=(204, 404))
        if not deleted:
            raise PathNotFound(self.name, path)

    def tempURL(self, method: str, path: str, lifetime: int = _TEMP_URL_LIFETIME) -> str:
        """A temporary URL allowing method on one object until it expires."""
        url = self._objectURL(self._file(path))
        expires = int(time.time()) + lifetime
        signed = f"{method}\n{expires}\n{urlsplit(url).path}"
        signature = hmac.new(self.secretKey.encode(), signed.encode(), hashlib.sha1).hexdigest()
        if self.accessKey:
            signature = f"{self._tenantID}:{self.accessKey}:{signature}"
        query = urlencode({"temp_url_sig": signature, "temp_url_expires": str(expires)})
        return f"{url}?{query}"

    async def _redirectURL(self, method: str, path: str) -> str | None:
        checkPath(self.name, path)
        method = method.upper()
        if not self.secretKey or method not in ("GET", "HEAD") or method not in self.tempURLMethods:
            return None
        await self._ensureReady()
        return self.tempURL("GET" if "GET" in self.tempURLMethods else method, path)

    def redirectURL(self, method: str, path: str) -> Deferred:
        return self._wrap(self._redirectURL(method, path))

    async def _walkEntries(self, path: str) -> list[FileInfo]:
        """Walk visits entries with the sizes of manifests looked up."""
        return await self._entries(path, exactSizes=True)

"""
The azure driver: paths as block blobs in one container, over the Blob service REST API
with Shared Key authorization or Entra ID bearer tokens (Azure itself, or Azurite).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

import treq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.http_headers import Headers
from zope.interface import implementer

from registryd.storage.azure.credentials import BearerToken, Credential
from registryd.storage.azure.streams import BlockWriter, blockIndex
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

NAME = "azure"
API_VERSION = "2021-08-06"
DEFAULT_REALM = "core.windows.net"
DEFAULT_CHUNK_SIZE = 4 << 20
_SAS_LIFETIME = 20 * 60
# A user delegation key (bearer credentials) signs SAS URLs for this long, renewed when a
# URL signed now would outlive it.
_DELEGATION_KEY_LIFETIME = 6 * 3600


class _AzureError(Exception):
    """An unexpected answer from the Blob service."""

    def __init__(self, status: int, code: str, body: bytes) -> None:
        self.status = status
        self.code = code
        super().__init__(status, code, body[:500])


@implementer(IStorageDriver)
class AzureDriver(RootedNames, ObjectStoreDriver):
    """Paths are blob names below an optional root directory in one container."""

    name = NAME
    log = Logger()
    _blobName = RootedNames._objectName

    def __init__(
        self,
        reactor: Any,
        accountName: str,
        accountKey: str | None,
        container: str,
        serviceURL: str | None = None,
        realm: str = DEFAULT_REALM,
        rootDirectory: str = "",
        maxRetries: int = 5,
        retryDelay: float = 0.1,
        chunkSize: int = DEFAULT_CHUNK_SIZE,
        credential: Credential | None = None,
        tlsPolicy: Any = None,
    ) -> None:
        self._reactor = reactor
        self.accountName = accountName
        # Shared Key signs with the account key; Entra ID credentials send bearer tokens instead.
        self._key = base64.b64decode(accountKey) if accountKey is not None else None
        self.container = container
        serviceURL = (serviceURL or f"https://{accountName}.blob.{realm}").rstrip("/")
        self.serviceURL = serviceURL
        self.containerURL = f"{serviceURL}/{container}"
        self._containerPath = urlsplit(self.containerURL).path
        self._root = rootedDirectory(rootDirectory)
        self.maxRetries = maxRetries
        self.retryDelay = retryDelay
        self.chunkSize = chunkSize
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        self._agent = Agent(reactor, contextFactory=tlsPolicy or BrowserLikePolicyForHTTPS(), pool=self._pool)
        self._bearer = BearerToken(reactor, self._agent, credential) if credential is not None else None
        self._delegationKey: dict[str, str] | None = None
        self._containerReady: Deferred | None = None

    # -- requests ------------------------------------------------------------------------

    def _sign(self, method: str, urlPath: str, query: dict[str, str], headers: dict[str, str]) -> str:
        """The Shared Key Authorization header for a request."""
        assert self._key is not None
        lowered = {k.lower(): v for k, v in headers.items()}
        length = lowered.get("content-length", "")
        standard = [
            method,
            lowered.get("content-encoding", ""),
            lowered.get("content-language", ""),
            "" if length == "0" else length,
            lowered.get("content-md5", ""),
            lowered.get("content-type", ""),
            "",  # Date: x-ms-date is sent instead
            lowered.get("if-modified-since", ""),
            lowered.get("if-match", ""),
            lowered.get("if-none-match", ""),
            lowered.get("if-unmodified-since", ""),
            lowered.get("range", ""),
        ]
        canonicalHeaders = [f"{k}:{lowered[k].strip()}" for k in sorted(lowered) if k.startswith("x-ms-")]
        resource = f"/{self.accountName}{urlPath}"
        for key in sorted(query, key=str.lower):
            resource += f"\n{key.lower()}:{query[key]}"
        toSign = "\n".join([*standard, *canonicalHeaders, resource])
        signature = base64.b64encode(hmac.new(self._key, toSign.encode(), hashlib.sha256).digest()).decode()
        return f"SharedKey {self.accountName}:{signature}"

    async def _request(
        self,
        method: str,
        blobName: str | None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        ensureContainer: bool = True,
    ) -> Any:
        """Send one signed request to the container (blobName None) or a blob; return the response."""
        if ensureContainer and self._containerReady is None:
            self._containerReady = Deferred.fromCoroutine(self._ensureContainer())
        if ensureContainer and not self._containerReady.called:
            await _waitFor(self._containerReady)
        query = dict(query or {})
        urlPath = self._containerPath + ("/" + quote(blobName, safe="/-_.~") if blobName is not None else "")
        url = self.containerURL.rsplit(self._containerPath, 1)[0] + urlPath
        if query:
            url += "?" + urlencode(query, quote_via=quote, safe="")
        allHeaders = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
            **(headers or {}),
        }
        if method in ("PUT", "POST") or body:
            allHeaders["Content-Length"] = str(len(body))
        if self._bearer is not None:
            allHeaders["Authorization"] = await self._bearer.authorization()
        else:
            allHeaders["Authorization"] = self._sign(method, urlPath, query, allHeaders)
        sent = {k: v for k, v in allHeaders.items() if k != "Content-Length"}
        return await sendOverPool(
            lambda: treq.request(
                method,
                url,
                headers=Headers({k.encode(): [v.encode()] for k, v in sent.items()}),
                data=body if body else None,
                agent=self._agent,
                unbuffered=True,
                reactor=self._reactor,
            )
        )

    async def _call(
        self,
        method: str,
        path: str | None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        expect: Iterable[int] = (200,),
    ) -> tuple[Any, bytes]:
        """A request whose answer is read whole; PathNotFound on 404, _AzureError unless expected."""
        blobName = self._objectName(path) if path is not None else None
        response = await self._request(method, blobName, query, headers, body)
        content = await treq.content(response)
        if response.code in expect:
            return response, content
        code = (response.headers.getRawHeaders(b"x-ms-error-code") or [b""])[0].decode()
        if response.code == 404 and path is not None:
            raise PathNotFound(self.name, path)
        raise _AzureError(response.code, code, content)

    async def _ensureContainer(self) -> None:
        """Create the container unless it exists (once per driver; a failure is logged, not raised)."""
        try:
            response = await self._request("PUT", None, {"restype": "container"}, ensureContainer=False)
            await treq.content(response)
        except Exception:
            self.log.failure("could not create container {container}", container=self.container)
            self._containerReady = None
            return
        if response.code not in (201, 409):
            self.log.warn(
                "could not create container {container}: HTTP {code}",
                container=self.container,
                code=response.code,
            )

    # -- operations ----------------------------------------------------------------------

    async def _getContent(self, path: str) -> bytes:
        self._checkObject(path)
        _, content = await self._call("GET", path)
        return content

    async def _putContent(self, path: str, data: bytes) -> None:
        self._checkObject(path)
        await self._call(
            "PUT", path, headers={"x-ms-blob-type": "BlockBlob"}, body=bytes(data), expect=(201,)
        )

    async def _reader(self, path: str, offset: int) -> Any:
        self._checkRead(path, offset)
        headers = {"x-ms-range": f"bytes={offset}-"} if offset else {}
        response = await self._request("GET", self._objectName(path), headers=headers)
        if response.code in (200, 206):
            return streamBody(response)
        await treq.content(response)
        if response.code == 404:
            raise PathNotFound(self.name, path)
        if response.code == 416:
            return await self._readPastEnd(path, offset)
        raise _AzureError(response.code, "", b"")

    async def _blockList(self, path: str) -> tuple[list[str], list[tuple[str, int]]]:
        """The committed block IDs and the uncommitted (ID, size) pairs of a blob; PathNotFound."""
        _, content = await self._call("GET", path, query={"comp": "blocklist", "blocklisttype": "all"})
        root = ElementTree.fromstring(content)
        committed = [b.findtext("Name") or "" for b in root.iterfind("CommittedBlocks/Block")]
        uncommitted = [
            (b.findtext("Name") or "", int(b.findtext("Size") or 0))
            for b in root.iterfind("UncommittedBlocks/Block")
        ]
        return committed, uncommitted

    async def _discardUncommitted(self, path: str) -> None:
        """Drop the blocks staged at path without touching committed content."""
        try:
            committed, uncommitted = await self._blockList(path)
        except PathNotFound:
            return
        if not uncommitted:
            return
        if committed:
            # Recommitting the same blocks keeps the content and garbage-collects the staged ones.
            body = "".join(f"<Committed>{b}</Committed>" for b in committed)
            xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
            await self._call("PUT", path, query={"comp": "blocklist"}, body=xml, expect=(201,))
            return
        try:
            # Content put whole (no blocks): putting it again drops the staged blocks.
            content = await self._getContent(path)
        except PathNotFound:
            await self._putContent(path, b"")
            await self._call("DELETE", path, expect=(202,))
            return
        await self._putContent(path, content)

    async def _writer(self, path: str, append: bool) -> BlockWriter:
        self._checkObject(path)
        if not append:
            await self._discardUncommitted(path)
            return BlockWriter(self, path, [])
        try:
            _, uncommitted = await self._blockList(path)
        except PathNotFound:
            uncommitted = []
        ordered = sorted(
            (i, blockID, size) for blockID, size in uncommitted if (i := blockIndex(blockID)) is not None
        )
        blocks = []
        for expected, (index, blockID, size) in enumerate(ordered):
            if index != expected:
                break
            blocks.append((blockID, size))
        if not blocks:
            raise PathNotFound(self.name, path)
        return BlockWriter(self, path, blocks)

    async def _entries(self, path: str, delimiter: bool = True, limit: int | None = None) -> list[FileInfo]:
        """The blobs (and, with delimiter, the directories) directly below a directory path."""
        prefix = self._prefix(path)
        entries: list[FileInfo] = []
        marker = ""
        now = time.time()
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if delimiter:
                query["delimiter"] = "/"
            if marker:
                query["marker"] = marker
            if limit is not None:
                query["maxresults"] = str(limit)
            _, content = await self._call("GET", None, query=query)
            root = ElementTree.fromstring(content)
            for blob in root.iterfind("Blobs/Blob"):
                name = blob.findtext("Name") or ""
                size = int(blob.findtext("Properties/Content-Length") or 0)
                modified = blob.findtext("Properties/Last-Modified")
                modTime = parsedate_to_datetime(modified).timestamp() if modified else now
                entries.append(FileInfo(self._pathOf(name), size, modTime, False))
            for blobPrefix in root.iterfind("Blobs/BlobPrefix"):
                name = (blobPrefix.findtext("Name") or "").rstrip("/")
                entries.append(FileInfo(self._pathOf(name), 0, now, True))
            marker = root.findtext("NextMarker") or ""
            if not marker or (limit is not None and entries):
                break
        entries.sort(key=lambda info: info.path)
        return entries

    async def _stat(self, path: str) -> FileInfo:
        checkPath(self.name, path)
        if path == "/":
            return FileInfo(path, 0, time.time(), True)
        try:
            response, _ = await self._call("HEAD", path)
        except PathNotFound:
            if await self._entries(path, delimiter=False, limit=1):
                return FileInfo(path, 0, time.time(), True)
            raise
        size = int((response.headers.getRawHeaders(b"content-length") or [b"0"])[0])
        modified = (response.headers.getRawHeaders(b"last-modified") or [b""])[0].decode()
        modTime = parsedate_to_datetime(modified).timestamp() if modified else time.time()
        return FileInfo(path, size, modTime, False)

    async def _move(self, sourcePath: str, destPath: str) -> None:
        checkPath(self.name, sourcePath)
        checkPath(self.name, destPath)
        if sourcePath == "/" or destPath == "/":
            raise PathNotFound(self.name, sourcePath)
        await self._stat(sourcePath)  # PathNotFound before anything is written
        source = self.containerURL + "/" + quote(self._objectName(sourcePath), safe="/-_.~")
        try:
            response, _ = await self._call(
                "PUT", destPath, headers={"x-ms-copy-source": source}, expect=(202, 201)
            )
        except PathNotFound:
            raise PathNotFound(self.name, sourcePath) from None
        status = (response.headers.getRawHeaders(b"x-ms-copy-status") or [b"success"])[0].decode()
        attempt = 0
        while status == "pending":
            attempt += 1
            if self.maxRetries < 0 or attempt > self.maxRetries:
                raise StorageDriverError(self.name, destPath, "copy did not complete in time")
            await deferLater(self._reactor, self.retryDelay * attempt, lambda: None)
            response, _ = await self._call("HEAD", destPath)
            status = (response.headers.getRawHeaders(b"x-ms-copy-status") or [b"success"])[0].decode()
        if status != "success":
            raise StorageDriverError(self.name, destPath, f"copy ended with status {status}")
        await self._call("DELETE", sourcePath, expect=(202,))

    async def _delete(self, path: str) -> None:
        checkPath(self.name, path)
        deleted = False
        if path != "/":
            try:
                await self._call("DELETE", path, expect=(202,))
                deleted = True
            except PathNotFound:
                pass
        for info in await self._entries(path, delimiter=False):
            try:
                await self._call("DELETE", info.path, expect=(202,))
                deleted = True
            except PathNotFound:
                pass
        if not deleted:
            raise PathNotFound(self.name, path)

    async def _userDelegationKey(self, notAfter: float) -> dict[str, str]:
        """A user delegation key valid past C{notAfter} (Get User Delegation Key, kept until then)."""
        key = self._delegationKey
        if key is not None and float(key["expires"]) > notAfter:
            return key
        now = time.time()
        start, expiry = _isoTime(now - 300), _isoTime(now + _DELEGATION_KEY_LIFETIME)
        keyInfo = f"<KeyInfo><Start>{start}</Start><Expiry>{expiry}</Expiry></KeyInfo>"
        body = f'<?xml version="1.0" encoding="utf-8"?>{keyInfo}'
        assert self._bearer is not None
        headers = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
            "Authorization": await self._bearer.authorization(),
        }
        response = await treq.post(
            f"{self.serviceURL}/?restype=service&comp=userdelegationkey",
            data=body.encode(),
            headers=Headers({k.encode(): [v.encode()] for k, v in headers.items()}),
            agent=self._agent,
            reactor=self._reactor,
        )
        content = await treq.content(response)
        if response.code != 200:
            code = (response.headers.getRawHeaders(b"x-ms-error-code") or [b""])[0].decode()
            raise _AzureError(response.code, code, content)
        root = ElementTree.fromstring(content)
        fields = (
            "SignedOid",
            "SignedTid",
            "SignedStart",
            "SignedExpiry",
            "SignedService",
            "SignedVersion",
            "Value",
        )
        key = {name: root.findtext(name) or "" for name in fields}
        key["expires"] = str(now + _DELEGATION_KEY_LIFETIME)
        self._delegationKey = key
        return key

    async def _sasURL(self, path: str) -> str:
        """
        A SAS URL allowing reads of one blob for a while: a service SAS signed with the account
        key, or with bearer credentials a user delegation SAS signed with a user delegation key.
        """
        blobName = self._objectName(path)
        expires = time.time() + _SAS_LIFETIME
        expiry = _isoTime(expires)
        resource = f"/blob/{self.accountName}/{self.container}/{blobName}"
        query = {"sv": API_VERSION, "se": expiry, "sr": "b", "sp": "r"}
        if self._key is not None:
            fields = ["r", "", expiry, resource, "", "", "", API_VERSION, "b", "", "", "", "", "", "", ""]
            signingKey = self._key
        else:
            key = await self._userDelegationKey(expires)
            delegation = {
                "skoid": key["SignedOid"],
                "sktid": key["SignedTid"],
                "skt": key["SignedStart"],
                "ske": key["SignedExpiry"],
                "sks": key["SignedService"],
                "skv": key["SignedVersion"],
            }
            # Version 2020-12-06 and later: the key's fields, then three unused principal fields.
            fields = ["r", "", expiry, resource, *delegation.values(), "", "", "", "", "", API_VERSION, "b"]
            fields += ["", "", "", "", "", "", ""]
            query.update(delegation)
            signingKey = base64.b64decode(key["Value"])
        toSign = "\n".join(fields)
        query["sig"] = base64.b64encode(
            hmac.new(signingKey, toSign.encode(), hashlib.sha256).digest()
        ).decode()
        encoded = urlencode(query, quote_via=quote, safe="")
        return f"{self.containerURL}/{quote(blobName, safe='/-_.~')}?{encoded}"

    def redirectURL(self, method: str, path: str) -> Deferred:
        try:
            checkPath(self.name, path)
        except StorageDriverError as e:
            return Deferred.fromCoroutine(failWith(e))
        if method.upper() not in ("GET", "HEAD"):
            return succeed(None)
        return self._wrap(self._sasURL(path))


def _isoTime(seconds: float) -> str:
    """An instant as the service's SAS times (ISO 8601, UTC, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def _waitFor(shared: Deferred) -> None:
    """Wait for a Deferred others wait on too, without taking its result from them."""
    waiting: Deferred = Deferred()
    shared.addBoth(lambda result: (waiting.callback(None), result)[1])
    await waiting

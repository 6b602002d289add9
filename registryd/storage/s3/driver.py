"""The s3 storage driver: registry paths as keys in one bucket, under an optional root prefix."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults, succeed
from zope.interface import implementer

from registryd.storage.inmemory import FileInfo
from registryd.storage.interfaces import (
    SKIP_DIR,
    InvalidOffset,
    IStorageDriver,
    PathNotFound,
)
from registryd.storage.paths import checkPath
from registryd.storage.s3.client import S3Client, S3Error, contentMD5, parseXML, text
from registryd.storage.s3.config import MAX_PART_SIZE, S3Settings
from registryd.storage.s3.streams import BodyReader, EmptyReader, MultipartWriter, Part
from registryd.storage.s3.streams import partSize as _partSize

#: DeleteObjects takes at most this many keys a request.
_DELETE_BATCH = 1000


def _timestamp(value: str) -> float:
    """Seconds since the epoch from an S3 ISO 8601 (listings) or HTTP date (HEAD)."""
    if not value:
        return time.time()
    if "," in value:
        return email.utils.parsedate_to_datetime(value).timestamp()
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@implementer(IStorageDriver)
class S3Driver:
    """Content as objects in an S3 bucket; directories are key prefixes."""

    def __init__(self, settings: S3Settings, client: S3Client) -> None:
        self.name = settings.name
        self.settings = settings
        self.client = client

    def close(self) -> Deferred:
        """Release kept-alive connections. @return: Deferred firing None."""
        return self.client.close()

    # -- keys ------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        checkPath(self.name, path)
        root = self.settings.rootDirectory
        if path == "/":
            return root + "/" if root else ""
        return (root + path) if root else path[1:]

    def _dirPrefix(self, path: str) -> str:
        """The prefix of every key below path."""
        key = self._key(path)
        return key if path == "/" else key + "/"

    def _path(self, key: str) -> str:
        root = self.settings.rootDirectory
        return key[len(root) :] if root else "/" + key

    def _objectHeaders(self) -> dict[str, str]:
        headers = {"Content-Type": "application/octet-stream"}
        if self.settings.storageClass != "NONE":
            headers["x-amz-storage-class"] = self.settings.storageClass
        headers["x-amz-acl"] = self.settings.objectACL
        if self.settings.encrypt:
            if self.settings.keyID:
                headers["x-amz-server-side-encryption"] = "aws:kms"
                headers["x-amz-server-side-encryption-aws-kms-key-id"] = self.settings.keyID
            else:
                headers["x-amz-server-side-encryption"] = "AES256"
        return headers

    # -- object operations the writer uses ---------------------------------------------------

    async def putObject(self, key: str, data: bytes, path: str) -> None:
        """PutObject."""
        await self.client.send("PUT", key, headers=self._objectHeaders(), body=data, path=path)

    async def createMultipartUpload(self, key: str, path: str) -> str:
        """CreateMultipartUpload; the upload id."""
        response = await self.client.send(
            "POST", key, {"uploads": ""}, headers=self._objectHeaders(), path=path
        )
        return text(parseXML(response.body), "UploadId")

    async def uploadPart(self, key: str, uploadID: str, number: int, data: bytes, path: str) -> str:
        """UploadPart; the part's ETag."""
        query = {"partNumber": number, "uploadId": uploadID}
        response = await self.client.send("PUT", key, query, body=data, path=path)
        return response.headers.get("etag", "")

    async def completeMultipartUpload(self, key: str, uploadID: str, parts: list[Part], path: str) -> None:
        """CompleteMultipartUpload (which may fail inside a 200 answer)."""
        body = "<CompleteMultipartUpload>"
        for part in parts:
            body += f"<Part><PartNumber>{part.number}</PartNumber><ETag>{escape(part.etag)}</ETag></Part>"
        body += "</CompleteMultipartUpload>"
        response = await self.client.send("POST", key, {"uploadId": uploadID}, body=body.encode(), path=path)
        self._raiseEmbeddedError(response.body, path)

    def _raiseEmbeddedError(self, body: bytes, path: str) -> None:
        if body and b"<Error>" in body[:200]:
            raise self.client.error(500, body, path)

    async def abortMultipartUpload(self, key: str, uploadID: str, path: str) -> None:
        """AbortMultipartUpload; one already gone is fine."""
        await self.client.send("DELETE", key, {"uploadId": uploadID}, path=path, expect=(200, 204, 404))

    async def multipartUploads(self, prefix: str) -> list[tuple[str, str, str]]:
        """(key, upload id, initiated) of every multipart upload under prefix (ListMultipartUploads)."""
        uploads = []
        query: dict[str, Any] = {"uploads": "", "prefix": prefix}
        while True:
            response = await self.client.send("GET", None, query)
            root = parseXML(response.body)
            for upload in root.findall("Upload"):
                uploads.append((text(upload, "Key"), text(upload, "UploadId"), text(upload, "Initiated")))
            if text(root, "IsTruncated").lower() != "true":
                return uploads
            query["key-marker"] = text(root, "NextKeyMarker")
            query["upload-id-marker"] = text(root, "NextUploadIdMarker")

    async def listParts(self, key: str, uploadID: str, path: str) -> list[Part]:
        """Every part of a multipart upload (ListParts, page by page)."""
        parts = []
        query: dict[str, Any] = {"uploadId": uploadID}
        while True:
            response = await self.client.send("GET", key, query, path=path)
            root = parseXML(response.body)
            for part in root.findall("Part"):
                parts.append(Part(int(text(part, "PartNumber")), text(part, "ETag"), int(text(part, "Size"))))
            if text(root, "IsTruncated").lower() != "true":
                return sorted(parts, key=lambda p: p.number)
            query["part-number-marker"] = text(root, "NextPartNumberMarker")

    async def deleteKeys(self, keys: list[str]) -> None:
        """DeleteObjects, a thousand keys a request."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            objects = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in batch)
            body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
            response = await self.client.send(
                "POST", None, {"delete": ""}, headers={"Content-MD5": contentMD5(body)}, body=body
            )
            errors = parseXML(response.body).findall("Error")
            if errors:
                first = errors[0]
                raise S3Error(
                    self.name,
                    self._path(text(first, "Key")),
                    500,
                    text(first, "Code"),
                    text(first, "Message"),
                )

    async def _listObjects(self, prefix: str, delimiter: str | None) -> tuple[list[Any], list[str]]:
        """(contents elements, common prefixes) of ListObjectsV2, every page."""
        contents: list[Any] = []
        prefixes: list[str] = []
        query: dict[str, Any] = {"list-type": 2, "prefix": prefix}
        if delimiter:
            query["delimiter"] = delimiter
        while True:
            response = await self.client.send("GET", None, query)
            root = parseXML(response.body)
            contents.extend(root.findall("Contents"))
            prefixes.extend(text(p, "Prefix") for p in root.findall("CommonPrefixes"))
            token = text(root, "NextContinuationToken")
            if text(root, "IsTruncated").lower() != "true" or not token:
                return contents, prefixes
            query["continuation-token"] = token

    async def _head(self, key: str, path: str) -> dict[str, str]:
        try:
            response = await self.client.send("HEAD", key, path=path)
        except S3Error as e:
            if e.status == 404:
                raise PathNotFound(self.name, path) from None
            raise
        return response.headers

    # -- IStorageDriver ----------------------------------------------------------------------

    async def _getContent(self, path: str) -> bytes:
        key = self._key(path)
        try:
            response = await self.client.send("GET", key, path=path)
        except S3Error as e:
            if e.status == 404:
                raise PathNotFound(self.name, path) from None
            raise
        return response.body

    def getContent(self, path: str) -> Deferred:
        return Deferred.fromCoroutine(self._getContent(path))

    async def _putContent(self, path: str, data: bytes) -> None:
        await self.putObject(self._key(path), bytes(data), path)

    def putContent(self, path: str, data: bytes) -> Deferred:
        return Deferred.fromCoroutine(self._putContent(path, data))

    async def _reader(self, path: str, offset: int) -> Any:
        key = self._key(path)
        if offset < 0:
            raise InvalidOffset(self.name, path, f"offset {offset}")
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = await self.client.send(
                "GET", key, headers=headers, path=path, expect=(200, 206), stream=True
            )
        except S3Error as e:
            if e.status == 404:
                raise PathNotFound(self.name, path) from None
            if e.status != 416:
                raise
            size = int((await self._head(key, path)).get("content-length", "0"))
            if offset == size:
                return EmptyReader()
            raise InvalidOffset(self.name, path, f"offset {offset} beyond size {size}") from None
        reader = BodyReader(self.name, path)
        response.deliverBody(reader)
        return reader

    def reader(self, path: str, offset: int = 0) -> Deferred:
        return Deferred.fromCoroutine(self._reader(path, offset))

    async def _writer(self, path: str, append: bool) -> MultipartWriter:
        key = self._key(path)
        uploads = [u for u in await self.multipartUploads(key) if u[0] == key]
        if not append:
            for _, uploadID, _ in uploads:
                await self.abortMultipartUpload(key, uploadID, path)
            return MultipartWriter(self, path, key)
        if not uploads:
            raise PathNotFound(self.name, path)
        _, uploadID, _ = max(uploads, key=lambda u: u[2])
        parts = await self.listParts(key, uploadID, path)
        if not parts or parts[-1].size >= _partSize(self.settings.chunkSize, len(parts)):
            return MultipartWriter(self, path, key, uploadID, parts)
        return await self._rebuild(path, key, uploadID, parts)

    async def _rebuild(self, path: str, key: str, uploadID: str, parts: list[Part]) -> MultipartWriter:
        """
        Resume an upload whose last part is short (a close() mid-part): S3 cannot add parts after
        it, and its bytes cannot be read back while the upload is open. Complete the upload, copy
        all but the short tail into a new upload server-side, and read the tail back into the buffer.
        """
        await self.completeMultipartUpload(key, uploadID, parts, path)
        total = sum(part.size for part in parts)
        tail = parts[-1].size
        head = total - tail
        newUploadID = None
        newParts: list[Part] = []
        if head:
            newUploadID = await self.createMultipartUpload(key, path)
            pieces = -(-head // MAX_PART_SIZE)
            step = -(-head // pieces)
            for number, start in enumerate(range(0, head, step), 1):
                end = min(start + step, head)
                etag = await self._uploadPartCopy(key, newUploadID, number, key, start, end, path)
                newParts.append(Part(number, etag, end - start))
        buffered = b""
        if tail:
            response = await self.client.send(
                "GET", key, headers={"Range": f"bytes={head}-{total - 1}"}, path=path, expect=(200, 206)
            )
            buffered = response.body
        return MultipartWriter(self, path, key, newUploadID, newParts, buffered, staleObject=True)

    def writer(self, path: str, append: bool = False) -> Deferred:
        return Deferred.fromCoroutine(self._writer(path, append))

    async def _stat(self, path: str) -> FileInfo:
        key = self._key(path)
        if path == "/":
            return FileInfo(path, 0, time.time(), True)
        try:
            headers = await self._head(key, path)
            return FileInfo(
                path,
                int(headers.get("content-length", "0")),
                _timestamp(headers.get("last-modified", "")),
                False,
            )
        except PathNotFound:
            pass
        response = await self.client.send("GET", None, {"list-type": 2, "prefix": key + "/", "max-keys": 1})
        root = parseXML(response.body)
        found = root.findall("Contents")
        if not found:
            raise PathNotFound(self.name, path)
        return FileInfo(path, 0, _timestamp(text(found[0], "LastModified")), True)

    def stat(self, path: str) -> Deferred:
        return Deferred.fromCoroutine(self._stat(path))

    async def _list(self, path: str) -> list[str]:
        prefix = self._dirPrefix(path)
        contents, prefixes = await self._listObjects(prefix, "/")
        children = {self._path(text(c, "Key")) for c in contents if text(c, "Key") != prefix}
        children.update(self._path(p.rstrip("/")) for p in prefixes)
        if not children and path != "/":
            raise PathNotFound(self.name, path)
        return sorted(children)

    def list(self, path: str) -> Deferred:
        return Deferred.fromCoroutine(self._list(path))

    async def _uploadPartCopy(
        self, key: str, uploadID: str, number: int, sourceKey: str, start: int, end: int, path: str
    ) -> str:
        headers = {
            "x-amz-copy-source": f"/{self.settings.bucket}/{sourceKey}",
            "x-amz-copy-source-range": f"bytes={start}-{end - 1}",
        }
        query = {"partNumber": number, "uploadId": uploadID}
        response = await self.client.send("PUT", key, query, headers=headers, path=path)
        self._raiseEmbeddedError(response.body, path)
        return text(parseXML(response.body), "ETag")

    async def _multipartCopy(self, sourceKey: str, destKey: str, size: int, path: str) -> None:
        uploadID = await self.createMultipartUpload(destKey, path)
        chunk = max(self.settings.copyChunkSize, -(-size // 10000))
        semaphore = DeferredSemaphore(self.settings.copyMaxConcurrency)
        ranges = [
            (number, start, min(start + chunk, size)) for number, start in enumerate(range(0, size, chunk), 1)
        ]

        def copy(number: int, start: int, end: int) -> Deferred:
            d = Deferred.fromCoroutine(
                self._uploadPartCopy(destKey, uploadID, number, sourceKey, start, end, path)
            )
            return d.addCallback(lambda etag: Part(number, etag, end - start))

        try:
            parts = await gatherResults([semaphore.run(copy, *r) for r in ranges], consumeErrors=True)
            await self.completeMultipartUpload(destKey, uploadID, list(parts), path)
        except BaseException:
            await self.abortMultipartUpload(destKey, uploadID, path)
            raise

    async def _move(self, sourcePath: str, destPath: str) -> None:
        sourceKey = self._key(sourcePath)
        destKey = self._key(destPath)
        size = int((await self._head(sourceKey, sourcePath)).get("content-length", "0"))
        if size > self.settings.copyThresholdSize:
            await self._multipartCopy(sourceKey, destKey, size, destPath)
        else:
            headers = self._objectHeaders()
            headers.pop("Content-Type")
            headers["x-amz-copy-source"] = f"/{self.settings.bucket}/{sourceKey}"
            response = await self.client.send("PUT", destKey, headers=headers, path=destPath)
            self._raiseEmbeddedError(response.body, destPath)
        await self.deleteKeys([sourceKey])

    def move(self, sourcePath: str, destPath: str) -> Deferred:
        return Deferred.fromCoroutine(self._move(sourcePath, destPath))

    async def _delete(self, path: str) -> None:
        key = self._key(path)
        prefix = self._dirPrefix(path)
        contents, _ = await self._listObjects(key, None)
        doomed = [text(c, "Key") for c in contents]
        doomed = [k for k in doomed if k == key or k.startswith(prefix)]
        if not doomed:
            raise PathNotFound(self.name, path)
        await self.deleteKeys(doomed)
        # Uploads in progress below a deleted directory (a purged registry upload) go too.
        for uploadKey, uploadID, _ in await self.multipartUploads(key):
            if uploadKey == key or uploadKey.startswith(prefix):
                await self.abortMultipartUpload(uploadKey, uploadID, path)

    def delete(self, path: str) -> Deferred:
        return Deferred.fromCoroutine(self._delete(path))

    def redirectURL(self, method: str, path: str) -> Deferred:
        try:
            key = self._key(path)
        except Exception as e:
            from twisted.internet.defer import fail

            return fail(e)
        if method.upper() not in ("GET", "HEAD"):
            return succeed(None)
        return succeed(self.client.presign(key))

    async def _walk(self, path: str, visit: Callable[[FileInfo], object]) -> None:
        info = await self._stat(path)
        if not info.isDir:
            return
        prefix = self._dirPrefix(path)
        contents, _ = await self._listObjects(prefix, None)
        files: dict[str, FileInfo] = {}
        directories: dict[str, float] = {}
        for c in contents:
            filePath = self._path(text(c, "Key"))
            modTime = _timestamp(text(c, "LastModified"))
            files[filePath] = FileInfo(filePath, int(text(c, "Size") or 0), modTime, False)
            parent = filePath.rsplit("/", 1)[0]
            while len(parent) > len(path.rstrip("/")) and parent not in directories:
                directories[parent] = modTime
                parent = parent.rsplit("/", 1)[0]
        entries = {p: f for p, f in files.items()}
        entries.update({p: FileInfo(p, 0, m, True) for p, m in directories.items()})
        skipped: list[str] = []
        for entryPath in sorted(entries, key=lambda p: p.split("/")):
            if any(entryPath.startswith(s + "/") for s in skipped):
                continue
            entry = entries[entryPath]
            result = visit(entry)
            if isinstance(result, Deferred):
                result = await result
            if entry.isDir and result is SKIP_DIR:
                skipped.append(entryPath)

    def walk(self, path: str, visit: Callable[[FileInfo], object]) -> Deferred:
        return Deferred.fromCoroutine(self._walk(path, visit))

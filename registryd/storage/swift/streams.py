"""The swift driver's writer: a segment uploaded each time a chunk fills, only one chunk held."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import implementer

from registryd.storage.interfaces import IFileWriter, StorageDriverError

if TYPE_CHECKING:
    from registryd.storage.swift.driver import SwiftDriver


@implementer(IFileWriter)
class SegmentWriter:
    """Uploads segments of one session; commit writes the DLO manifest naming them."""

    def __init__(self, driver: SwiftDriver, path: str, session: str, segments: list[int]) -> None:
        self._driver = driver
        self._path = path
        self.session = session
        self.segments = segments
        self._buffer = bytearray()
        self._state = "open"
        self.size = sum(segments)

    def _check(self) -> None:
        if self._state != "open":
            raise StorageDriverError(self._driver.name, self._path, f"writer already {self._state}")

    async def _upload(self) -> None:
        """Send what is buffered as the next segment."""
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        name = f"{self._driver.segmentPrefix(self.session)}{len(self.segments):08d}"
        await self._driver.call("PUT", name, body=data, expect=(201,))
        self.segments.append(len(data))

    async def _write(self, data: bytes) -> None:
        self._check()
        self._buffer += data
        self.size += len(data)
        chunkSize = self._driver.chunkSize
        while len(self._buffer) >= chunkSize:
            rest = self._buffer[chunkSize:]
            del self._buffer[chunkSize:]
            await self._upload()
            self._buffer = rest

    async def _close(self) -> None:
        self._check()
        self._state = "closed"
        await self._upload()
        await self._driver.saveRecord(self._path, self.session)

    async def _cancel(self) -> None:
        self._check()
        self._state = "cancelled"
        self._buffer = bytearray()
        await self._driver.deleteSegments(self.session)
        await self._driver.dropRecord(self._path)

    async def _commit(self) -> None:
        self._check()
        self._state = "committed"
        await self._upload()
        await self._driver.commitManifest(self._path, self.session if self.segments else None)
        await self._driver.dropRecord(self._path)

    def write(self, data: bytes) -> Deferred:
        return Deferred.fromCoroutine(self._write(bytes(data)))

    def close(self) -> Deferred:
        return Deferred.fromCoroutine(self._close())

    def cancel(self) -> Deferred:
        return Deferred.fromCoroutine(self._cancel())

    def commit(self) -> Deferred:
        return Deferred.fromCoroutine(self._commit())

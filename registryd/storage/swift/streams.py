"""The swift driver's writer: a segment uploaded each time a chunk fills, only one chunk held."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registryd.storage.objectstore import ChunkedWriter

if TYPE_CHECKING:
    from registryd.storage.swift.driver import SwiftDriver


class SegmentWriter(ChunkedWriter):
    """Uploads segments of one session; commit writes the DLO manifest naming them."""

    def __init__(self, driver: SwiftDriver, path: str, session: str, segments: list[int]) -> None:
        super().__init__(driver, path, size=sum(segments))
        self.session = session
        self.segments = segments

    async def _sendChunk(self, data: bytes) -> None:
        """Upload data as the next segment."""
        name = f"{self._driver.segmentPrefix(self.session)}{len(self.segments):08d}"
        await self._driver.call("PUT", name, body=data, expect=(201,))
        self.segments.append(len(data))

    async def _close(self) -> None:
        self._finish("closed")
        await self._flush()
        await self._driver.saveRecord(self._path, self.session)

    async def _cancel(self) -> None:
        self._finish("cancelled")
        self._buffer = bytearray()
        await self._driver.deleteSegments(self.session)
        await self._driver.dropRecord(self._path)

    async def _commit(self) -> None:
        self._finish("committed")
        await self._flush()
        await self._driver.commitManifest(self._path, self.session if self.segments else None)
        await self._driver.dropRecord(self._path)

"""The azure driver's writer: one block staged per chunk, the block list put on commit."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

from registryd.storage.objectstore import ChunkedWriter

if TYPE_CHECKING:
    from registryd.storage.azure.driver import AzureDriver


def makeBlockID(index: int) -> str:
    """The block ID of the index-th block of a writer: every ID of a blob has the same length."""
    return base64.b64encode(f"block-{index:010d}".encode()).decode()


def blockIndex(blockID: str) -> int | None:
    """The index a block ID of ours carries, or None for a block someone else staged."""
    try:
        text = base64.b64decode(blockID, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not re.fullmatch(r"block-\d{10}", text):
        return None
    return int(text[6:])


class BlockWriter(ChunkedWriter):
    """Stages a block each time a chunk fills; only one chunk is ever held."""

    def __init__(self, driver: AzureDriver, path: str, blocks: list[tuple[str, int]]) -> None:
        super().__init__(driver, path, size=sum(size for _, size in blocks))
        self._blocks = blocks

    async def _sendChunk(self, data: bytes) -> None:
        """Stage data as the next block."""
        blockID = makeBlockID(len(self._blocks))
        await self._driver._call(
            "PUT", self._path, query={"comp": "block", "blockid": blockID}, body=data, expect=(201,)
        )
        self._blocks.append((blockID, len(data)))

    async def _close(self) -> None:
        self._finish("closed")
        await self._flush()

    async def _cancel(self) -> None:
        self._finish("cancelled")
        self._buffer = bytearray()
        await self._driver._discardUncommitted(self._path)

    async def _commit(self) -> None:
        self._finish("committed")
        await self._flush()
        body = "".join(f"<Latest>{blockID}</Latest>" for blockID, _ in self._blocks)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
        await self._driver._call("PUT", self._path, query={"comp": "blocklist"}, body=xml, expect=(201,))

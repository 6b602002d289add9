"""
A chunked Transfer-Encoding decoder that hands chunk data on as slices of what the socket
delivered, for bodies that stream into an upload.

twisted.web's decoder appends every byte received to a buffer and copies each chunk out of
it again: two copies of a layer, and a Python round per chunk of 16-64 KiB (podman and curl
send such chunks). This one reads the framing lines the same way (same limits, same errors)
and passes the data between them on as memoryviews of the received bytes, which are immutable,
so a slice stays valid for as long as the body stream keeps it.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web._abnf import _hexint
from twisted.web.http import (
    _chunkExtChars,
    _DataLoss,
    _MalformedChunkedDataError,
    maxChunkSizeLineLength,
)

MAX_TRAILERS_SIZE = 2**16
"""At most this many bytes of trailer lines (CRLFs included), as twisted.web allows."""


class ChunkedBodyDecoder:
    """Drop-in for twisted.web's C{_ChunkedTransferDecoder}: dataReceived, noMoreData, the two callbacks."""

    def __init__(
        self,
        dataCallback: Callable[[memoryview], None],
        finishCallback: Callable[[bytes], None],
    ) -> None:
        self.dataCallback = dataCallback
        self.finishCallback = finishCallback
        self.state = "CHUNK_LENGTH"
        self.length = 0
        self._partial = b""  # the start of a framing line whose CRLF has not arrived yet
        self._trailersSize = 0

    def dataReceived(self, data: bytes) -> None:
        """Decode what arrived: chunk data to dataCallback, what follows the body to finishCallback."""
        if self.state == "FINISHED":
            raise RuntimeError("ChunkedBodyDecoder.dataReceived called after the last chunk")
        view = memoryview(data)
        position = 0
        while position < len(view):
            if self.state == "BODY":
                size = min(self.length, len(view) - position)
                piece = view[position : position + size]
                position += size
                self.length -= size
                if not self.length:
                    self.state = "CRLF"
                self.dataCallback(piece)
                continue
            line, position = self._line(view, position)
            if line is None:
                return
            if self.state == "CHUNK_LENGTH":
                self._chunkLength(line)
            elif self.state == "CRLF":
                if line:
                    raise _MalformedChunkedDataError("Chunk did not end with CRLF")
                self.state = "CHUNK_LENGTH"
            elif line:  # a trailer: counted, not kept
                self._trailersSize += len(line) + 2
                if self._trailersSize > MAX_TRAILERS_SIZE:
                    raise _MalformedChunkedDataError("Trailer headers data is too long.")
            else:
                self.state = "FINISHED"
                self.finishCallback(bytes(view[position:]))
                return

    def _line(self, view: memoryview, position: int) -> tuple[bytes | None, int]:
        """The framing line starting at position (with what came before), and where after its CRLF."""
        limit = maxChunkSizeLineLength
        if self.state == "TRAILER":
            limit = MAX_TRAILERS_SIZE - self._trailersSize
        scanned = self._partial + bytes(view[position : position + limit + 2 - len(self._partial)])
        end = scanned.find(b"\r\n")
        if end == -1 and len(scanned) <= limit:
            self._partial = scanned
            return None, len(view)
        if end == -1 or (self.state != "TRAILER" and end >= limit):
            if self.state == "TRAILER":
                raise _MalformedChunkedDataError("Trailer headers data is too long.")
            raise _MalformedChunkedDataError(
                f"Chunk size line exceeds maximum of {maxChunkSizeLineLength} bytes."
            )
        consumed = end + 2 - len(self._partial)
        self._partial = b""
        return scanned[:end], position + consumed

    def _chunkLength(self, line: bytes) -> None:
        size, _, extensions = line.partition(b";")
        try:
            length = _hexint(size)
        except ValueError:
            raise _MalformedChunkedDataError("Chunk-size must be an integer.") from None
        if extensions and extensions.translate(None, _chunkExtChars) != b"":
            raise _MalformedChunkedDataError(f"Invalid characters in chunk extensions: {extensions!r}.")
        self.length = length
        self.state = "BODY" if length else "TRAILER"

    def noMoreData(self) -> None:
        """The connection ended: L{_DataLoss} unless the body did."""
        if self.state != "FINISHED":
            raise _DataLoss(f"Chunked body ended in state {self.state!r}, before its last chunk.")

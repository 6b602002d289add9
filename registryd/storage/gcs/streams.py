"""
The gcs driver's writer: a resumable upload session fed one chunk (a multiple of 256 KiB)
each time the buffer fills. C{close()} keeps the session URI, the count of bytes sent and
the unsent tail in a small sidecar object next to the path, so a later writer carries on.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from registryd.storage.interfaces import StorageDriverError
from registryd.storage.objectstore import ChunkedWriter

if TYPE_CHECKING:
    from registryd.storage.gcs.driver import GCSDriver

SIDECAR_SUFFIX = "#resumable"
_RANGE = re.compile(rb"bytes=0-(\d+)")
_MAX_STALLS = 3


def encodeSidecar(session: str | None, sent: int, tail: bytes) -> bytes:
    """The sidecar's bytes: a JSON line of the session state, then the unsent tail."""
    return json.dumps({"session": session, "sent": sent}).encode() + b"\n" + tail


def decodeSidecar(content: bytes) -> tuple[str | None, int, bytes]:
    """(session URI, bytes sent, unsent tail) of a sidecar; ValueError when it is not one."""
    header, _, tail = content.partition(b"\n")
    state = json.loads(header)
    session, sent = state["session"], int(state["sent"])
    if session is not None and not isinstance(session, str):
        raise ValueError("bad session")
    return session, sent, tail


class ResumableWriter(ChunkedWriter):
    """Sends each full chunk to the upload session as it fills; only one chunk is ever held."""

    def __init__(
        self,
        driver: GCSDriver,
        path: str,
        session: str | None = None,
        sent: int = 0,
        tail: bytes = b"",
        hasSidecar: bool = False,
    ) -> None:
        super().__init__(driver, path, size=sent + len(tail), buffered=tail)
        self._session = session
        self._sent = sent
        self._hasSidecar = hasSidecar

    async def _send(self, data: bytes, final: bool) -> None:
        """Send data at the session's offset; the final piece names the total size."""
        if self._session is None:
            self._session = await self._driver._startSession(self._path)
        stalled = 0
        while True:
            start = self._sent
            if final:
                total = start + len(data)
                span = f"bytes {start}-{total - 1}/{total}" if data else f"bytes */{total}"
            else:
                span = f"bytes {start}-{start + len(data) - 1}/*"
            response, _ = await self._driver._callURL(
                "PUT",
                self._session,
                self._path,
                headers={"Content-Range": span},
                body=data,
                expect=(200, 201) if final else (308,),
            )
            if final:
                self._sent += len(data)
                return
            # The service may keep less than it was sent: Range says how much it holds (no
            # Range at all: nothing yet). Send the rest again, but give up if nothing sticks.
            held = response.headers.getRawHeaders(b"range")
            match = _RANGE.fullmatch(held[0].strip()) if held else None
            persisted = int(match.group(1)) + 1 if match else 0
            accepted = max(0, min(persisted - start, len(data)))
            if accepted == 0:
                stalled += 1
                if stalled > _MAX_STALLS:
                    raise StorageDriverError(self._driver.name, self._path, "upload session accepts nothing")
            self._sent += accepted
            data = data[accepted:]
            if not data:
                return

    async def _sendChunk(self, data: bytes) -> None:
        """Send one full chunk to the session."""
        await self._send(data, final=False)

    async def _close(self) -> None:
        self._finish("closed")
        await self._driver._putSidecar(
            self._path, encodeSidecar(self._session, self._sent, bytes(self._buffer))
        )
        self._buffer = bytearray()

    async def _cancel(self) -> None:
        self._finish("cancelled")
        self._buffer = bytearray()
        await self._driver._abandon(self._path, self._session)

    async def _commit(self) -> None:
        self._finish("committed")
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._session is None:
            await self._driver._putContent(self._path, data)
        else:
            await self._send(data, final=True)
        if self._hasSidecar:
            await self._driver._deleteSidecar(self._path)

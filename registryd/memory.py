"""
Giving memory back to the system after a large transfer.

A blob streams through buffers of about a megabyte, allocated and freed thousands of times.
glibc keeps what is freed in its heaps for reuse, and with several threads touching the
buffers it keeps it in several, so a process that has moved a few GiB holds tens of MiB it
no longer needs, and the next transfer's peak comes on top. malloc_trim(3) returns the free
pages; it is asked for at the end of a large transfer, at most once a second.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

LARGE_TRANSFER = 16 << 20
"""Transfers of at least this many bytes give their memory back when they end."""

MIN_INTERVAL = 1.0
"""Seconds between two trims at least (a trim walks every heap)."""


def _findMallocTrim() -> Callable[[int], int] | None:
    """glibc's malloc_trim through ctypes, or None where the C library has none (musl, macOS)."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_mallocTrim = _findMallocTrim()
_lastTrim = float("-inf")


def transferEnded(size: int, clock: Callable[[], float] = time.monotonic) -> bool:
    """A blob transfer of size bytes ended: give free memory back if it was large. @return: whether it did."""
    global _lastTrim
    if size < LARGE_TRANSFER or _mallocTrim is None:
        return False
    now = clock()
    if now - _lastTrim < MIN_INTERVAL:
        return False
    _lastTrim = now
    _mallocTrim(0)
    return True

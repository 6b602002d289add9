"""
Giving memory back to the system after a large transfer.

A blob streams through buffers of about a megabyte, allocated and freed thousands of times.
glibc keeps what is freed in its heaps for reuse, and with several threads touching the
buffers it keeps it in several, so a process that has moved a few GiB holds tens of MiB it
no longer needs, and the next transfer's peak comes on top. malloc_trim(3) returns the free
pages; it is asked for at the end of every large transfer (it takes well under a millisecond,
against tens of milliseconds for the transfer; a client's parallel layer uploads end close
together, and skipping any of them would leave their memory held).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

LARGE_TRANSFER = 16 << 20
"""Transfers of at least this many bytes give their memory back when they end."""


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


def transferEnded(size: int) -> bool:
    """A blob transfer of size bytes ended: give free memory back if it was large. @return: whether it did."""
    if size < LARGE_TRANSFER or _mallocTrim is None:
        return False
    _mallocTrim(0)
    return True

"""
Giving memory back to the system after a large transfer, and not before.

A blob streams through buffers of about a megabyte, allocated and freed thousands of times.
glibc keeps what is freed in its heaps for reuse, and with several threads touching the
buffers it keeps it in several, so a process that has moved a few GiB holds tens of MiB it
no longer needs, and the next transfer's peak comes on top. malloc_trim(3) returns the free
pages; it is asked for at the end of every large transfer (it takes well under a millisecond,
against tens of milliseconds for the transfer; a client's parallel layer uploads end close
together, and skipping any of them would leave their memory held).

Between those trims glibc is told to keep what it frees (L{keepFreedMemory}). Left to its own
thresholds it gave the top of its heap back whenever a buffer there was freed, and took it
again for the next one: every 1 MiB piece of a body came into fresh pages, faulted in and
zeroed by the kernel. How often depended on where the buffers happened to lie; at its worst it
doubled an upload's CPU time (2.3 s instead of 1.1 s for 1 GiB, half of it in the kernel).
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

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""mallopt(3) parameters, from glibc's <malloc.h>."""

KEPT_FREE = 64 << 20
"""Free memory at the top of a heap that glibc keeps instead of giving back at once."""

MMAP_THRESHOLD = 16 << 20
"""Allocations at least this large get their own mapping; body pieces (1 MiB) stay in the heaps."""


def _findMallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt through ctypes, or None where the C library has none."""
    try:
        function = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_mallopt = _findMallopt()


def keepFreedMemory() -> bool:
    """
    Have glibc keep freed buffers for reuse until L{transferEnded} trims (call once, at start-up;
    fixed thresholds also end glibc's own adjusting of them). @return: whether it could.
    """
    if _mallopt is None or _mallocTrim is None:
        return False
    return bool(_mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(_mallopt(M_TRIM_THRESHOLD, KEPT_FREE))


def transferEnded(size: int) -> bool:
    """A blob transfer of size bytes ended: give free memory back if it was large. @return: whether it did."""
    if size < LARGE_TRANSFER or _mallocTrim is None:
        return False
    _mallocTrim(0)
    return True

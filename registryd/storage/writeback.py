"""
Starting the write-out of an upload's bytes as they are written, not at its commit.

A commit fsyncs the blob. Left to itself the kernel holds a 1 GiB upload dirty in the page
cache and the fsync then waits for all of it (about a third of a second here, a quarter of the
upload). Asking for write-out of each batch just written (Linux's sync_file_range with
SYNC_FILE_RANGE_WRITE, which queues the pages and does not wait for them) has the disk work
alongside the network, and the final fsync finds almost nothing left to do.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
"""From <fcntl.h>: start write-out of the dirty pages in the range, without waiting."""


def _findSyncFileRange() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range through ctypes, or None where the C library has none."""
    try:
        function = ctypes.CDLL(None).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_syncFileRange = _findSyncFileRange()


def startWriteback(fd: int, written: int) -> bool:
    """
    Ask for the last C{written} bytes before fd's position to go to disk now (call in a thread).

    A hint: a file system that refuses it loses nothing. @return: whether it was asked.
    """
    if _syncFileRange is None or written <= 0:
        return False
    end = os.lseek(fd, 0, os.SEEK_CUR)
    return _syncFileRange(fd, end - written, written, SYNC_FILE_RANGE_WRITE) == 0

"""Free memory is given back after every large transfer."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from registryd import memory


class TransferEndedTests(TestCase):
    def setUp(self) -> None:
        self.trims: list[int] = []
        self.patch(memory, "_mallocTrim", lambda pad: self.trims.append(pad) or 1)

    def test_large_transfers_trim_each_time(self) -> None:
        self.assertTrue(memory.transferEnded(memory.LARGE_TRANSFER))
        self.assertTrue(memory.transferEnded(1 << 30))
        self.assertEqual(self.trims, [0, 0])

    def test_small_transfer_does_not(self) -> None:
        self.assertFalse(memory.transferEnded(memory.LARGE_TRANSFER - 1))
        self.assertEqual(self.trims, [])

    def test_without_malloc_trim(self) -> None:
        self.patch(memory, "_mallocTrim", None)
        self.assertFalse(memory.transferEnded(1 << 30))

    def test_the_c_library_has_it_here(self) -> None:
        """On glibc (Debian) the function is found; it returns 0 or 1."""
        found = memory._findMallocTrim()
        if found is None:
            raise self.skipTest("no malloc_trim in this C library")
        self.assertIn(found(0), (0, 1))


class KeepFreedMemoryTests(TestCase):
    def test_thresholds_are_set(self) -> None:
        calls: list[tuple[int, int]] = []
        self.patch(memory, "_mallopt", lambda parameter, value: calls.append((parameter, value)) or 1)
        self.assertTrue(memory.keepFreedMemory())
        self.assertEqual(
            calls,
            [(memory.M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD), (memory.M_TRIM_THRESHOLD, memory.KEPT_FREE)],
        )

    def test_refused_by_the_c_library(self) -> None:
        self.patch(memory, "_mallopt", lambda parameter, value: 0)
        self.assertFalse(memory.keepFreedMemory())

    def test_without_mallopt(self) -> None:
        self.patch(memory, "_mallopt", None)
        self.assertFalse(memory.keepFreedMemory())

    def test_glibc_takes_these_values(self) -> None:
        """On glibc (Debian) mallopt accepts both thresholds (it refuses an mmap threshold over 32 MiB)."""
        if memory._findMallopt() is None:
            raise self.skipTest("no mallopt in this C library")
        self.assertTrue(memory.keepFreedMemory())

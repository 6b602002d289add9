"""Free memory is given back after large transfers, at most once a second."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from registryd import memory


class TransferEndedTests(TestCase):
    def setUp(self) -> None:
        self.trims: list[int] = []
        self.now = 1000.0
        self.patch(memory, "_mallocTrim", lambda pad: self.trims.append(pad) or 1)
        self.patch(memory, "_lastTrim", float("-inf"))

    def ended(self, size: int) -> bool:
        return memory.transferEnded(size, clock=lambda: self.now)

    def test_large_transfer_trims(self) -> None:
        self.assertTrue(self.ended(memory.LARGE_TRANSFER))
        self.assertEqual(self.trims, [0])

    def test_small_transfer_does_not(self) -> None:
        self.assertFalse(self.ended(memory.LARGE_TRANSFER - 1))
        self.assertEqual(self.trims, [])

    def test_at_most_once_per_interval(self) -> None:
        self.assertTrue(self.ended(1 << 30))
        self.now += memory.MIN_INTERVAL / 2
        self.assertFalse(self.ended(1 << 30))
        self.now += memory.MIN_INTERVAL
        self.assertTrue(self.ended(1 << 30))
        self.assertEqual(len(self.trims), 2)

    def test_without_malloc_trim(self) -> None:
        self.patch(memory, "_mallocTrim", None)
        self.assertFalse(self.ended(1 << 30))

    def test_the_c_library_has_it_here(self) -> None:
        """On glibc (Debian) the function is found; it returns 0 or 1."""
        found = memory._findMallocTrim()
        if found is None:
            raise self.skipTest("no malloc_trim in this C library")
        self.assertIn(found(0), (0, 1))

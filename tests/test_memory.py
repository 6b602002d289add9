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

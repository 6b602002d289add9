"""registryd.registry.resumablehash: a SHA-256 whose state is saved in distribution's form."""

from __future__ import annotations

import hashlib
import os
import struct

from twisted.trial.unittest import TestCase

from registryd.registry import resumablehash
from registryd.registry.resumablehash import MARSHALLED_SIZE, ResumableSHA256

# SHA-256's initial hash value (FIPS 180-4, 5.3.3): the state of a hasher that has seen nothing.
_INITIAL = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip


class ResumableSHA256Tests(TestCase):
    def setUp(self) -> None:
        if not resumablehash.AVAILABLE:
            raise self.skipTest("no libcrypto SHA256_* here")  # Debian always has them
        self.data = os.urandom(3 * 64 * 1024 + 17)

    def test_digests_as_hashlib(self) -> None:
        hasher = ResumableSHA256()
        for start in range(0, len(self.data), 1000):
            hasher.update(self.data[start : start + 1000])
        self.assertEqual(hasher.hexdigest(), hashlib.sha256(self.data).hexdigest())
        self.assertEqual(hasher.length, len(self.data))

    def test_digest_does_not_end_the_hashing(self) -> None:
        hasher = ResumableSHA256()
        hasher.update(b"abc")
        self.assertEqual(hasher.hexdigest(), hashlib.sha256(b"abc").hexdigest())
        hasher.update(b"def")
        self.assertEqual(hasher.hexdigest(), hashlib.sha256(b"abcdef").hexdigest())

    def test_copies_are_independent(self) -> None:
        hasher = ResumableSHA256()
        hasher.update(b"common ")
        other = hasher.copy()
        hasher.update(b"one")
        other.update(b"two")
        self.assertEqual(hasher.hexdigest(), hashlib.sha256(b"common one").hexdigest())
        self.assertEqual(other.hexdigest(), hashlib.sha256(b"common two").hexdigest())

    def test_a_saved_state_goes_on_where_it_stopped(self) -> None:
        # Every position in and around a 64-byte block boundary.
        for cut in (0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, len(self.data)):
            hasher = ResumableSHA256()
            hasher.update(self.data[:cut])
            state = hasher.marshal()
            self.assertEqual(len(state), MARSHALLED_SIZE)
            resumed = ResumableSHA256.unmarshal(state)
            self.assertEqual(resumed.length, cut)
            resumed.update(self.data[cut:])
            self.assertEqual(resumed.hexdigest(), hashlib.sha256(self.data).hexdigest(), cut)

    def test_the_empty_state_in_gos_form(self) -> None:
        """Go's MarshalBinary: magic, the eight words big-endian, the block buffer, the length."""
        expected = b"sha\x03" + struct.pack(">8I", *_INITIAL) + bytes(64) + struct.pack(">Q", 0)
        self.assertEqual(ResumableSHA256().marshal(), expected)

    def test_pending_bytes_and_length_in_gos_form(self) -> None:
        hasher = ResumableSHA256()
        hasher.update(b"x" * 70)  # one block hashed, six bytes pending
        state = hasher.marshal()
        self.assertEqual(state[36:42], b"xxxxxx")
        self.assertEqual(state[42:100], bytes(58))
        self.assertEqual(state[100:], struct.pack(">Q", 70))

    def test_not_a_state(self) -> None:
        good = ResumableSHA256().marshal()
        for bad in (b"", good[:-1], b"sha\x02" + good[4:], good + b"\0"):
            self.assertRaises(ValueError, ResumableSHA256.unmarshal, bad)
            self.assertIsNone(resumablehash.resumed(bad, 0))

    def test_resumed_only_at_its_own_length(self) -> None:
        hasher = ResumableSHA256()
        hasher.update(b"12345")
        self.assertIsNotNone(resumablehash.resumed(hasher.marshal(), 5))
        self.assertIsNone(resumablehash.resumed(hasher.marshal(), 6))

    def test_running_hashers_are_resumable_here(self) -> None:
        hasher = resumablehash.newRunningHasher()
        self.assertIsInstance(hasher, ResumableSHA256)
        self.assertIsNotNone(resumablehash.marshalled(hasher))
        self.assertIsNone(resumablehash.marshalled(hashlib.sha256()))

"""The chunked body decoder, checked against twisted.web's own on the same bytes split every which way."""

from __future__ import annotations

import random

from twisted.trial.unittest import TestCase
from twisted.web.http import _ChunkedTransferDecoder, _DataLoss, _MalformedChunkedDataError

from registryd.web.chunked import MAX_TRAILERS_SIZE, ChunkedBodyDecoder


def chunked(pieces: list[bytes], extension: bytes = b"", trailers: bytes = b"") -> bytes:
    """A chunked body carrying pieces, the terminal chunk and trailers."""
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(piece), extension, piece) for piece in pieces)
    return framed + b"0\r\n" + trailers + b"\r\n"


def decode(decoderClass: type, data: bytes, splits: list[int]) -> tuple[bytes, bytes | None, str]:
    """Feed data cut at splits; (body, what followed it or None, how it ended)."""
    body: list[bytes] = []
    rest: list[bytes] = []
    decoder = decoderClass(lambda piece: body.append(bytes(piece)), rest.append)
    cuts = [0, *sorted(splits), len(data)]
    try:
        for start, end in zip(cuts, cuts[1:], strict=False):
            if rest:
                rest[0] += data[start:end]  # the channel's, as twisted.web hands it on
            elif start < end:
                decoder.dataReceived(data[start:end])
        decoder.noMoreData()
        outcome = "finished"
    except _MalformedChunkedDataError:
        outcome = "malformed"
    except _DataLoss:
        outcome = "lost"
    return b"".join(body), (rest[0] if rest else None), outcome


class ChunkedBodyDecoderTests(TestCase):
    def assertSameAsTwisted(self, data: bytes, splits: list[int]) -> tuple[bytes, bytes | None, str]:
        ours = decode(ChunkedBodyDecoder, data, splits)
        theirs = decode(_ChunkedTransferDecoder, data, splits)
        self.assertEqual(ours, theirs, f"splits {splits}")
        return ours

    def test_body_and_what_follows_whatever_the_splits(self) -> None:
        generator = random.Random(8)
        for _ in range(300):
            pieces = [generator.randbytes(generator.choice([1, 2, 7, 100, 4096])) for _ in range(5)]
            extension = generator.choice([b"", b";name=value", b";x"])
            trailers = generator.choice([b"", b"Digest: abc\r\n", b"A: 1\r\nB: 2\r\n"])
            following = generator.choice([b"", b"GET / HTTP/1.1\r\n\r\n"])
            data = chunked(pieces, extension, trailers) + following
            splits = [generator.randrange(len(data)) for _ in range(generator.randrange(12))]
            body, rest, outcome = self.assertSameAsTwisted(data, splits)
            self.assertEqual((body, rest, outcome), (b"".join(pieces), following, "finished"))

    def test_every_single_split(self) -> None:
        data = chunked([b"hello", b"\r\n world", b"x" * 20], b";a=b", b"T: v\r\n") + b"next"
        for split in range(len(data)):
            self.assertSameAsTwisted(data, [split])
        self.assertSameAsTwisted(data, list(range(len(data))))

    def test_malformed_framing_is_refused_as_twisted_refuses_it(self) -> None:
        for data in [
            b"zz\r\nabc\r\n0\r\n\r\n",  # not hexadecimal
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabcXY0\r\n\r\n",  # data not followed by CRLF
            b"3;\x00\r\nabc\r\n0\r\n\r\n",  # bad extension
            b"1" * 2000 + b"\r\n",  # size line too long
            b"0\r\n" + (b"T: " + b"v" * 1000 + b"\r\n") * 70 + b"\r\n",  # trailers too long
        ]:
            for splits in ([], [1], [3], [len(data) // 2]):
                _, _, outcome = self.assertSameAsTwisted(data, splits)
                self.assertEqual(outcome, "malformed", data[:20])

    def test_long_trailer_line_is_refused(self) -> None:
        data = b"0\r\nT: " + b"v" * MAX_TRAILERS_SIZE + b"\r\n\r\n"
        self.assertEqual(decode(ChunkedBodyDecoder, data, [])[2], "malformed")

    def test_body_cut_short_is_data_loss(self) -> None:
        data = chunked([b"abcdef"])
        for end in range(1, len(data)):
            self.assertEqual(decode(ChunkedBodyDecoder, data[:end], [])[2], "lost")

    def test_data_is_handed_on_as_slices_of_what_arrived(self) -> None:
        received = chunked([b"a" * 1000, b"b" * 1000])
        pieces: list[memoryview] = []
        ChunkedBodyDecoder(pieces.append, lambda rest: None).dataReceived(received)
        self.assertEqual([bytes(piece) for piece in pieces], [b"a" * 1000, b"b" * 1000])
        self.assertTrue(all(piece.obj is received for piece in pieces))

    def test_data_after_the_last_chunk_is_a_programming_error(self) -> None:
        decoder = ChunkedBodyDecoder(lambda piece: None, lambda rest: None)
        decoder.dataReceived(chunked([b"x"]))
        self.assertRaises(RuntimeError, decoder.dataReceived, b"more")

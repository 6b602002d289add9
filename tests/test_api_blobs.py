"""Tests for C{/v2/<name>/blobs/<digest>}: GET, HEAD, Range, redirects, DELETE; and the download producer."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.trial import unittest

from registryd import memory
from registryd.api.blobs import Unsatisfiable, parseRange
from registryd.api.download import SEND_LIMIT, ClientGone, ReaderProducer, ShortContent
from registryd.storage.inmemory import InMemoryDriver
from tests.test_api_base import APIClient, APITestCase, digestOf, makeAPI, rawExchange


class FetchTests(APITestCase):
    async def test_get_blob_streams_content_with_headers(self) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        digest = await self.client.pushBlob("repo", data)
        answer = await self.client.get(f"/v2/repo/blobs/{digest}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.body, data)
        self.assertEqual(answer.length, len(data))
        self.assertEqual(answer.header("Content-Type"), "application/octet-stream")
        self.assertEqual(answer.header("Docker-Content-Digest"), digest)
        self.assertEqual(answer.header("ETag"), f'"{digest}"')
        self.assertEqual(answer.header("Accept-Ranges"), "bytes")

    async def test_head_blob_has_headers_and_no_body(self) -> None:
        digest = await self.client.pushBlob("repo", b"twelve bytes")
        answer = await self.client.head(f"/v2/repo/blobs/{digest}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.body, b"")
        self.assertEqual(answer.header("Docker-Content-Digest"), digest)
        raw = rawExchange(self.api, f"HEAD /v2/repo/blobs/{digest} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertIn(b"\r\nContent-Length: 12\r\n", head + b"\r\n")
        self.assertIn(b"\r\nContent-Type: application/octet-stream\r\n", head + b"\r\n")
        self.assertEqual(body, b"")

    async def test_empty_blob(self) -> None:
        digest = await self.client.pushBlob("repo", b"")
        answer = await self.client.get(f"/v2/repo/blobs/{digest}")
        self.assertEqual((answer.code, answer.body, answer.length), (200, b"", 0))

    async def test_range_returns_206_with_content_range(self) -> None:
        data = bytes(range(256)) * 4
        digest = await self.client.pushBlob("repo", data)
        answer = await self.client.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=10-19"})
        self.assertEqual(answer.code, 206)
        self.assertEqual(answer.body, data[10:20])
        self.assertEqual(answer.header("Content-Range"), f"bytes 10-19/{len(data)}")
        open_ended = await self.client.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=1000-"})
        self.assertEqual(open_ended.body, data[1000:])
        suffix = await self.client.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=-5"})
        self.assertEqual(suffix.body, data[-5:])
        self.assertEqual(suffix.header("Content-Range"), f"bytes {len(data) - 5}-{len(data) - 1}/{len(data)}")

    async def test_unsatisfiable_range_returns_416(self) -> None:
        digest = await self.client.pushBlob("repo", b"short")
        answer = await self.client.get(f"/v2/repo/blobs/{digest}", headers={"Range": "bytes=100-200"})
        self.assertError(answer, 416, "RANGE_INVALID")
        self.assertEqual(answer.header("Content-Range"), "bytes */5")

    async def test_if_none_match_gives_304(self) -> None:
        digest = await self.client.pushBlob("repo", b"cached")
        answer = await self.client.get(f"/v2/repo/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'})
        self.assertEqual((answer.code, answer.body), (304, b""))

    async def test_unknown_blob_is_404_blob_unknown(self) -> None:
        await self.client.pushBlob("repo", b"something")
        answer = await self.client.get(f"/v2/repo/blobs/{digestOf(b'absent')}")
        self.assertError(answer, 404, "BLOB_UNKNOWN")
        head = await self.client.head(f"/v2/repo/blobs/{digestOf(b'absent')}")
        self.assertEqual((head.code, head.body), (404, b""))

    async def test_blob_of_other_repository_is_404(self) -> None:
        digest = await self.client.pushBlob("one", b"only in one")
        self.assertError(await self.client.get(f"/v2/two/blobs/{digest}"), 404, "BLOB_UNKNOWN")

    async def test_bad_digest_is_400_digest_invalid(self) -> None:
        for bad in ["sha256:xyz", "md5:" + "0" * 32, "nocolon"]:
            self.assertError(await self.client.get(f"/v2/repo/blobs/{bad}"), 400, "DIGEST_INVALID")


class RedirectingDriver(InMemoryDriver):
    """An in-memory driver that, like an object store, hands out URLs for content."""

    def redirectURL(self, method: str, path: str) -> Deferred:
        return succeed(f"https://storage.example{path}?method={method}")


class RedirectTests(unittest.TestCase):
    async def test_driver_url_gives_307(self) -> None:
        client = APIClient(makeAPI(driver=RedirectingDriver()))
        digest = await client.pushBlob("repo", b"content")
        answer = await client.get(f"/v2/repo/blobs/{digest}")
        self.assertEqual(answer.code, 307)
        self.assertTrue(answer.header("Location").startswith("https://storage.example/"))
        self.assertIn(digest.split(":")[1], answer.header("Location"))

    async def test_redirect_disabled_serves_bytes(self) -> None:
        client = APIClient(makeAPI(driver=RedirectingDriver(), redirectDisabled=True))
        digest = await client.pushBlob("repo", b"content")
        answer = await client.get(f"/v2/repo/blobs/{digest}")
        self.assertEqual((answer.code, answer.body), (200, b"content"))


class DeleteTests(APITestCase):
    async def test_delete_blob_is_202_then_unknown(self) -> None:
        digest = await self.client.pushBlob("repo", b"doomed")
        answer = await self.client.delete(f"/v2/repo/blobs/{digest}")
        self.assertEqual(answer.code, 202)
        self.assertError(await self.client.get(f"/v2/repo/blobs/{digest}"), 404, "BLOB_UNKNOWN")

    async def test_delete_unknown_blob_is_404(self) -> None:
        self.assertError(await self.client.delete(f"/v2/repo/blobs/{digestOf(b'x')}"), 404, "BLOB_UNKNOWN")


class DeleteDisabledTests(APITestCase):
    apiOptions = {"deleteEnabled": False}

    async def test_delete_blob_is_405_unsupported(self) -> None:
        digest = await self.client.pushBlob("repo", b"kept")
        self.assertError(await self.client.delete(f"/v2/repo/blobs/{digest}"), 405, "UNSUPPORTED")
        self.assertEqual((await self.client.get(f"/v2/repo/blobs/{digest}")).body, b"kept")


class ParseRangeTests(unittest.TestCase):
    def test_forms(self) -> None:
        self.assertEqual(parseRange("bytes=0-0", 10), (0, 0))
        self.assertEqual(parseRange("bytes=2-", 10), (2, 9))
        self.assertEqual(parseRange("bytes=5-100", 10), (5, 9))
        self.assertEqual(parseRange("bytes=-3", 10), (7, 9))
        self.assertEqual(parseRange("bytes=-30", 10), (0, 9))

    def test_ignored(self) -> None:
        for value in [None, "bytes=0-1,3-4", "items=0-1", "bytes=-", "garbage"]:
            self.assertIsNone(parseRange(value, 10))

    def test_unsatisfiable(self) -> None:
        for value in ["bytes=10-", "bytes=10-20", "bytes=5-2", "bytes=-0"]:
            self.assertRaises(Unsatisfiable, parseRange, value, 10)


class FakeRequest:
    """Just what the producer touches of a request."""

    def __init__(self, pauseAfter: int | None = None) -> None:
        self.written: list[bytes] = []
        self.producer: Any = None
        self.pauseAfter = pauseAfter

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.pauseAfter is not None and len(self.written) >= self.pauseAfter:
            self.producer.pauseProducing()


class FakeReader:
    def __init__(self, chunks: list[bytes], later: bool = False) -> None:
        self.chunks = list(chunks)
        self.reads = 0
        self.closed = False
        self.later = later
        self.pending: Deferred | None = None

    def read(self) -> Deferred:
        self.reads += 1
        chunk = self.chunks.pop(0) if self.chunks else b""
        if self.later:
            self.pending = Deferred()
            self.pending.chunk = chunk
            return self.pending
        return succeed(chunk)

    def close(self) -> Deferred:
        self.closed = True
        return succeed(None)


class ReaderProducerTests(unittest.TestCase):
    def test_copies_length_and_closes(self) -> None:
        request, reader = FakeRequest(), FakeReader([b"abc", b"def", b"ghi"])
        done = ReaderProducer(request, reader, 7).start()
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(b"".join(request.written), b"abcdefg")
        self.assertTrue(reader.closed)
        self.assertIsNone(request.producer)

    def test_end_reports_the_bytes_sent_for_memory_trimming(self) -> None:
        ended: list[int] = []
        self.patch(memory, "transferEnded", ended.append)
        request, reader = FakeRequest(), FakeReader([b"abc", b"def"])
        self.successResultOf(ReaderProducer(request, reader, 5).start())
        request, reader = FakeRequest(), FakeReader([b"ab"])
        self.failureResultOf(ReaderProducer(request, reader, 5).start(), ShortContent)
        self.assertEqual(ended, [5, 2])

    def test_tcp_transport_sends_more_per_turn(self) -> None:
        """twisted.internet.tcp sends 128 KiB per reactor turn; a download raises that, never lowers it."""
        from twisted.internet.tcp import Connection

        for before, after in ((Connection.SEND_LIMIT, SEND_LIMIT), (4 * SEND_LIMIT, 4 * SEND_LIMIT)):
            request, reader = FakeRequest(), FakeReader([b"abc"])
            request.channel = type("Channel", (), {})()
            request.channel.transport = type("Transport", (), {"SEND_LIMIT": before})()
            self.successResultOf(ReaderProducer(request, reader, 3).start())
            self.assertEqual(request.channel.transport.SEND_LIMIT, after)

    def test_many_chunks_do_not_recurse(self) -> None:
        request, reader = FakeRequest(), FakeReader([b"x"] * 5000)
        self.successResultOf(ReaderProducer(request, reader, 5000).start())
        self.assertEqual(len(request.written), 5000)

    def test_paused_transport_stops_reading(self) -> None:
        request, reader = FakeRequest(pauseAfter=1), FakeReader([b"a", b"b", b"c"])
        producer = ReaderProducer(request, reader, 3)
        done = producer.start()
        self.assertNoResult(done)
        self.assertEqual((request.written, reader.reads), ([b"a"], 1))
        request.pauseAfter = None
        producer.resumeProducing()
        self.successResultOf(done)
        self.assertEqual(b"".join(request.written), b"abc")

    def test_client_gone_stops_and_closes(self) -> None:
        request, reader = FakeRequest(pauseAfter=1), FakeReader([b"a", b"b"])
        producer = ReaderProducer(request, reader, 2)
        done = producer.start()
        producer.stopProducing()
        self.failureResultOf(done, ClientGone)
        self.assertTrue(reader.closed)
        producer.resumeProducing()
        self.assertEqual(reader.reads, 1)

    def test_cancel_closes_reader_and_ignores_late_chunk(self) -> None:
        request, reader = FakeRequest(), FakeReader([b"a"], later=True)
        done = ReaderProducer(request, reader, 1).start()
        done.cancel()
        self.failureResultOf(done, CancelledError)
        self.assertTrue(reader.closed)
        reader.pending.callback(reader.pending.chunk)
        self.assertEqual(request.written, [])

    def test_short_content_fails(self) -> None:
        request, reader = FakeRequest(), FakeReader([b"ab"])
        self.failureResultOf(ReaderProducer(request, reader, 5).start(), ShortContent)
        self.assertTrue(reader.closed)

    def test_read_error_fails_and_closes(self) -> None:
        class Broken(FakeReader):
            def read(self) -> Deferred:
                raise OSError("disk on fire")

        request, reader = FakeRequest(), Broken([])
        self.failureResultOf(ReaderProducer(request, reader, 5).start(), OSError)
        self.assertTrue(reader.closed)

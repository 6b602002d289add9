"""The API's reading of request headers: any bytes a client sends are text, never an exception."""

from __future__ import annotations

from twisted.trial.unittest import TestCase
from twisted.web.test.requesthelper import DummyRequest

from registryd.api.base import contentLength, header


def requestWith(**headers: bytes) -> DummyRequest:
    request = DummyRequest([b""])
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name.replace("_", "-").encode("ascii"), [value])
    return request


class ContentLengthTests(TestCase):
    def test_ascii_digits_are_the_length(self) -> None:
        self.assertEqual(contentLength(requestWith(Content_Length=b" 1024 ")), 1024)

    def test_absent_or_chunked_is_no_length(self) -> None:
        self.assertIsNone(contentLength(requestWith()))
        self.assertIsNone(contentLength(requestWith(Content_Length=b"5", Transfer_Encoding=b"chunked")))

    def test_non_ascii_digits_are_no_length(self) -> None:
        # b"\xb2" is '²' in latin-1: str.isdigit says yes, int() says no.
        self.assertIsNone(contentLength(requestWith(Content_Length=b"\xb2")))
        self.assertIsNone(contentLength(requestWith(Content_Length=b"12a")))


class HeaderTests(TestCase):
    def test_non_utf8_bytes_read_as_latin1(self) -> None:
        self.assertEqual(header(requestWith(Range=b"bytes=\xff-"), "Range"), "bytes=\xff-")

    def test_absent_header_is_none(self) -> None:
        self.assertIsNone(header(requestWith(), "Range"))
